//! The real `hcloud-hostname` binary with `--root` on a temp tree: only `<root>/etc/hostname`
//! (and `/etc/hosts`, see etc_hosts.rs) is written, hostile names change nothing, stale documents are refused.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Command;

mod common;

use common::*;

#[test]
fn writes_etc_hostname_under_the_root_and_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write_doc(root, 7, Some("app-7"));
    let out = run(root);
    assert!(out.status.success());
    let file = root.join("etc/hostname");
    assert_eq!(fs::read_to_string(&file).unwrap(), "app-7\n");
    assert_eq!(
        fs::metadata(&file).unwrap().permissions().mode() & 0o7777,
        0o644
    );
    assert!(stderr(&out).contains("no D-Bus"), "{}", stderr(&out));

    let before = fs::metadata(&file).unwrap();
    assert!(run(root).status.success());
    let after = fs::metadata(&file).unwrap();
    assert_eq!(
        (before.ino(), before.mtime_nsec()),
        (after.ino(), after.mtime_nsec())
    );
}

#[test]
fn creates_etc_when_missing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write_doc(root, 7, Some("fresh"));
    fs::rename(root.join("etc/hcloud-metadata.json"), root.join("doc.json")).unwrap();
    fs::remove_dir(root.join("etc")).unwrap();
    let out = Command::new(BIN)
        .arg("--root")
        .arg(root)
        .args(["--metadata", "/doc.json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        fs::read_to_string(root.join("etc/hostname")).unwrap(),
        "fresh\n"
    );
}

#[test]
fn long_fqdn_is_cut_at_the_first_dot() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let long = format!("db-1.{}.example.com", "x".repeat(60));
    write_doc(root, 7, Some(&long));
    let out = run(root);
    assert!(out.status.success());
    assert_eq!(
        fs::read_to_string(root.join("etc/hostname")).unwrap(),
        "db-1\n"
    );
    assert!(stderr(&out).contains("longer than the kernel's limit"));
}

#[test]
fn hostile_names_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::create_dir_all(root.join("etc")).unwrap();
    fs::write(root.join("etc/hostname"), "previous\n").unwrap();
    for (name, says) in [
        ("my host", "a space"),
        ("host;reboot", "';'"),
        ("../../etc/shadow", "'/'"),
        ("a\nb", "a newline"),
        ("", "empty"),
        ("-x", "hyphen"),
        (&"y".repeat(80), "no dot to cut it at"),
    ] {
        write_doc(root, 7, Some(name));
        let out = run(root);
        assert_eq!(out.status.code(), Some(5), "{name:?}");
        let err = stderr(&out);
        assert!(err.contains(says), "{name:?}: {err}");
        assert!(err.contains("left as they are"), "{err}");
        assert_eq!(
            fs::read_to_string(root.join("etc/hostname")).unwrap(),
            "previous\n"
        );
    }
}

#[test]
fn no_hostname_in_the_document_is_not_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write_doc(root, 7, None);
    let out = run(root);
    assert!(out.status.success());
    assert!(!root.join("etc/hostname").exists());
}

#[test]
fn stale_or_missing_document_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::create_dir_all(root.join("sys/class/dmi/id")).unwrap();
    fs::write(root.join("sys/class/dmi/id/sys_vendor"), "Hetzner\n").unwrap();
    fs::write(root.join("sys/class/dmi/id/product_serial"), "222\n").unwrap();
    write_doc(root, 222, Some("this-server"));
    assert!(run(root).status.success());
    assert_eq!(
        fs::read_to_string(root.join("etc/hostname")).unwrap(),
        "this-server\n"
    );

    // The document of the server this snapshot was taken from.
    write_doc(root, 111, Some("old-server"));
    let out = run(root);
    assert_eq!(out.status.code(), Some(4));
    assert!(stderr(&out).contains("instance 111"), "{}", stderr(&out));
    assert_eq!(
        fs::read_to_string(root.join("etc/hostname")).unwrap(),
        "this-server\n"
    );

    fs::remove_file(root.join("etc/hcloud-metadata.json")).unwrap();
    let out = run(root);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).contains("hcloud-dl-metadata"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        fs::read_to_string(root.join("etc/hostname")).unwrap(),
        "this-server\n"
    );
}

#[test]
fn cloud_init_setting_the_hostname_too_is_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write_doc(root, 7, Some("app-7"));
    fs::create_dir_all(root.join("etc/cloud")).unwrap();
    fs::write(
        root.join("etc/cloud/cloud.cfg"),
        "cloud_init_modules:\n  - set_hostname\n  - update_hostname\n",
    )
    .unwrap();
    let out = run(root);
    assert!(out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("cloud-init also sets the hostname")
            && err.contains("preserve_hostname: true"),
        "{err}"
    );
    assert_eq!(
        fs::read_to_string(root.join("etc/hostname")).unwrap(),
        "app-7\n"
    );
}

