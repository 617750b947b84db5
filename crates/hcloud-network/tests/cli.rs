//! The real binary on `--root` trees: what a user finds in /run/systemd/network afterwards,
//! what it says, and its exit status.

mod common;

use std::time::{Duration, SystemTime};

use common::{TestRoot, stderr};
use serde_json::{Value, json};

fn document() -> Value {
    json!({
        "instance_id": 48151623,
        "hostname": "app-7",
        "region": "eu-central",
        "availability_zone": "nbg1-dc3",
        "ssh_keys": [],
        "network": {
            "mac_address": "96:00:00:ab:cd:ef",
            "ipv4_address": "203.0.113.10",
            "ipv4_subnet": "203.0.113.10/32",
            "ipv4_gateway": "172.31.1.1",
            "ipv6_address": "2001:db8:1234:5678::1",
            "ipv6_subnet": "2001:db8:1234:5678::1/64",
            "ipv6_gateway": "fe80::1",
            "nameservers": ["185.12.64.1"],
            "private": [
                {
                    "ip": "10.20.1.5", "alias_ips": ["10.20.1.6"], "interface_num": 1,
                    "mac_address": "86:00:00:5e:6f:70", "network_id": 3141592,
                    "network_name": "backend", "network": "10.20.0.0/16",
                    "subnet": "10.20.1.0/24", "gateway": "10.20.0.1"
                },
                {
                    "ip": "172.16.9.9", "alias_ips": [], "interface_num": 2,
                    "mac_address": "86:00:00:5e:6f:71", "network_id": 2718281,
                    "network_name": "storage", "network": "172.16.0.0/12",
                    "subnet": "172.16.9.0/24", "gateway": "172.16.0.1"
                }
            ]
        }
    })
}

const PUBLIC: &str = "10-hcloud-public.network";
const BACKEND: &str = "10-hcloud-private-8600005e6f70.network";
const STORAGE: &str = "10-hcloud-private-8600005e6f71.network";

fn set_doc(root: &TestRoot, doc: &Value) {
    root.set_document(&serde_json::to_string_pretty(doc).unwrap());
}

fn mtime(path: &std::path::Path) -> SystemTime {
    std::fs::metadata(path).unwrap().modified().unwrap()
}

fn backdate(path: &std::path::Path) -> SystemTime {
    let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(old)
        .unwrap();
    old
}

#[test]
fn writes_one_file_per_interface_with_mode_0644() {
    let root = TestRoot::new();
    set_doc(&root, &document());
    let out = root.run(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(root.files(), [BACKEND, STORAGE, PUBLIC]);
    use std::os::unix::fs::PermissionsExt;
    for f in root.files() {
        let mode = std::fs::metadata(root.network_dir().join(&f))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o644, "{f}");
    }
    let log = stderr(&out);
    assert!(log.contains(&format!("wrote {}/{BACKEND}: private 86:00:00:5e:6f:70, 10.20.1.5/32, 10.20.0.0/16 via 10.20.0.1, alias IPs 10.20.1.6", root.network_dir().display())), "{log}");
    assert!(log.contains("networkd not reloaded"), "{log}");
}

