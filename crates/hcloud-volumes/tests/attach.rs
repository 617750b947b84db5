//! The real binary on `--root` trees laid out like a server where udev has seen the volumes,
//! against the fake metadata service on loopback.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::Path;
use std::process::{Command, Output};

use hcloud_fake_metadata::{FakeServer, Scenario, Source};

const BIN: &str = env!("CARGO_BIN_EXE_hcloud-volumes");
const FSTAB: &str = "UUID=0a3407de-014b-458b-b5c1-848e92a327a3 / ext4 errors=remount-ro 0 1\n# the user's comment\n";

fn fake(volumes: &str, window: u64) -> FakeServer {
    let yaml = format!(
        "server:\n  id: 48151623\n  name: app-7\n  volumes:\n{volumes}\noptions:\n  automount_window_secs: {window}\n"
    );
    let sc = Scenario::from_yaml(&yaml).expect("scenario");
    FakeServer::start("127.0.0.1:0", Source::Fixed(sc)).expect("fake")
}

/// A volume as udev leaves it: the by-id link, the sysfs device number, udev's record.
fn plug(root: &Path, id: u64, kernel: &str, minor: u32, props: &[(&str, &str)]) {
    let byid = root.join("dev/disk/by-id");
    fs::create_dir_all(&byid).unwrap();
    symlink(
        format!("../../{kernel}"),
        byid.join(format!("scsi-0HC_Volume_{id}")),
    )
    .unwrap();
    let sys = root.join(format!("sys/class/block/{kernel}"));
    fs::create_dir_all(&sys).unwrap();
    fs::write(sys.join("dev"), format!("8:{minor}\n")).unwrap();
    let data = root.join("run/udev/data");
    fs::create_dir_all(&data).unwrap();
    let mut text = format!(
        "S:disk/by-id/scsi-0HC_Volume_{id}\nE:ID_VENDOR=HC\nE:ID_MODEL=Volume\nE:ID_SERIAL_SHORT={id}\nE:ID_BUS=scsi\n"
    );
    for (k, v) in props {
        text.push_str(&format!("E:{k}={v}\n"));
    }
    text.push_str("G:systemd\n");
    fs::write(data.join(format!("b8:{minor}")), text).unwrap();
}

fn unplug(root: &Path, id: u64) {
    fs::remove_file(root.join(format!("dev/disk/by-id/scsi-0HC_Volume_{id}"))).unwrap();
}

const EXT4: &[(&str, &str)] = &[
    ("ID_FS_TYPE", "ext4"),
    ("ID_FS_USAGE", "filesystem"),
    ("ID_FS_UUID", "9d2c5a8e-6f0b-4c41-a0f4-2b1d7b3f0c11"),
];

fn tree() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    fs::create_dir_all(t.path().join("etc")).unwrap();
    fs::create_dir_all(t.path().join("mnt")).unwrap();
    fs::write(t.path().join("etc/fstab"), FSTAB).unwrap();
    t
}

fn run(root: &Path, url: &str, id: u64) -> Output {
    run_args(root, url, &["attach", &id.to_string()])
}

fn ok(o: &Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "failed: {err}");
    err
}

fn fstab(root: &Path) -> String {
    fs::read_to_string(root.join("etc/fstab")).unwrap()
}

fn volume_requests(f: &FakeServer) -> usize {
    f.requests()
        .iter()
        .filter(|r| r.path.starts_with("/_internal/v1/volumes/"))
        .count()
}