#[test]
fn a_hostname_credential_is_compared_never_used() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write_doc(root, 7, Some("app-7"));
    fs::create_dir_all(root.join("run/credstore")).unwrap();
    fs::write(root.join("run/credstore/firstboot.hostname"), "app-7\n").unwrap();
    let out = run(root);
    assert!(out.status.success());
    assert!(!stderr(&out).contains("credential"), "{}", stderr(&out));

    fs::write(root.join("run/credstore/firstboot.hostname"), "old-name\n").unwrap();
    let out = run(root);
    assert!(out.status.success());
    let err = stderr(&out);
    assert_eq!(
        err.matches("credential /run/credstore/firstboot.hostname")
            .count(),
        1,
        "{err}"
    );
    assert!(err.contains("\"old-name\""), "{err}");
    assert!(err.contains("the metadata wins"), "{err}");
    assert!(err.contains("systemd.imds.import=0"), "{err}");
    assert_eq!(
        fs::read_to_string(root.join("etc/hostname")).unwrap(),
        "app-7\n"
    );
}

#[test]
fn a_symlinked_etc_hostname_is_refused_and_its_target_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write_doc(root, 7, Some("app-7"));
    fs::write(root.join("etc/shadow"), "root:!:19000::::::\n").unwrap();
    std::os::unix::fs::symlink("shadow", root.join("etc/hostname")).unwrap();
    let out = run(root);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("symbolic link"), "{}", stderr(&out));
    assert_eq!(
        fs::read_to_string(root.join("etc/shadow")).unwrap(),
        "root:!:19000::::::\n"
    );
    assert!(
        fs::symlink_metadata(root.join("etc/hostname"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
}

#[test]
fn a_world_writable_etc_hostname_is_narrowed_to_0644() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write_doc(root, 7, Some("app-7"));
    fs::write(root.join("etc/hostname"), "old\n").unwrap();
    fs::set_permissions(root.join("etc/hostname"), fs::Permissions::from_mode(0o666)).unwrap();
    assert!(run(root).status.success());
    assert_eq!(
        fs::metadata(root.join("etc/hostname"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o644
    );
}

/// The unit's two steps: `--no-etc` (sandboxed, /etc read-only) writes nothing in /etc and
/// leaves the name; `--etc-only` writes /etc/hostname and the /etc/hosts block from it alone.
#[test]
fn no_etc_leaves_etc_alone_and_etc_only_writes_it_from_the_handover() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write_doc(root, 7, Some("web.example.com"));
    fs::write(root.join("etc/hosts"), "127.0.0.1 localhost\n").unwrap();
    let out = run_with(root, &["--no-etc"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!root.join("etc/hostname").exists());
    assert_eq!(
        fs::read_to_string(root.join("etc/hosts")).unwrap(),
        "127.0.0.1 localhost\n"
    );
    let handover = root.join("run/hcloud-hostname/applied");
    assert_eq!(
        fs::read_to_string(&handover).unwrap(),
        "web.example.com\nfallback\n"
    );

    // The document is not read again: removing it changes nothing.
    fs::remove_file(root.join("etc/hcloud-metadata.json")).unwrap();
    let out = run_with(root, &["--etc-only"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        fs::read_to_string(root.join("etc/hostname")).unwrap(),
        "web.example.com\n"
    );
    let hosts = fs::read_to_string(root.join("etc/hosts")).unwrap();
    assert!(hosts.starts_with("127.0.0.1 localhost\n"), "{hosts}");
    assert!(hosts.contains("127.0.1.1 web.example.com web\n"), "{hosts}");
    assert!(!handover.exists());

    // A later run that applies no name (the document has none) leaves nothing to write.
    write_doc(root, 7, Some("other"));
    assert!(run_with(root, &["--no-etc"]).status.success());
    write_doc(root, 7, None);
    assert!(run_with(root, &["--no-etc"]).status.success());
    assert!(!handover.exists(), "a handover of an earlier run survived");

    // Run again without a handover: nothing to do, nothing changed.
    let out = run_with(root, &["--etc-only"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(fs::read_to_string(root.join("etc/hosts")).unwrap(), hosts);
}

/// The handover comes from the sandboxed step: a link, a bad name or an unknown word is refused
/// and /etc stays as it was.
#[test]
fn etc_only_refuses_a_handover_it_cannot_trust() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::create_dir_all(root.join("etc")).unwrap();
    fs::create_dir_all(root.join("run/hcloud-hostname")).unwrap();
    fs::write(root.join("etc/hosts"), "127.0.0.1 localhost\n").unwrap();
    fs::write(root.join("etc/hostname"), "old\n").unwrap();
    let handover = root.join("run/hcloud-hostname/applied");
    let cases: [(&str, Option<&str>, &str); 3] = [
        ("a link", None, "symbolic link"),
        (
            "a bad name",
            Some("bad_name!\nfallback\n"),
            "refusing the hostname",
        ),
        ("an unknown word", Some("web\nsomething\n"), "unknown way"),
    ];
    for (what, content, expected) in cases {
        let _ = fs::remove_file(&handover);
        match content {
            Some(c) => fs::write(&handover, c).unwrap(),
            None => std::os::unix::fs::symlink(root.join("etc/hostname"), &handover).unwrap(),
        }
        let out = run_with(root, &["--etc-only"]);
        assert!(!out.status.success(), "{what} was accepted");
        assert!(stderr(&out).contains(expected), "{what}: {}", stderr(&out));
        assert_eq!(
            fs::read_to_string(root.join("etc/hostname")).unwrap(),
            "old\n"
        );
        assert_eq!(
            fs::read_to_string(root.join("etc/hosts")).unwrap(),
            "127.0.0.1 localhost\n"
        );
    }
}