#[test]
fn stale_files_are_removed_and_foreign_files_untouched() {
    let root = TestRoot::new();
    let dir = root.network_dir();
    // Foreign: another tool's files, a user's drop-in directory for our file, look-alikes.
    let foreign = [
        ("10-netplan-eth0.network", "[Match]\nName=eth0\n"),
        ("10-hcloudish.network", "[Match]\nName=x\n"),
        (
            "10-hcloud-public.network.d/mtu.conf",
            "[Link]\nMTUBytes=1400\n",
        ),
        ("10-hcloud-notes.txt", "mine\n"),
        ("80-dhcp.network", "[Match]\nName=en*\n"),
    ];
    for (name, text) in foreign {
        root.write(&format!("/run/systemd/network/{name}"), text);
    }
    let stamps: Vec<SystemTime> = foreign
        .iter()
        .map(|(n, _)| backdate(&dir.join(n)))
        .collect();
    // Stale: one of ours for a network that is gone.
    root.write(
        "/run/systemd/network/10-hcloud-private-860000aaaaaa.network",
        "[Match]\n",
    );

    set_doc(&root, &document());
    let out = root.run(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!dir.join("10-hcloud-private-860000aaaaaa.network").exists());
    assert!(stderr(&out).contains("removed"), "{}", stderr(&out));
    for ((name, text), stamp) in foreign.iter().zip(stamps) {
        let p = dir.join(name);
        assert_eq!(std::fs::read_to_string(&p).unwrap(), *text, "{name}");
        assert_eq!(mtime(&p), stamp, "{name} was touched");
    }

    // Detach `storage`: its file goes, the others stay.
    let mut doc = document();
    doc["network"]["private"].as_array_mut().unwrap().remove(1);
    set_doc(&root, &doc);
    let out = root.run(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!dir.join(STORAGE).exists());
    assert!(dir.join(BACKEND).exists() && dir.join(PUBLIC).exists());
    assert!(
        stderr(&out).contains(&format!("removed {}/{STORAGE}", dir.display())),
        "{}",
        stderr(&out)
    );
}

#[test]
fn unchanged_input_rewrites_nothing() {
    let root = TestRoot::new();
    set_doc(&root, &document());
    assert_eq!(root.run(&[]).status.code(), Some(0));
    let dir = root.network_dir();
    let stamps: Vec<SystemTime> = root
        .files()
        .iter()
        .map(|f| backdate(&dir.join(f)))
        .collect();
    let inode =
        |f: &str| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(dir.join(f)).unwrap());
    let inodes: Vec<u64> = root.files().iter().map(|f| inode(f)).collect();

    let out = root.run(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("network configuration unchanged (3 file(s)"),
        "{}",
        stderr(&out)
    );
    let after: Vec<SystemTime> = root.files().iter().map(|f| mtime(&dir.join(f))).collect();
    assert_eq!(after, stamps);
    assert_eq!(
        root.files().iter().map(|f| inode(f)).collect::<Vec<_>>(),
        inodes
    );

    // A real change rewrites exactly the file concerned.
    let mut doc = document();
    doc["network"]["private"][1]["alias_ips"] = json!(["172.16.9.10"]);
    set_doc(&root, &doc);
    assert_eq!(root.run(&[]).status.code(), Some(0));
    assert_eq!(mtime(&dir.join(PUBLIC)), stamps[0]);
    assert_eq!(mtime(&dir.join(BACKEND)), stamps[1]);
    assert_ne!(mtime(&dir.join(STORAGE)), stamps[2]);
    assert!(
        std::fs::read_to_string(dir.join(STORAGE))
            .unwrap()
            .contains("Address=172.16.9.10/32")
    );
}

