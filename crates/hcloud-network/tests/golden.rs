//! Golden tests: one document per shape in `tests/golden/<case>/document.json`, rendered by the
//! real binary into a temp root and compared as text with `tests/golden/<case>/expected/`.
//! `before.json` (optional) is rendered first (e.g. a network that is then detached); `args`
//! (optional) holds extra arguments. `HCLOUD_UPDATE_GOLDEN=1` rewrites the expected files
//! (review the diff before committing).

mod common;

use std::path::Path;

use common::{TestRoot, list, stderr};

fn check(case: &str) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(case);
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).ok();
    let args_text = read("args").unwrap_or_default();
    let args: Vec<&str> = args_text.split_whitespace().collect();
    let root = TestRoot::new();

    if let Some(before) = read("before.json") {
        root.set_document(&before);
        let out = root.run(&args);
        assert!(out.status.success(), "{case} (before): {}", stderr(&out));
    }
    root.set_document(&read("document.json").expect("document.json"));
    let out = root.run(&args);
    assert_eq!(out.status.code(), Some(0), "{case}: {}", stderr(&out));

    let expected_dir = dir.join("expected");
    if std::env::var_os("HCLOUD_UPDATE_GOLDEN").is_some() {
        let _ = std::fs::remove_dir_all(&expected_dir);
        std::fs::create_dir_all(&expected_dir).unwrap();
        for name in root.files() {
            std::fs::copy(root.network_dir().join(&name), expected_dir.join(&name)).unwrap();
        }
    }
    let expected = list(&expected_dir);
    assert!(!expected.is_empty(), "{case}: no expected files");
    assert_eq!(root.files(), expected, "{case}: file names differ");
    for name in &expected {
        let want = std::fs::read_to_string(expected_dir.join(name)).unwrap();
        let got = std::fs::read_to_string(root.network_dir().join(name)).unwrap();
        assert_eq!(got, want, "{case}/{name} differs");
    }
}

#[test]
fn dual_stack() {
    check("dual-stack");
}

#[test]
fn ipv4_only() {
    check("ipv4-only");
}

#[test]
fn ipv6_only() {
    check("ipv6-only");
}

#[test]
fn no_public_network() {
    check("no-public-network");
}

#[test]
fn one_private_network() {
    check("one-private");
}

#[test]
fn one_private_network_with_alias_ips() {
    check("one-private-alias-ips");
}

#[test]
fn three_private_networks() {
    check("three-private");
}

#[test]
fn network_detached() {
    check("network-detached");
}

#[test]
fn private_dhcp() {
    check("private-dhcp");
}
