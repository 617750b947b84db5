//! Broken but well-formed answers never remove what works: a summary without `public-keys` or
//! `network-config` is retried and then the previous document of this instance is kept whole
//! (only an explicit empty value removes); one bad value drops only itself; a 404 on
//! `metadata/private-networks` means none. The real binary against the fake service, the file
//! on disk compared byte for byte.

mod common;

use common::*;
use hcloud_fake_metadata::render;
use hcloud_fake_metadata::scenario::Fault;
use hcloud_metadata::Document;

const BIN: &str = env!("CARGO_BIN_EXE_hcloud-dl-metadata");
const SUMMARY: &str = "/hetzner/v1/metadata";

/// The document on disk is exactly `want`.
fn assert_doc(root: &std::path::Path, want: &[u8]) {
    let got = std::fs::read(path(root, DOC)).unwrap();
    assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(want));
}

/// The summary of `sc` without the top-level key `key` (and its block).
fn without_key(sc: &hcloud_fake_metadata::Scenario, key: &str) -> String {
    let mut out = String::new();
    let mut skipping = false;
    for line in render::summary(sc).lines() {
        let top_level = !line.starts_with(' ') && !line.starts_with('-');
        if top_level {
            skipping = line.starts_with(&format!("{key}:"));
        }
        if !skipping {
            out.push_str(line);
            out.push('\n');
        }
    }
    assert!(!out.contains(&format!("{key}:")), "{out}");
    out
}

fn serve_body(
    sc: &mut hcloud_fake_metadata::Scenario,
    path: &str,
    body: String,
    count: Option<u64>,
) {
    sc.faults.push(Fault {
        path: path.into(),
        body: Some(body),
        count,
        ..Fault::default()
    });
}

/// The document of `sc` as the previous one on disk, under another hostname so a kept
/// document can be told from a written one.
fn previous(root: &std::path::Path, sc: &hcloud_fake_metadata::Scenario) -> Vec<u8> {
    let mut old = sc.clone();
    old.server.name = "previous-name".into();
    let bytes = expected_document(&old);
    std::fs::write(path(root, DOC), &bytes).unwrap();
    bytes
}