#[test]
fn automount_volume_is_recorded_once_and_mounted_at_the_stock_path() {
    let f = fake("    - id: 100001\n      automount: true", 300);
    let t = tree();
    plug(t.path(), 100001, "sdb", 16, EXT4);
    let err = ok(&run(t.path(), &f.base_url(), 100001));
    assert!(err.contains("recorded in /etc/fstab"), "{err}");
    let want = format!(
        "{FSTAB}/dev/disk/by-id/scsi-0HC_Volume_100001 /mnt/HC_Volume_100001 ext4 discard,nofail,defaults 0 0\n"
    );
    assert_eq!(fstab(t.path()), want);
    let mp = fs::metadata(t.path().join("mnt/HC_Volume_100001")).unwrap();
    assert!(mp.is_dir());
    assert_eq!(mp.permissions().mode() & 0o7777, 0o755);
    assert_eq!(volume_requests(&f), 1);

    // A reboot (or a reattach): no question, no second line, the file not even rewritten.
    let inode = fs::metadata(t.path().join("etc/fstab")).unwrap().ino();
    let err = ok(&run(t.path(), &f.base_url(), 100001));
    assert!(
        err.contains("is recorded at /mnt/HC_Volume_100001"),
        "{err}"
    );
    assert_eq!(fstab(t.path()), want);
    assert_eq!(
        fs::metadata(t.path().join("etc/fstab")).unwrap().ino(),
        inode
    );
    assert_eq!(volume_requests(&f), 1);
}

#[test]
fn volume_without_automount_is_not_recorded() {
    let f = fake("    - id: 100002\n      automount: false", 300);
    let t = tree();
    plug(t.path(), 100002, "sdc", 32, EXT4);
    let err = ok(&run(t.path(), &f.base_url(), 100002));
    assert!(err.contains("automount was not requested"), "{err}");
    assert_eq!(fstab(t.path()), FSTAB);
    assert!(!t.path().join("mnt/HC_Volume_100002").exists());
    assert_eq!(volume_requests(&f), 1);
}

#[test]
fn the_answer_expires_like_the_real_endpoint() {
    let f = fake("    - id: 100003\n      automount: true", 0);
    let t = tree();
    plug(t.path(), 100003, "sdb", 16, EXT4);
    ok(&run(t.path(), &f.base_url(), 100003));
    assert_eq!(fstab(t.path()), FSTAB);
}

#[test]
fn unformatted_and_non_filesystem_volumes_are_never_touched() {
    let f = fake(
        "    - id: 100004\n      automount: true\n    - id: 100005\n      automount: true",
        300,
    );
    let t = tree();
    plug(t.path(), 100004, "sdb", 16, &[]);
    plug(
        t.path(),
        100005,
        "sdc",
        32,
        &[("ID_FS_TYPE", "crypto_LUKS"), ("ID_FS_USAGE", "crypto")],
    );
    let err = ok(&run(t.path(), &f.base_url(), 100004));
    assert!(err.contains("has no filesystem; left untouched"), "{err}");
    let err = ok(&run(t.path(), &f.base_url(), 100005));
    assert!(err.contains("crypto_LUKS (crypto)"), "{err}");
    assert_eq!(fstab(t.path()), FSTAB);
    assert!(!t.path().join("mnt/HC_Volume_100004").exists());
    assert_eq!(volume_requests(&f), 0, "not even asked");
}

#[test]
fn a_users_own_line_for_the_device_wins() {
    let f = fake("    - id: 100006\n      automount: true", 300);
    let t = tree();
    plug(t.path(), 100006, "sdb", 16, EXT4);
    let mine =
        format!("{FSTAB}UUID=9d2c5a8e-6f0b-4c41-a0f4-2b1d7b3f0c11 /srv/data ext4 defaults 0 2");
    fs::write(t.path().join("etc/fstab"), &mine).unwrap();
    let err = ok(&run(t.path(), &f.base_url(), 100006));
    assert!(err.contains("mounted at /srv/data by line 3"), "{err}");
    assert_eq!(fstab(t.path()), mine);
    assert_eq!(volume_requests(&f), 0);
}

#[test]
fn detached_before_the_service_ran_is_not_an_error() {
    let f = fake("    - id: 100007\n      automount: true", 300);
    let t = tree();
    plug(t.path(), 100007, "sdb", 16, EXT4);
    unplug(t.path(), 100007);
    let err = ok(&run(t.path(), &f.base_url(), 100007));
    assert!(err.contains("no longer attached"), "{err}");
    assert_eq!(fstab(t.path()), FSTAB);
}

