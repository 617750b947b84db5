//! The real `hcloud-dl-metadata` binary against the fake metadata service on loopback, one test
//! per failure mode.

mod common;

use std::time::{Duration, Instant};

use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_hcloud-dl-metadata");

#[test]
fn writes_the_document_with_mode_0644() {
    let sc = scenario_with("");
    let server = fake(sc.clone());
    let root = root_with_serial(Some("42"));
    let out = run(BIN, &server.base_url(), root.path(), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let doc_path = path(root.path(), DOC);
    let written = std::fs::read(&doc_path).unwrap();
    assert_eq!(written, expected_document(&sc));
    assert_eq!(mode(&doc_path), 0o644);
    let doc: serde_json::Value = serde_json::from_slice(&written).unwrap();
    assert_eq!(doc["hostname"], "app-7");
    assert_eq!(doc["network"]["ipv6_subnet"], "2001:db8:1:2::1/64");
    assert_eq!(doc["network"]["private"][0]["alias_ips"][0], "10.0.0.3");
    assert!(!String::from_utf8_lossy(&written).contains("secret-hash"));
    assert!(stderr(&out).contains("wrote"), "{}", stderr(&out));
}

#[test]
fn an_unchanged_document_is_not_rewritten() {
    let server = fake(scenario_with(""));
    let root = root_with_serial(Some("42"));
    assert!(
        run(BIN, &server.base_url(), root.path(), &[])
            .status
            .success()
    );
    let p = path(root.path(), DOC);
    let before = std::fs::metadata(&p).unwrap().modified().unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let out = run(BIN, &server.base_url(), root.path(), &[]);
    assert!(out.status.success());
    assert_eq!(std::fs::metadata(&p).unwrap().modified().unwrap(), before);
    assert!(stderr(&out).contains("up to date"), "{}", stderr(&out));
}

#[test]
fn retries_503_then_succeeds() {
    let sc = scenario_with("faults:\n  - {path: /hetzner/v1/metadata, count: 2, status: 503}\n");
    let server = fake(sc.clone());
    let root = root_with_serial(Some("42"));
    let out = run(BIN, &server.base_url(), root.path(), &["--timeout", "20"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let hits: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.path == "/hetzner/v1/metadata")
        .collect();
    assert_eq!(
        hits.iter().map(|r| r.status).collect::<Vec<_>>(),
        vec![Some(503), Some(503), Some(200)]
    );
    assert_eq!(
        std::fs::read(path(root.path(), DOC)).unwrap(),
        expected_document(&sc)
    );
    assert!(
        stderr(&out).contains("HTTP 503; retrying"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_server_slower_than_the_request_timeout_is_retried() {
    // The first answer takes longer than the 5 s per-request timeout; the second is prompt.
    let server = fake(scenario_with(
        "faults:\n  - {path: /hetzner/v1/metadata, count: 1, delay_ms: 7000}\n",
    ));
    let root = root_with_serial(Some("42"));
    let out = run(BIN, &server.base_url(), root.path(), &["--timeout", "30"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("timed out"), "{}", stderr(&out));
    assert!(path(root.path(), DOC).exists());
}

#[test]
fn unreachable_without_previous_document_fails_within_the_budget() {
    let root = root_with_serial(Some("42"));
    let start = Instant::now();
    let out = run(BIN, &dead_url(), root.path(), &["--timeout", "2"]);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "budget not honoured: {:?}",
        start.elapsed()
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("cannot connect") && err.contains("no usable previous document"),
        "{err}"
    );
    assert!(!path(root.path(), DOC).exists());
}

#[test]
fn unreachable_keeps_the_previous_document_of_this_instance() {
    let root = root_with_serial(Some("42"));
    let before = previous(root.path(), 42);
    let out = run(BIN, &dead_url(), root.path(), &["--timeout", "1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("keeping the previous document"),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read(path(root.path(), DOC)).unwrap(), before);
}

#[test]
fn unreachable_with_another_instances_document_fails_and_keeps_it() {
    let root = root_with_serial(Some("42"));
    let before = previous(root.path(), 7);
    let out = run(BIN, &dead_url(), root.path(), &["--timeout", "1"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("belongs to instance 7"),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read(path(root.path(), DOC)).unwrap(), before);
}

#[test]
fn a_truncated_body_is_retried_and_never_written() {
    let server = fake(scenario_with(
        "faults:\n  - {path: /hetzner/v1/metadata, truncate_to: 60}\n",
    ));
    let root = root_with_serial(Some("42"));
    let before = previous(root.path(), 42);
    let out = run(BIN, &server.base_url(), root.path(), &["--timeout", "2"]);
    assert!(out.status.success(), "kept previous: {}", stderr(&out));
    assert!(stderr(&out).contains("keeping the previous document"));
    assert_eq!(std::fs::read(path(root.path(), DOC)).unwrap(), before);
    assert!(
        server
            .requests()
            .iter()
            .filter(|r| r.path == "/hetzner/v1/metadata")
            .count()
            >= 2
    );
}

#[test]
fn garbage_yaml_is_reported_and_the_previous_document_kept() {
    let server = fake(scenario_with(
        "faults:\n  - {path: /hetzner/v1/metadata, garbage: true}\n",
    ));
    let root = root_with_serial(Some("42"));
    let before = previous(root.path(), 42);
    let out = run(BIN, &server.base_url(), root.path(), &["--timeout", "2"]);
    let err = stderr(&out);
    assert!(
        err.contains("metadata: not valid YAML") || err.contains("not UTF-8"),
        "{err}"
    );
    assert_eq!(std::fs::read(path(root.path(), DOC)).unwrap(), before);
}

#[test]
fn an_oversize_body_is_refused_at_once() {
    let server = fake(scenario_with(
        "faults:\n  - {path: /hetzner/v1/metadata, oversize: 3000000}\n",
    ));
    let root = root_with_serial(Some("42"));
    let start = Instant::now();
    let out = run(BIN, &server.base_url(), root.path(), &["--timeout", "30"]);
    assert!(!out.status.success());
    assert!(start.elapsed() < Duration::from_secs(10));
    assert!(
        stderr(&out).contains("larger than the 1048576-byte limit"),
        "{}",
        stderr(&out)
    );
    assert!(!path(root.path(), DOC).exists());
}

#[test]
fn a_document_for_another_instance_is_refused() {
    let server = fake(scenario_with(""));
    let root = root_with_serial(Some("99"));
    let before = previous(root.path(), 99);
    let out = run(BIN, &server.base_url(), root.path(), &[]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("belongs to instance 42") && err.contains("DMI serial is 99"),
        "{err}"
    );
    assert_eq!(std::fs::read(path(root.path(), DOC)).unwrap(), before);
}

#[test]
fn stdout_prints_and_writes_nothing() {
    let sc = scenario_with("");
    let server = fake(sc.clone());
    let root = root_with_serial(Some("42"));
    let out = run(BIN, &server.base_url(), root.path(), &["--stdout"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(out.stdout, expected_document(&sc));
    assert!(!path(root.path(), DOC).exists());
}

#[test]
fn a_bad_url_or_timeout_is_named() {
    let root = root_with_serial(None);
    let out = run(BIN, "https://169.254.169.254/hetzner/v1/", root.path(), &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("only plain http://"),
        "{}",
        stderr(&out)
    );
    let out = run(BIN, &dead_url(), root.path(), &["--timeout", "soon"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("\"soon\" is not a number of seconds"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn sync_private_nics_waits_for_the_service_to_list_a_new_nic() {
    // The service lists only network 1 at first; a second NIC is already present (and an
    // unrelated 86:* interface that must be ignored).
    let sc = scenario_with("");
    let server = std::sync::Arc::new(fake(sc.clone()));
    let root = root_with_serial(Some("42"));
    for (name, mac) in [
        ("enp7s0", "86:00:00:00:00:01"),
        ("enp8s0", "86:00:00:00:00:02"),
        ("veth0", "86:aa:00:00:00:09"),
    ] {
        let dir = path(root.path(), &format!("/sys/class/net/{name}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("address"), format!("{mac}\n")).unwrap();
    }
    let mut attached = sc.clone();
    let mut second = attached.server.private_networks[0].clone();
    second.mac_address = "86:00:00:00:00:02".into();
    second.interface_num = 2;
    second.ip = "10.1.0.2".into();
    second.alias_ips = vec![];
    second.network = "10.1.0.0/16".into();
    second.subnet = "10.1.0.0/24".into();
    second.gateway = "10.1.0.1".into();
    second.network_id = 1002;
    attached.server.private_networks.push(second);
    // A virtual device with a private-looking MAC (a veth whose sysfs link points under
    // devices/virtual) is not a private network.
    let virt = path(root.path(), "/sys/devices/virtual/net/veth1");
    std::fs::create_dir_all(&virt).unwrap();
    std::fs::write(virt.join("address"), "86:00:00:00:00:99\n").unwrap();
    std::os::unix::fs::symlink(
        "../../devices/virtual/net/veth1",
        path(root.path(), "/sys/class/net/veth1"),
    )
    .unwrap();
    let s2 = server.clone();
    let updater = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        s2.set_scenario(attached);
    });
    let out = run(
        BIN,
        &server.base_url(),
        root.path(),
        &["--sync-private-nics", "--timeout", "20"],
    );
    updater.join().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("waiting for the metadata service to catch up"),
        "{}",
        stderr(&out)
    );
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(path(root.path(), DOC)).unwrap()).unwrap();
    let macs: Vec<_> = doc["network"]["private"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["mac_address"].clone())
        .collect();
    assert_eq!(macs, vec!["86:00:00:00:00:01", "86:00:00:00:00:02"]);
}

#[test]
fn sync_private_nics_gives_up_at_the_budget_and_writes_what_is_listed() {
    let server = fake(scenario_with(""));
    let root = root_with_serial(Some("42"));
    let dir = path(root.path(), "/sys/class/net/enp9s0");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("address"), "86:00:00:00:00:07\n").unwrap();
    let out = run(
        BIN,
        &server.base_url(),
        root.path(),
        &["--sync-private-nics", "--timeout", "2"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("still differ"), "{}", stderr(&out));
    assert!(path(root.path(), DOC).exists());
}

/// The layout the unit runs in: `--migrate` (privileged, before the download) turns an old
/// regular document into the shipped link, and the download then writes the state file through
/// it, so the unit needs no write access to /etc.
#[test]
fn migrate_keeps_the_old_document_and_the_download_writes_through_the_shipped_link() {
    let sc = scenario_with("");
    let server = fake(sc.clone());
    let root = root_with_serial(Some("42"));
    let public = path(root.path(), DOC);
    std::fs::write(&public, b"{\"old\": 1}\n").unwrap();
    let out = run(BIN, &server.base_url(), root.path(), &["--migrate"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("moved"), "{}", stderr(&out));
    let state = path(root.path(), hcloud_metadata::state::METADATA.state);
    assert_eq!(std::fs::read(&state).unwrap(), b"{\"old\": 1}\n");
    let link = std::fs::read_link(&public).unwrap();
    assert_eq!(
        link,
        std::path::Path::new(hcloud_metadata::state::METADATA.state)
    );

    let out = run(BIN, &server.base_url(), root.path(), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read(&state).unwrap(), expected_document(&sc));
    assert_eq!(mode(&state), 0o644);
    assert_eq!(std::fs::read_link(&public).unwrap(), link);
}

#[test]
fn migrate_refuses_a_foreign_link_and_leaves_it() {
    let root = root_with_serial(Some("42"));
    let public = path(root.path(), DOC);
    std::os::unix::fs::symlink("/etc/shadow", &public).unwrap();
    let out = run(BIN, &dead_url(), root.path(), &["--migrate"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("is a symbolic link to /etc/shadow"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read_link(&public).unwrap(),
        std::path::Path::new("/etc/shadow")
    );
}