#[test]
fn a_summary_without_public_keys_keeps_the_previous_keys() {
    let mut sc = scenario_with("");
    let body = without_key(&sc, "public-keys");
    serve_body(&mut sc, SUMMARY, body, None);
    let server = fake(sc.clone());
    let root = root_with_serial(Some("42"));
    let before = previous(root.path(), &sc);
    let out = run(BIN, &server.base_url(), root.path(), &["--timeout", "2"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Nothing of the broken answer is used: the previous document, byte for byte.
    assert_doc(root.path(), &before);
    let err = stderr(&out);
    assert!(err.contains("public-keys"), "{err}");
    let attempts = server
        .requests()
        .iter()
        .filter(|r| r.path == SUMMARY)
        .count();
    assert!(
        attempts > 1,
        "an absent key was not retried ({attempts} attempt)"
    );
}

#[test]
fn a_summary_without_network_config_keeps_the_previous_public_network() {
    let mut sc = scenario_with("");
    let body = without_key(&sc, "network-config");
    serve_body(&mut sc, SUMMARY, body, None);
    let server = fake(sc.clone());
    let root = root_with_serial(Some("42"));
    let before = previous(root.path(), &sc);
    let out = run(BIN, &server.base_url(), root.path(), &["--timeout", "2"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_doc(root.path(), &before);
    assert!(stderr(&out).contains("network-config"), "{}", stderr(&out));
}

#[test]
fn an_absent_key_that_comes_back_on_a_retry_is_used() {
    let mut sc = scenario_with("");
    let body = without_key(&sc, "public-keys");
    serve_body(&mut sc, SUMMARY, body, Some(2));
    let server = fake(sc.clone());
    let root = root_with_serial(Some("42"));
    let out = run(BIN, &server.base_url(), root.path(), &["--timeout", "20"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_doc(root.path(), &expected_document(&sc));
    assert_eq!(
        server
            .requests()
            .iter()
            .filter(|r| r.path == SUMMARY)
            .count(),
        3
    );
}

#[test]
fn an_absent_key_without_a_previous_document_of_this_instance_writes_nothing() {
    let mut sc = scenario_with("");
    let body = without_key(&sc, "public-keys");
    serve_body(&mut sc, SUMMARY, body, None);
    let server = fake(sc.clone());
    let root = root_with_serial(Some("42"));
    // A clone: the previous document belongs to another server.
    let mut other = sc.clone();
    other.server.id = 7;
    let before = expected_document(&other);
    std::fs::write(path(root.path(), DOC), &before).unwrap();
    let out = run(BIN, &server.base_url(), root.path(), &["--timeout", "2"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("public-keys"), "{}", stderr(&out));
    assert_doc(root.path(), &before);
}

#[test]
fn an_explicit_empty_value_removes() {
    let mut sc = scenario_with("");
    sc.server.public_keys.clear();
    sc.server.public_ipv4 = None;
    sc.server.public_ipv6 = None;
    let server = fake(sc.clone());
    let root = root_with_serial(Some("42"));
    previous(root.path(), &scenario_with(""));
    let out = run(BIN, &server.base_url(), root.path(), &["--timeout", "2"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let doc = Document::from_json(&std::fs::read(path(root.path(), DOC)).unwrap()).unwrap();
    assert!(doc.ssh_keys.is_empty());
    assert_eq!(doc.network.mac_address, None);
    assert_doc(root.path(), &expected_document(&sc));
}

#[test]
fn one_bad_value_on_first_boot_drops_only_itself() {
    let mut sc = scenario_with("");
    let good = render::summary(&sc);
    let body = good
        .replace(
            "instance-id: 42\n",
            "instance-id: 42\npublic-ipv4: 999.0.0.1\n",
        )
        .replace(
            &format!("public-ipv4: {}\n", sc.server.public_ipv4.unwrap()),
            "",
        );
    let private = render::private_networks(&sc).replace("86:00:00:00:00:01", "zz:00")
        + &render::private_networks(&{
            let mut two = sc.clone();
            two.server.private_networks[0].mac_address = "86:00:00:00:00:02".into();
            two.server.private_networks[0].interface_num = 2;
            two
        });
    serve_body(&mut sc, SUMMARY, body, None);
    serve_body(
        &mut sc,
        "/hetzner/v1/metadata/private-networks",
        private,
        None,
    );
    let server = fake(sc.clone());
    let root = root_with_serial(Some("42"));
    let out = run(BIN, &server.base_url(), root.path(), &["--timeout", "3"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let doc = Document::from_json(&std::fs::read(path(root.path(), DOC)).unwrap()).unwrap();
    assert_eq!(doc.hostname.as_deref(), Some("app-7"));
    assert_eq!(doc.ssh_keys.len(), 1);
    assert_eq!(doc.network.ipv4_address, None);
    assert_eq!(
        doc.network.ipv6_subnet.as_deref(),
        Some("2001:db8:1:2::1/64")
    );
    assert_eq!(doc.network.private.len(), 1);
    assert_eq!(
        doc.network.private[0].mac_address.as_deref(),
        Some("86:00:00:00:00:02")
    );
    let err = stderr(&out);
    assert!(err.contains("999.0.0.1") && err.contains("zz:00"), "{err}");
    // Accepted at once: a bad value is not retried for the whole budget.
    assert_eq!(
        server
            .requests()
            .iter()
            .filter(|r| r.path == SUMMARY)
            .count(),
        1
    );
}

#[test]
fn a_404_on_private_networks_means_none() {
    let mut sc = scenario_with("");
    sc.faults.push(Fault {
        path: "/hetzner/v1/metadata/private-networks".into(),
        status: Some(404),
        ..Fault::default()
    });
    let server = fake(sc.clone());
    let root = root_with_serial(Some("42"));
    let out = run(BIN, &server.base_url(), root.path(), &["--timeout", "3"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut none = sc.clone();
    none.server.private_networks.clear();
    assert_doc(root.path(), &expected_document(&none));
    assert!(stderr(&out).contains("404"), "{}", stderr(&out));
}

#[test]
fn names_that_yaml_would_type_keep_their_text() {
    for name in ["08", "3e8", "0o17", "yes"] {
        let mut sc = scenario_with("");
        sc.server.name = name.into();
        let body = render::summary(&sc)
            .replace(&format!("hostname: '{name}'"), &format!("hostname: {name}"));
        assert!(body.contains(&format!("hostname: {name}\n")), "{body}");
        let private =
            render::private_networks(&sc).replace("network_name: backend", "network_name: 1e400");
        serve_body(&mut sc, SUMMARY, body, None);
        serve_body(
            &mut sc,
            "/hetzner/v1/metadata/private-networks",
            private,
            None,
        );
        let server = fake(sc);
        let root = root_with_serial(Some("42"));
        let out = run(BIN, &server.base_url(), root.path(), &["--timeout", "3"]);
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        let doc = Document::from_json(&std::fs::read(path(root.path(), DOC)).unwrap()).unwrap();
        assert_eq!(doc.hostname.as_deref(), Some(name));
        assert_eq!(
            doc.network.private[0].network_name.as_deref(),
            Some("1e400")
        );
    }
}