#[test]
fn fstab_mode_owner_and_missing_final_newline_are_respected() {
    let f = fake("    - id: 100008\n      automount: true", 300);
    let t = tree();
    plug(t.path(), 100008, "sdb", 16, EXT4);
    let p = t.path().join("etc/fstab");
    fs::write(&p, "proc /proc proc defaults 0 0").unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o640)).unwrap();
    let owner = fs::metadata(&p).unwrap().uid();
    ok(&run(t.path(), &f.base_url(), 100008));
    assert_eq!(
        fstab(t.path()),
        "proc /proc proc defaults 0 0\n/dev/disk/by-id/scsi-0HC_Volume_100008 /mnt/HC_Volume_100008 ext4 discard,nofail,defaults 0 0\n"
    );
    let m = fs::metadata(&p).unwrap();
    assert_eq!(m.permissions().mode() & 0o7777, 0o640);
    assert_eq!(m.uid(), owner);
}

#[test]
fn volumes_attached_together_each_get_exactly_one_line() {
    let ids: Vec<u64> = (200001..200009).collect();
    let list: String = ids
        .iter()
        .map(|id| format!("    - id: {id}\n      automount: true\n"))
        .collect();
    let f = fake(list.trim_end(), 300);
    let t = tree();
    for (i, id) in ids.iter().enumerate() {
        plug(
            t.path(),
            *id,
            &format!("sd{}", (b'b' + i as u8) as char),
            16 * (i as u32 + 1),
            EXT4,
        );
    }
    let url = f.base_url();
    let children: Vec<_> = ids
        .iter()
        .map(|id| {
            Command::new(BIN)
                .args(["--root", t.path().to_str().unwrap(), "--metadata-url", &url])
                .args(["--timeout", "5", "attach", &id.to_string()])
                .env_remove("JOURNAL_STREAM")
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        ok(&c.wait_with_output().unwrap());
    }
    let text = fstab(t.path());
    assert!(text.starts_with(FSTAB));
    for id in &ids {
        let n = text
            .lines()
            .filter(|l| l.contains(&format!(" /mnt/HC_Volume_{id} ")))
            .count();
        assert_eq!(n, 1, "volume {id} in:\n{text}");
    }
    assert_eq!(text.lines().count(), FSTAB.lines().count() + ids.len());
}

#[test]
fn an_unreachable_service_fails_naming_the_endpoint() {
    let t = tree();
    plug(t.path(), 100009, "sdb", 16, EXT4);
    // A port nothing listens on: bind one, note it, close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let o = Command::new(BIN)
        .args(["--root", t.path().to_str().unwrap()])
        .args([
            "--metadata-url",
            &format!("http://127.0.0.1:{port}/hetzner/v1/"),
        ])
        .args(["--timeout", "1", "attach", "100009"])
        .env_remove("JOURNAL_STREAM")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains(&format!("127.0.0.1:{port}/_internal/v1/volumes/100009")),
        "{err}"
    );
    assert_eq!(fstab(t.path()), FSTAB);
}

#[test]
fn a_disk_that_is_not_a_hetzner_volume_is_refused() {
    let f = fake("    - id: 100010\n      automount: true", 300);
    let t = tree();
    plug(t.path(), 100010, "sdb", 16, EXT4);
    // The link points to a disk whose udev record says something else.
    let data = t.path().join("run/udev/data/b8:16");
    let text = fs::read_to_string(&data)
        .unwrap()
        .replace("ID_MODEL=Volume", "ID_MODEL=QEMU_HARDDISK");
    fs::write(&data, text).unwrap();
    let o = run(t.path(), &f.base_url(), 100010);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a Hetzner Cloud Volume"));
    assert_eq!(fstab(t.path()), FSTAB);
}