#[test]
fn bad_entries_are_skipped_with_a_clear_message() {
    let root = TestRoot::new();
    let mut doc = document();
    doc["network"]["private"][0]["gateway"] = json!("10.99.0.1");
    doc["network"]["private"]
        .as_array_mut()
        .unwrap()
        .push(json!({
            "ip": "192.168.0.7", "alias_ips": ["192.168.0.x"], "interface_num": 3,
            "mac_address": "86:00:00:00:00:03", "network_id": 5, "network_name": "mgmt",
            "network": "192.168.0.0/24", "subnet": "192.168.0.0/24", "gateway": "192.168.0.1"
        }));
    doc["network"]["private"]
        .as_array_mut()
        .unwrap()
        .push(json!({
            "ip": "10.30.0.2", "alias_ips": [], "interface_num": 4,
            "mac_address": "86:00:00:5e:6f:71", "network_id": 6, "network_name": "twin",
            "network": "10.30.0.0/16", "subnet": "10.30.0.0/24", "gateway": "10.30.0.1"
        }));
    set_doc(&root, &doc);
    let out = root.run(&[]);
    let log = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{log}");
    // The good ones are configured.
    assert_eq!(root.files(), [STORAGE, PUBLIC]);
    assert!(
        std::fs::read_to_string(root.network_dir().join(STORAGE))
            .unwrap()
            .contains("Address=172.16.9.9/32")
    );
    for want in [
        "skipped network.private[0] (backend, 86:00:00:5e:6f:70): gateway 10.99.0.1 is outside its network 10.20.0.0/16",
        "skipped network.private[2] (mgmt, 86:00:00:00:00:03): alias_ips entry \"192.168.0.x\" is not a valid IPv4 address",
        "skipped network.private[3] (twin, 86:00:00:5e:6f:71): MAC address 86:00:00:5e:6f:71 is already used by network.private[1]",
        "configured 2 interface(s) from /etc/hcloud-metadata.json, but 3 entries skipped: fix",
    ] {
        assert!(log.contains(want), "missing {want:?} in:\n{log}");
    }
}

