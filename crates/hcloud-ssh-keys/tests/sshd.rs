//! What "done" means for a user: after `hcloud-ssh-keys`, `ssh -i <key from the metadata>
//! root@server` works, the user's own keys still work, a key removed from the metadata or a
//! refused line does not. A real OpenSSH server on loopback reads the file the agent wrote
//! (`AuthorizedKeysFile` points into the `--root` tree, so root's real keys are never touched).

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hcloud_metadata::{Document, Network};

const BIN: &str = env!("CARGO_BIN_EXE_hcloud-ssh-keys");
const SSHD: &str = "/usr/sbin/sshd";

struct Sshd {
    child: Child,
    port: u16,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn keygen(dir: &Path, name: &str) -> (PathBuf, String) {
    let path = dir.join(name);
    let ok = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
        .arg(&path)
        .status()
        .expect("ssh-keygen (openssh-client) must be installed: scripts/install-deps")
        .success();
    assert!(ok);
    let line = fs::read_to_string(path.with_extension("pub"))
        .unwrap()
        .trim()
        .to_string();
    (path, line)
}

fn start_sshd(dir: &Path, authorized_keys: &Path) -> Sshd {
    assert!(
        Path::new(SSHD).exists(),
        "{SSHD} is missing: install openssh-server (scripts/install-deps)"
    );
    // The privilege separation directory the Debian package normally creates at boot.
    fs::create_dir_all("/run/sshd").unwrap();
    let (host_key, _) = keygen(dir, "host_key");
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.join("sshd_config");
    fs::write(
        &config,
        format!(
            "ListenAddress 127.0.0.1\nPort {port}\nHostKey {}\nPidFile none\n\
             AuthorizedKeysFile {}\nStrictModes no\nUsePAM no\nPermitRootLogin prohibit-password\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nLogLevel VERBOSE\n",
            host_key.display(),
            authorized_keys.display()
        ),
    )
    .unwrap();
    let child = Command::new(SSHD)
        .arg("-D")
        .arg("-e")
        .arg("-f")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "sshd did not listen on port {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Sshd { child, port }
}

/// Does `ssh -i key root@127.0.0.1` get in?
fn can_login(sshd: &Sshd, key: &Path) -> bool {
    let out = Command::new("timeout")
        .arg("30")
        .arg("ssh")
        .args([
            "-F",
            "/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "IdentityAgent=none",
            "-o",
            "LogLevel=ERROR",
            "-p",
            &sshd.port.to_string(),
            "-i",
        ])
        .arg(key)
        .args(["root@127.0.0.1", "echo logged-in-as-$(id -u)"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    out.status.success() && stdout.trim() == "logged-in-as-0"
}

fn write_doc(root: &Path, keys: &[String]) {
    let doc = Document {
        instance_id: 7,
        hostname: None,
        region: None,
        availability_zone: None,
        ssh_keys: keys.to_vec(),
        network: Network::default(),
    };
    fs::write(root.join("etc/hcloud-metadata.json"), doc.to_json()).unwrap();
}

fn run_agent(root: &Path) {
    let out = Command::new(BIN).arg("--root").arg(root).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn metadata_keys_log_in_user_keys_keep_working_removed_and_refused_keys_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root-tree");
    let keys = dir.path().join("keys");
    fs::create_dir_all(root.join("etc")).unwrap();
    fs::create_dir_all(root.join("root/.ssh")).unwrap();
    fs::create_dir_all(&keys).unwrap();
    fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();

    let (own, own_line) = keygen(&keys, "users-own");
    let (a, a_line) = keygen(&keys, "from-metadata-a");
    let (b, b_line) = keygen(&keys, "from-metadata-b");
    let (evil, evil_line) = keygen(&keys, "with-options");
    let ak = root.join("root/.ssh/authorized_keys");
    fs::write(&ak, format!("# root's own key\n{own_line}\n")).unwrap();

    write_doc(
        &root,
        &[a_line.clone(), format!("command=\"/bin/true\" {evil_line}")],
    );
    run_agent(&root);
    let sshd = start_sshd(dir.path(), &ak);
    assert!(can_login(&sshd, &a), "the key from the metadata logs in");
    assert!(can_login(&sshd, &own), "the user's own key still logs in");
    assert!(
        !can_login(&sshd, &evil),
        "a refused line gives no access at all"
    );
    assert!(
        !can_login(&sshd, &b),
        "a key that is nowhere does not log in"
    );

    // The key is rotated in Hetzner Cloud: a is removed, b added.
    write_doc(&root, &[b_line]);
    run_agent(&root);
    assert!(can_login(&sshd, &b));
    assert!(
        !can_login(&sshd, &a),
        "a key removed from the metadata no longer logs in"
    );
    assert!(can_login(&sshd, &own));

    // The metadata has no keys any more; the user's own key is all that is left.
    write_doc(&root, &[]);
    run_agent(&root);
    assert!(!can_login(&sshd, &b));
    assert!(can_login(&sshd, &own));
}