#[test]
fn hc_utils_doing_the_same_job_is_warned_about() {
    let f = fake("    - id: 100011\n      automount: false", 300);
    let t = tree();
    plug(t.path(), 100011, "sdb", 16, EXT4);
    let rules = t.path().join("usr/lib/udev/rules.d");
    fs::create_dir_all(&rules).unwrap();
    fs::write(rules.join("99-hc-volume-automount.rules"), "# hc-utils\n").unwrap();
    let err = ok(&run(t.path(), &f.base_url(), 100011));
    assert!(
        err.contains("warning: hc-utils also mounts Hetzner Cloud Volumes"),
        "{err}"
    );
    assert!(err.contains("ln -s /dev/null /etc/udev/rules.d/99-hc-volume-automount.rules"));
    symlink(
        "/dev/null",
        t.path()
            .join("etc/udev/rules.d/99-hc-volume-automount.rules"),
    )
    .or_else(|_| {
        fs::create_dir_all(t.path().join("etc/udev/rules.d"))?;
        symlink(
            "/dev/null",
            t.path()
                .join("etc/udev/rules.d/99-hc-volume-automount.rules"),
        )
    })
    .unwrap();
    let err = ok(&run(t.path(), &f.base_url(), 100011));
    assert!(!err.contains("hc-utils"), "{err}");
}

#[test]
fn a_symlinked_fstab_is_refused_and_neither_replaced_nor_widened() {
    // NixOS links /etc/fstab into the store; a link mode is 0777. The agent must not turn it
    // into a world-writable regular file, nor write through it.
    let f = fake("    - id: 100001\n      automount: true", 300);
    let t = tree();
    plug(t.path(), 100001, "sdb", 16, EXT4);
    let real = t.path().join("etc/static-fstab");
    fs::rename(t.path().join("etc/fstab"), &real).unwrap();
    symlink("static-fstab", t.path().join("etc/fstab")).unwrap();
    let out = run(t.path(), &f.base_url(), 100001);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("/etc/fstab") && err.contains("symbolic link"),
        "{err}"
    );
    let link = fs::symlink_metadata(t.path().join("etc/fstab")).unwrap();
    assert!(link.file_type().is_symlink());
    assert_eq!(fs::read_to_string(&real).unwrap(), FSTAB);
    assert_eq!(
        fs::metadata(&real).unwrap().permissions().mode() & 0o7777,
        0o644
    );
}

#[test]
fn a_world_writable_fstab_is_narrowed_to_0644() {
    let f = fake("    - id: 100001\n      automount: true", 300);
    let t = tree();
    plug(t.path(), 100001, "sdb", 16, EXT4);
    let p = t.path().join("etc/fstab");
    fs::set_permissions(&p, fs::Permissions::from_mode(0o666)).unwrap();
    ok(&run(t.path(), &f.base_url(), 100001));
    assert_eq!(
        fs::metadata(&p).unwrap().permissions().mode() & 0o7777,
        0o644
    );
}

#[test]
fn a_non_utf8_fstab_keeps_its_bytes() {
    let f = fake("    - id: 100001\n      automount: true", 300);
    let t = tree();
    plug(t.path(), 100001, "sdb", 16, EXT4);
    let mut old = FSTAB.as_bytes().to_vec();
    old.extend_from_slice(b"# caf\xe9 latin-1 comment\n/dev/sdz /srv/d\xfcr ext4 defaults 0 2\n");
    fs::write(t.path().join("etc/fstab"), &old).unwrap();
    ok(&run(t.path(), &f.base_url(), 100001));
    let mut want = old.clone();
    want.extend_from_slice(
        b"/dev/disk/by-id/scsi-0HC_Volume_100001 /mnt/HC_Volume_100001 ext4 discard,nofail,defaults 0 0\n",
    );
    assert_eq!(fs::read(t.path().join("etc/fstab")).unwrap(), want);
    // Run again: found, not added twice.
    ok(&run(t.path(), &f.base_url(), 100001));
    assert_eq!(fs::read(t.path().join("etc/fstab")).unwrap(), want);
}