#[test]
fn a_skipped_entry_keeps_its_previous_file() {
    let root = TestRoot::new();
    set_doc(&root, &document());
    assert_eq!(root.run(&[]).status.code(), Some(0));
    let before = std::fs::read_to_string(root.network_dir().join(BACKEND)).unwrap();

    let mut doc = document();
    doc["network"]["private"][0]["network"] = json!("10.20.0.0/99");
    set_doc(&root, &doc);
    let out = root.run(&[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(root.network_dir().join(BACKEND)).unwrap(),
        before
    );
    assert!(
        stderr(&out).contains(&format!(
            "kept {}/{BACKEND} as it was",
            root.network_dir().display()
        )),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_document_of_another_instance_is_refused() {
    let root = TestRoot::new();
    root.write("/sys/class/dmi/id/sys_vendor", "Hetzner\n");
    root.write("/sys/class/dmi/id/product_serial", "48151623\n");
    set_doc(&root, &document());
    let out = root.run(&[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "matching serial: {}",
        stderr(&out)
    );
    assert_eq!(root.files().len(), 3);

    // A snapshot clone: same files, another serial. Nothing is changed, not even removals.
    root.write("/sys/class/dmi/id/product_serial", "99999999\n");
    let mut doc = document();
    doc["network"]["private"] = json!([]);
    set_doc(&root, &doc);
    let out = root.run(&[]);
    let log = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{log}");
    assert!(
        log.contains("belongs to instance 48151623 but this server's DMI serial is 99999999"),
        "{log}"
    );
    assert!(log.contains("no network file was changed"), "{log}");
    assert_eq!(root.files().len(), 3);
}

#[test]
fn a_missing_document_is_an_error_that_says_what_to_do() {
    let root = TestRoot::new();
    let out = root.run(&[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("run hcloud-dl-metadata first"),
        "{}",
        stderr(&out)
    );
    assert!(!root.network_dir().exists());
}

#[test]
fn output_dir_and_metadata_are_resolved_under_the_root() {
    let root = TestRoot::new();
    root.write(
        "/srv/doc.json",
        &serde_json::to_string(&document()).unwrap(),
    );
    let out = root.run(&[
        "--metadata",
        "/srv/doc.json",
        "--output-dir",
        "/etc/systemd/network",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(root.path("/etc/systemd/network").join(PUBLIC).exists());
    let text = std::fs::read_to_string(root.path("/etc/systemd/network").join(PUBLIC)).unwrap();
    assert!(
        text.contains("Generated by hcloud-network from /srv/doc.json"),
        "{text}"
    );
    assert!(!root.network_dir().exists());
}

#[test]
fn hotplug_queue_round_trip() {
    let root = TestRoot::new();
    assert!(
        root.run(&["--queue-refresh", "1234-add-enp7s0"])
            .status
            .success()
    );
    assert!(
        root.run(&["--queue-refresh", "1235-add-enp8s0"])
            .status
            .success()
    );
    assert_eq!(
        common::list(&root.path("/run/hcloud-network/hotplug")),
        ["1234-add-enp7s0", "1235-add-enp8s0"]
    );
    let out = root.run(&["--clear-refresh-queue"]);
    assert!(out.status.success());
    assert!(
        stderr(&out).contains("hotplug event(s): 1234-add-enp7s0 1235-add-enp8s0"),
        "{}",
        stderr(&out)
    );
    assert!(common::list(&root.path("/run/hcloud-network/hotplug")).is_empty());
}

#[test]
fn private_dhcp_from_the_environment() {
    let root = TestRoot::new();
    set_doc(&root, &document());
    let run = |value: &str| {
        std::process::Command::new(common::BIN)
            .arg("--root")
            .arg(root.dir.path())
            .env("HCLOUD_NETWORK_PRIVATE_DHCP", value)
            .output()
            .unwrap()
    };
    let private = || std::fs::read_to_string(root.network_dir().join(BACKEND)).unwrap();
    assert_eq!(run("true").status.code(), Some(0));
    assert!(private().contains("DHCP=ipv4\n"), "{}", private());
    assert!(
        private().contains("Address=10.20.1.6/32"),
        "alias IPs stay static"
    );
    assert!(
        !private().contains("Address=10.20.1.5/32"),
        "the IP comes from DHCP"
    );
    assert_eq!(run("false").status.code(), Some(0));
    assert!(private().contains("DHCP=no\n") && private().contains("Address=10.20.1.5/32"));
}

#[test]
fn a_competing_cloud_init_network_config_is_warned_about_and_nothing_else_changes() {
    // A stock Hetzner server: cloud-init renders the network too. The agent still writes its
    // files (it only warns) and names the setting that hands the job over.
    let root = TestRoot::new();
    set_doc(&root, &document());
    root.write(
        "etc/cloud/cloud.cfg",
        "cloud_init_modules:\n  - set_hostname\n",
    );
    root.write(
        "etc/systemd/network/10-netplan-eth0.network",
        "[Match]\nName=eth0\n",
    );
    let out = root.run(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let log = stderr(&out);
    assert!(
        log.contains("cloud-init also configures the network interfaces"),
        "{log}"
    );
    assert!(log.contains("network: {config: disabled}"), "{log}");
    assert_eq!(root.files(), [BACKEND, STORAGE, PUBLIC]);
    assert_eq!(
        std::fs::read_to_string(root.path("etc/systemd/network/10-netplan-eth0.network")).unwrap(),
        "[Match]\nName=eth0\n"
    );
}

#[test]
fn a_symlink_planted_at_an_output_file_is_refused_and_left_alone() {
    let root = TestRoot::new();
    set_doc(&root, &document());
    root.write("/etc/shadow", "root:!:19000::::::\n");
    std::fs::create_dir_all(root.network_dir()).unwrap();
    std::os::unix::fs::symlink(root.path("/etc/shadow"), root.network_dir().join(PUBLIC)).unwrap();
    let out = root.run(&[]);
    assert_ne!(out.status.code(), Some(0));
    assert!(stderr(&out).contains("symbolic link"), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(root.path("/etc/shadow")).unwrap(),
        "root:!:19000::::::\n"
    );
    assert!(
        std::fs::symlink_metadata(root.network_dir().join(PUBLIC))
            .unwrap()
            .file_type()
            .is_symlink()
    );
}

/// `/run` full or read-only (a real tmpfs in a private mount namespace): the run fails, the
/// files of the previous run are there byte for byte, no temporary file is left.
fn run_with_run_dir(setup: &str) -> (String, String, Vec<u8>) {
    let root = TestRoot::new();
    set_doc(&root, &document());
    let first = root.run(&[]);
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let before = std::fs::read(root.network_dir().join(PUBLIC)).unwrap();
    // A changed document, so the second run has to write.
    let mut doc = document();
    doc["network"]["nameservers"] = json!(["185.12.64.2"]);
    set_doc(&root, &doc);
    let script = format!(
        r#"set -eu
mkdir -p "$R/run.saved"
cp -a "$R/run/systemd/network/." "$R/run.saved/"
mount -t tmpfs -o size=64k tmpfs "$R/run"
mkdir -p "$R/run/systemd/network"
cp -a "$R/run.saved/." "$R/run/systemd/network/"
{setup}
set +e
"$BIN" --root "$R"
echo "rc=$?"
ls -a "$R/run/systemd/network" | grep -c tmp || true
cat "$R/run/systemd/network/{PUBLIC}"
"#
    );
    let out = std::process::Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .env("R", root.dir.path())
        .env("BIN", common::BIN)
        .env_remove("JOURNAL_STREAM")
        .output()
        .expect("unshare");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        before,
    )
}

#[test]
fn a_full_run_directory_keeps_the_previous_files() {
    let (stdout, stderr, before) =
        run_with_run_dir(r#"dd if=/dev/zero of="$R/run/filler" bs=4k 2>/dev/null || true"#);
    assert!(
        stdout.starts_with("rc=") && !stdout.starts_with("rc=0"),
        "{stdout}\n{stderr}"
    );
    assert!(stderr.contains("No space left on device"), "{stderr}");
    let (_, rest) = stdout.split_once('\n').unwrap();
    let (tmp_count, file) = rest.split_once('\n').unwrap();
    assert_eq!(tmp_count, "0", "a temporary file was left behind");
    assert_eq!(file.as_bytes(), before.as_slice());
}

#[test]
fn a_read_only_run_directory_keeps_the_previous_files() {
    let (stdout, stderr, before) = run_with_run_dir(r#"mount -o remount,ro "$R/run""#);
    assert!(
        stdout.starts_with("rc=") && !stdout.starts_with("rc=0"),
        "{stdout}\n{stderr}"
    );
    assert!(stderr.contains("Read-only file system"), "{stderr}");
    let (_, rest) = stdout.split_once('\n').unwrap();
    let (_, file) = rest.split_once('\n').unwrap();
    assert_eq!(file.as_bytes(), before.as_slice());
}

/// A burst of hotplug events while the refresh runs: every event is taken exactly once, runs
/// at the same time never leave a partial or a stale file, and the files end as one run
/// writes them.
#[test]
fn a_burst_of_hotplug_events_is_taken_once_and_leaves_whole_files() {
    let root = TestRoot::new();
    set_doc(&root, &document());
    let single = TestRoot::new();
    set_doc(&single, &document());
    assert_eq!(single.run(&[]).status.code(), Some(0));
    let spawn = |args: Vec<String>| {
        std::process::Command::new(common::BIN)
            .arg("--root")
            .arg(root.dir.path())
            .args(args)
            .env_remove("JOURNAL_STREAM")
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut children = Vec::new();
    for i in 0..40 {
        children.push(spawn(vec!["--queue-refresh".into(), format!("ens{i}")]));
        if i % 8 == 0 {
            children.push(spawn(vec!["--clear-refresh-queue".into()]));
            children.push(spawn(vec![]));
        }
    }
    let mut taken = Vec::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        let log = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(0), "{log}");
        if let Some(line) = log
            .lines()
            .find(|l| l.contains("refreshing for hotplug event(s):"))
        {
            let (_, tags) = line.split_once("event(s): ").unwrap();
            taken.extend(tags.split_whitespace().map(str::to_string));
        }
    }
    let out = root.run(&["--clear-refresh-queue"]);
    if let Some(line) = stderr(&out)
        .lines()
        .find(|l| l.contains("refreshing for hotplug event(s):"))
    {
        let (_, tags) = line.split_once("event(s): ").unwrap();
        taken.extend(tags.split_whitespace().map(str::to_string));
    }
    taken.sort();
    let mut want: Vec<String> = (0..40).map(|i| format!("ens{i}")).collect();
    want.sort();
    assert_eq!(taken, want, "every event exactly once");
    assert_eq!(root.run(&[]).status.code(), Some(0));
    assert_eq!(root.files(), single.files());
    for f in single.files() {
        assert_eq!(
            std::fs::read(root.network_dir().join(&f)).unwrap(),
            std::fs::read(single.network_dir().join(&f)).unwrap(),
            "{f}"
        );
    }
}

/// A stand-in for hcloud-dl-metadata: records its arguments next to itself, then installs
/// `next.json` as the document under the --root it was given (or fails with `exit`).
fn stub_downloader(dir: &std::path::Path, next: Option<&Value>) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let script = dir.join("downloader");
    let body = match next {
        Some(doc) => {
            std::fs::write(dir.join("next.json"), serde_json::to_vec(doc).unwrap()).unwrap();
            format!(
                "root=\"\"; while [ $# -gt 0 ]; do [ \"$1\" = --root ] && root=$2; shift; done\n\
                 cp {next} \"$root/etc/hcloud-metadata.json\"\n",
                next = dir.join("next.json").display()
            )
        }
        None => "echo 'no document for this server could be had' >&2; exit 1\n".to_string(),
    };
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$@\" > {args}\n{body}",
            args = dir.join("args").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

#[test]
fn refresh_takes_the_queue_syncs_the_document_then_configures_the_new_nic() {
    let root = TestRoot::new();
    let mut before = document();
    before["network"]["private"].as_array_mut().unwrap().pop();
    set_doc(&root, &before);
    assert_eq!(root.run(&[]).status.code(), Some(0));
    assert_eq!(root.files(), [BACKEND, PUBLIC]);
    assert!(
        root.run(&["--queue-refresh", "77-add-enp8s0"])
            .status
            .success()
    );

    let tools = tempfile::tempdir().unwrap();
    let downloader = stub_downloader(tools.path(), Some(&document()));
    let out = root.run(&["--refresh", "--downloader", downloader.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("hotplug event(s): 77-add-enp8s0"),
        "{}",
        stderr(&out)
    );
    assert!(common::list(&root.path("/run/hcloud-network/hotplug")).is_empty());
    let args = std::fs::read_to_string(tools.path().join("args")).unwrap();
    assert_eq!(
        args.trim(),
        format!(
            "--sync-private-nics --timeout 300 --root {} --output /etc/hcloud-metadata.json",
            root.dir.path().display()
        )
    );
    assert_eq!(root.files(), [BACKEND, STORAGE, PUBLIC]);
}

#[test]
fn a_refresh_whose_download_fails_leaves_the_networks_as_they_are() {
    let root = TestRoot::new();
    set_doc(&root, &document());
    assert_eq!(root.run(&[]).status.code(), Some(0));
    let storage = std::fs::read(root.network_dir().join(STORAGE)).unwrap();
    let tools = tempfile::tempdir().unwrap();
    let downloader = stub_downloader(tools.path(), None);
    let out = root.run(&[
        "--refresh",
        "--sync-timeout",
        "5",
        "--downloader",
        downloader.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("the downloader {} failed", downloader.display())),
        "{}",
        stderr(&out)
    );
    assert!(
        std::fs::read_to_string(tools.path().join("args"))
            .unwrap()
            .contains("--timeout 5 ")
    );
    assert_eq!(root.files(), [BACKEND, STORAGE, PUBLIC]);
    assert_eq!(
        std::fs::read(root.network_dir().join(STORAGE)).unwrap(),
        storage
    );

    let missing = tools.path().join("no-such-downloader");
    let out = root.run(&["--refresh", "--downloader", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains(&format!("cannot run the downloader {}", missing.display())),
        "{}",
        stderr(&out)
    );
    assert_eq!(root.files(), [BACKEND, STORAGE, PUBLIC]);
}
