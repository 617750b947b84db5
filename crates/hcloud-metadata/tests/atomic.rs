//! The write rule every agent shares, on real temporary trees: the mode comes from the target
//! (or the documented default) and is never wider than the documented mode; a symlink at the
//! target is refused, never replaced or written through; temporary files left by a crash are
//! cleaned whatever PID left them.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;
use std::time::{Duration, SystemTime};

use hcloud_metadata::atomic::{WriteError, WriteOptions, WriteOutcome, open_marker, write_atomic};

fn mode(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn a_new_file_gets_the_documented_mode() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("f");
    write_atomic(&p, b"new\n", WriteOptions::mode(0o644)).unwrap();
    assert_eq!(fs::read(&p).unwrap(), b"new\n");
    assert_eq!(mode(&p), 0o644);
}

#[test]
fn a_narrower_mode_of_the_target_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("f");
    fs::write(&p, b"old\n").unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
    write_atomic(&p, b"new\n", WriteOptions::mode(0o644)).unwrap();
    assert_eq!(fs::read(&p).unwrap(), b"new\n");
    assert_eq!(mode(&p), 0o600);
}

#[test]
fn a_wider_mode_of_the_target_is_narrowed_to_the_documented_one() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("f");
    fs::write(&p, b"old\n").unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o4777)).unwrap();
    write_atomic(&p, b"new\n", WriteOptions::mode(0o644)).unwrap();
    assert_eq!(mode(&p), 0o644);
    // Same bytes but a wider mode: rewritten so the mode is narrowed too.
    fs::set_permissions(&p, fs::Permissions::from_mode(0o666)).unwrap();
    assert_eq!(
        write_atomic(&p, b"new\n", WriteOptions::mode(0o644)).unwrap(),
        WriteOutcome::Written
    );
    assert_eq!(mode(&p), 0o644);
    assert_eq!(
        write_atomic(&p, b"new\n", WriteOptions::mode(0o644)).unwrap(),
        WriteOutcome::Unchanged
    );
}

#[test]
fn a_symlink_at_the_target_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = dir.path().join("elsewhere");
    fs::write(&elsewhere, b"theirs\n").unwrap();
    let before = mode(&elsewhere);
    let p = dir.path().join("fstab");
    symlink(&elsewhere, &p).unwrap();
    let e = write_atomic(&p, b"ours\n", WriteOptions::mode(0o644)).unwrap_err();
    assert!(matches!(e, WriteError::Symlink { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("symbolic link") && msg.contains(&p.display().to_string()),
        "{msg}"
    );
    assert!(fs::symlink_metadata(&p).unwrap().file_type().is_symlink());
    assert_eq!(fs::read(&elsewhere).unwrap(), b"theirs\n");
    assert_eq!(mode(&elsewhere), before);
    let leftovers: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(leftovers.len(), 2, "a temporary file was left behind");
}

#[test]
fn a_dangling_symlink_is_refused_too() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("doc");
    symlink(dir.path().join("nowhere"), &p).unwrap();
    assert!(matches!(
        write_atomic(&p, b"x", WriteOptions::mode(0o644)),
        Err(WriteError::Symlink { .. })
    ));
    assert!(!dir.path().join("nowhere").exists());
}

#[test]
fn a_directory_at_the_target_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("doc");
    fs::create_dir(&p).unwrap();
    let e = write_atomic(&p, b"x", WriteOptions::mode(0o644)).unwrap_err();
    assert!(e.to_string().contains("not a regular file"), "{e}");
    assert!(p.is_dir());
}

#[test]
fn a_hard_link_elsewhere_keeps_its_old_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("doc");
    fs::write(&p, b"old\n").unwrap();
    let other = dir.path().join("planted");
    fs::hard_link(&p, &other).unwrap();
    write_atomic(&p, b"new\n", WriteOptions::mode(0o644)).unwrap();
    assert_eq!(fs::read(&p).unwrap(), b"new\n");
    assert_eq!(fs::read(&other).unwrap(), b"old\n");
}

fn set_mtime(p: &Path, t: SystemTime) {
    fs::File::options()
        .write(true)
        .open(p)
        .unwrap()
        .set_modified(t)
        .unwrap();
}

#[test]
fn temporary_files_of_a_crashed_run_are_cleaned_whatever_their_pid() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("doc");
    // A PID that is not running (above any pid_max) and an old file of a running PID (1).
    let dead = dir.path().join(".doc.tmp-99999999");
    let old = dir.path().join(".doc.tmp-1");
    fs::write(&dead, b"partial").unwrap();
    fs::write(&old, b"partial").unwrap();
    set_mtime(&old, SystemTime::now() - Duration::from_secs(7200));
    // A fresh one of a running process (a second run at the same time) is not touched.
    let busy = dir
        .path()
        .join(format!(".doc.tmp-{}", std::os::unix::process::parent_id()));
    fs::write(&busy, b"in progress").unwrap();
    // Someone else's file with a similar name is not ours.
    let other = dir.path().join(".doc.tmp-notapid");
    fs::write(&other, b"user").unwrap();
    write_atomic(&p, b"new\n", WriteOptions::mode(0o644)).unwrap();
    assert!(!dead.exists(), "a dead run's temporary file was left");
    assert!(!old.exists(), "an old temporary file was left");
    assert!(
        busy.exists(),
        "a running process's temporary file was removed"
    );
    assert!(other.exists());
    assert_eq!(fs::read(&p).unwrap(), b"new\n");
}

#[test]
fn a_marker_is_never_created_through_a_symlink() {
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("shadow");
    fs::write(&victim, b"root:!:19000::::::\n").unwrap();
    let marker = dir.path().join("pending");
    symlink(&victim, &marker).unwrap();
    assert!(matches!(
        open_marker(&marker),
        Err(WriteError::Symlink { .. })
    ));
    assert_eq!(fs::read(&victim).unwrap(), b"root:!:19000::::::\n");
    let dangling = dir.path().join("lock");
    symlink(dir.path().join("sudoers.d-x"), &dangling).unwrap();
    assert!(open_marker(&dangling).is_err());
    assert!(!dir.path().join("sudoers.d-x").exists());
    let plain = dir.path().join("queue-entry");
    open_marker(&plain).unwrap();
    assert_eq!(fs::read(&plain).unwrap(), b"");
}