#[test]
fn a_symlink_planted_at_the_lock_is_refused_and_its_target_never_created() {
    let f = fake("    - id: 100001\n      automount: true", 300);
    let t = tree();
    plug(t.path(), 100001, "sdb", 16, EXT4);
    fs::create_dir_all(t.path().join("run/hcloud-volumes")).unwrap();
    symlink(
        t.path().join("etc/sudoers.d-x"),
        t.path().join("run/hcloud-volumes/fstab.lock"),
    )
    .unwrap();
    let out = run(t.path(), &f.base_url(), 100001);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("symbolic link"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!t.path().join("etc/sudoers.d-x").exists());
    assert_eq!(fstab(t.path()), FSTAB);
}

fn run_args(root: &Path, url: &str, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(["--root", root.to_str().unwrap(), "--metadata-url", url])
        .args(["--timeout", "3"])
        .args(args)
        .env_remove("JOURNAL_STREAM")
        .output()
        .unwrap()
}

/// The unit's two steps: `ask` (sandboxed, /etc read-only) asks and writes only its answer;
/// `attach --answered` records and mounts from that answer without asking again.
#[test]
fn ask_writes_only_the_answer_and_attach_answered_records_from_it() {
    let f = fake("    - id: 100010\n      automount: true", 300);
    let t = tree();
    plug(t.path(), 100010, "sdb", 16, EXT4);
    let answer = t.path().join("run/hcloud-volumes/100010.automount");
    ok(&run_args(t.path(), &f.base_url(), &["ask", "100010"]));
    assert_eq!(fs::read_to_string(&answer).unwrap(), "yes\n");
    assert_eq!(fstab(t.path()), FSTAB, "ask wrote fstab");
    assert!(!t.path().join("mnt/HC_Volume_100010").exists());
    assert_eq!(volume_requests(&f), 1);

    let err = ok(&run_args(
        t.path(),
        "http://127.0.0.1:9/",
        &["attach", "--answered", "100010"],
    ));
    assert!(err.contains("recorded in /etc/fstab"), "{err}");
    assert!(fstab(t.path()).contains("/mnt/HC_Volume_100010 ext4"));
    assert!(!answer.exists(), "the answer is used once");
    assert_eq!(volume_requests(&f), 1);

    // Recorded now: ask needs no question and leaves no answer; attach mounts again.
    ok(&run_args(t.path(), &f.base_url(), &["ask", "100010"]));
    assert!(!answer.exists());
    assert_eq!(volume_requests(&f), 1);
    let err = ok(&run_args(
        t.path(),
        "http://127.0.0.1:9/",
        &["attach", "--answered", "100010"],
    ));
    assert!(err.contains("is recorded at"), "{err}");
}

/// What the sandboxed step leaves is not trusted: no answer, a link, or another word records
/// nothing.
#[test]
fn attach_answered_refuses_a_missing_or_strange_answer() {
    let t = tree();
    plug(t.path(), 100011, "sdb", 16, EXT4);
    let dir = t.path().join("run/hcloud-volumes");
    fs::create_dir_all(&dir).unwrap();
    let answer = dir.join("100011.automount");
    for (what, plant) in [("no answer", 0), ("a link", 1), ("another word", 2)] {
        let _ = fs::remove_file(&answer);
        match plant {
            1 => symlink("/etc/passwd", &answer).unwrap(),
            2 => fs::write(&answer, "yes please\n").unwrap(),
            _ => {}
        }
        let out = run_args(
            t.path(),
            "http://127.0.0.1:9/",
            &["attach", "--answered", "100011"],
        );
        assert!(!out.status.success(), "{what} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("no usable answer"), "{what}: {err}");
        assert_eq!(fstab(t.path()), FSTAB, "{what}");
    }
}
