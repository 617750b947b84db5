//! `/etc/hosts` under `--root`: the managed block for the server name, every other byte kept,
//! the file's mode kept, a symlink refused (with a warning), `--no-etc-hosts` leaves the file alone.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::Path;

mod common;

use common::{run_with as run, stderr, write_doc as write_doc_with_id};

const BEGIN: &str = "# BEGIN hcloud-hostname: the server name from the Hetzner Cloud metadata; \
                     edits inside this block are replaced at every boot";
const END: &str = "# END hcloud-hostname";

/// Debian's /etc/hosts as the installer leaves it, with a CRLF line, a tab, a comment and no
/// newline at the end: all of it must survive byte for byte.
const DEBIAN_HOSTS: &str = "127.0.0.1\tlocalhost\n127.0.1.1\tdebian\r\n\n# The following lines are desirable for IPv6 capable hosts\n::1     localhost ip6-localhost ip6-loopback\nff02::1 ip6-allnodes\nff02::2 ip6-allrouters";

fn write_doc(root: &Path, hostname: &str) {
    write_doc_with_id(root, 7, Some(hostname));
}

fn hosts(root: &Path) -> String {
    fs::read_to_string(root.join("etc/hosts")).unwrap()
}

#[test]
fn the_block_is_appended_and_every_other_byte_kept() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write_doc(root, "web.example.com");
    let p = root.join("etc/hosts");
    fs::write(&p, DEBIAN_HOSTS).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o640)).unwrap();
    let out = run(root, &[]);
    assert!(out.status.success());
    assert_eq!(
        hosts(root),
        format!(
            "{DEBIAN_HOSTS}\n{BEGIN}\n127.0.1.1 web.example.com web\n::1 web.example.com web\n{END}\n"
        )
    );
    assert_eq!(fs::metadata(&p).unwrap().mode() & 0o7777, 0o640);
    assert!(
        stderr(&out).contains("127.0.1.1 web.example.com web"),
        "{}",
        stderr(&out)
    );

    // A second run changes nothing, not even the mtime.
    let before = fs::metadata(&p).unwrap();
    assert!(run(root, &[]).status.success());
    let after = fs::metadata(&p).unwrap();
    assert_eq!(
        (before.ino(), before.mtime_nsec()),
        (after.ino(), after.mtime_nsec())
    );

    // A renamed server: the block is replaced where it is, a line added after it stays.
    fs::write(&p, format!("{}10.0.0.5 db\n", hosts(root))).unwrap();
    write_doc(root, "app-7");
    assert!(run(root, &[]).status.success());
    assert_eq!(
        hosts(root),
        format!("{DEBIAN_HOSTS}\n{BEGIN}\n127.0.1.1 app-7\n::1 app-7\n{END}\n10.0.0.5 db\n")
    );
}

#[test]
fn a_missing_file_is_created_with_mode_0644() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write_doc(root, "app-7");
    assert!(run(root, &[]).status.success());
    assert_eq!(
        hosts(root),
        format!("{BEGIN}\n127.0.1.1 app-7\n::1 app-7\n{END}\n")
    );
    assert_eq!(
        fs::metadata(root.join("etc/hosts")).unwrap().mode() & 0o7777,
        0o644
    );
}

#[test]
fn a_name_cut_for_the_kernel_is_whole_in_etc_hosts() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let long = format!("db-1.{}.example.com", "x".repeat(60));
    write_doc(root, &long);
    assert!(run(root, &[]).status.success());
    assert_eq!(
        fs::read_to_string(root.join("etc/hostname")).unwrap(),
        "db-1\n"
    );
    assert!(hosts(root).contains(&format!("127.0.1.1 {long} db-1\n")));
}

#[test]
fn a_symlinked_etc_hosts_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write_doc(root, "app-7");
    fs::write(root.join("etc/hosts.real"), DEBIAN_HOSTS).unwrap();
    symlink("hosts.real", root.join("etc/hosts")).unwrap();
    // Refused with a warning, not a failed unit: NixOS links /etc/hosts into the store.
    let out = run(root, &[]);
    assert!(out.status.success());
    let err = stderr(&out);
    assert!(err.contains("warning: refusing to edit"), "{err}");
    assert!(err.contains("is a symlink (to hosts.real)"), "{err}");
    assert!(err.contains("--no-etc-hosts"), "{err}");
    assert_eq!(
        fs::read_link(root.join("etc/hosts")).unwrap(),
        Path::new("hosts.real")
    );
    assert_eq!(
        fs::read_to_string(root.join("etc/hosts.real")).unwrap(),
        DEBIAN_HOSTS
    );
    // The hostname itself was still set.
    assert_eq!(
        fs::read_to_string(root.join("etc/hostname")).unwrap(),
        "app-7\n"
    );
    // The option silences it.
    let out = run(root, &["--no-etc-hosts"]);
    assert!(out.status.success());
    assert!(!stderr(&out).contains("symlink"));
}

#[test]
fn no_etc_hosts_leaves_the_file_alone() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write_doc(root, "app-7");
    assert!(run(root, &["--no-etc-hosts"]).status.success());
    assert!(!root.join("etc/hosts").exists());
    fs::write(root.join("etc/hosts"), DEBIAN_HOSTS).unwrap();
    assert!(run(root, &["--no-etc-hosts"]).status.success());
    assert_eq!(hosts(root), DEBIAN_HOSTS);
}

#[test]
fn a_broken_block_is_an_error_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write_doc(root, "app-7");
    let broken = format!("127.0.0.1 localhost\n{BEGIN}\n127.0.1.1 old\n");
    fs::write(root.join("etc/hosts"), &broken).unwrap();
    let out = run(root, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("line 2 starts the managed block"),
        "{}",
        stderr(&out)
    );
    assert_eq!(hosts(root), broken);
}
