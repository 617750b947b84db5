//! The fault matrix of the metadata downloader: one named test per scenario (the list with
//! its count is docs/fault-matrix.md). Each row runs the real binary against the fake service
//! on loopback in a fresh `--root` tree and asserts what a user would check: the exit status
//! and the document on disk, byte for byte, so that nothing good is ever lost.

mod common;

use std::process::Command;

use common::*;
use hcloud_fake_metadata::render;
use hcloud_fake_metadata::{Fault, Scenario};
use hcloud_metadata::{Document, parse_private_networks, parse_summary};

const BIN: &str = env!("CARGO_BIN_EXE_hcloud-dl-metadata");
const DOC: &str = "/etc/hcloud-metadata.json";
const SUMMARY: &str = "/hetzner/v1/metadata";
const PRIVATE: &str = "/hetzner/v1/metadata/private-networks";

/// What is on disk before the run.
#[derive(Clone, Copy)]
enum Prev {
    None,
    /// A document of this server (another hostname, so a kept one is told from a new one).
    This,
    /// A document of another server (a snapshot clone).
    Other,
}

/// What the run must leave.
enum Expect {
    /// Success, and the document of the base scenario changed by this function.
    Written(fn(&mut Document)),
    /// Success, the previous document byte for byte.
    Kept,
    /// Failure, and whatever was there before (the previous document, or nothing) unchanged.
    Fails,
}

struct Row {
    /// Faults and changes of what the fake serves.
    serve: fn(&mut Scenario),
    previous: Prev,
    timeout: &'static str,
    expect: Expect,
}

fn base() -> Scenario {
    scenario_with("")
}

fn document_of(sc: &Scenario) -> Document {
    let summary = parse_summary(&render::summary(sc)).unwrap();
    let private = parse_private_networks(&render::private_networks(sc)).unwrap();
    Document::from_service(&summary, &private.networks)
}

fn fault(path: &str) -> Fault {
    Fault {
        path: path.into(),
        ..Fault::default()
    }
}

fn body(sc: &mut Scenario, path: &str, text: String) {
    sc.faults.push(Fault {
        body: Some(text),
        ..fault(path)
    });
}

/// The summary of `sc` with `from` replaced by `to` (which must occur).
fn summary_replacing(sc: &Scenario, from: &str, to: &str) -> String {
    let s = render::summary(sc);
    assert!(s.contains(from), "{from:?} not in {s}");
    s.replace(from, to)
}

fn private_replacing(sc: &Scenario, from: &str, to: &str) -> String {
    let s = render::private_networks(sc);
    assert!(s.contains(from), "{from:?} not in {s}");
    s.replace(from, to)
}

fn without_top_level_key(text: &str, key: &str) -> String {
    let mut out = String::new();
    let mut skipping = false;
    for line in text.lines() {
        if !line.starts_with(' ') && !line.starts_with('-') {
            skipping = line.starts_with(&format!("{key}:"));
        }
        if !skipping {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

fn write_previous(root: &std::path::Path, prev: Prev) -> Option<Vec<u8>> {
    let mut sc = base();
    sc.server.name = "previous-name".into();
    match prev {
        Prev::None => return None,
        Prev::This => {}
        Prev::Other => sc.server.id = 7,
    }
    let bytes = document_of(&sc).to_json();
    std::fs::write(path(root, DOC), &bytes).unwrap();
    Some(bytes)
}

fn read_doc(root: &std::path::Path) -> Option<Vec<u8>> {
    std::fs::read(path(root, DOC)).ok()
}

fn show(b: &Option<Vec<u8>>) -> String {
    b.as_ref().map_or("(no file)".into(), |b| {
        String::from_utf8_lossy(b).into_owned()
    })
}

fn check(row: Row) {
    let mut sc = base();
    (row.serve)(&mut sc);
    let server = fake(sc);
    let root = root_with_serial(Some("42"));
    let before = write_previous(root.path(), row.previous);
    let out = run(
        BIN,
        &server.base_url(),
        root.path(),
        &["--timeout", row.timeout],
    );
    let after = read_doc(root.path());
    let log = stderr(&out);
    match row.expect {
        Expect::Written(change) => {
            assert!(out.status.success(), "{log}");
            let mut want = document_of(&base());
            change(&mut want);
            assert_eq!(show(&after), show(&Some(want.to_json())), "{log}");
        }
        Expect::Kept => {
            assert!(out.status.success(), "{log}");
            assert!(before.is_some());
            assert_eq!(show(&after), show(&before), "{log}");
        }
        Expect::Fails => {
            assert!(!out.status.success(), "{log}");
            assert_eq!(show(&after), show(&before), "{log}");
        }
    }
    let leftovers: Vec<_> = std::fs::read_dir(root.path().join("etc"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

macro_rules! matrix {
    ($($name:ident: $row:expr,)*) => {
        $(#[test] fn $name() { check($row) })*
    };
}

fn unchanged(_: &mut Document) {}

matrix! {
    // --- HTTP failure modes, per endpoint
    summary_500_twice_then_ok: Row {
        serve: |sc| sc.faults.push(Fault { status: Some(500), count: Some(2), ..fault(SUMMARY) }),
        previous: Prev::None, timeout: "20", expect: Expect::Written(unchanged),
    },
    summary_503_always_keeps_the_previous_document: Row {
        serve: |sc| sc.faults.push(Fault { status: Some(503), ..fault(SUMMARY) }),
        previous: Prev::This, timeout: "1", expect: Expect::Kept,
    },
    summary_503_always_without_previous_fails_and_writes_nothing: Row {
        serve: |sc| sc.faults.push(Fault { status: Some(503), ..fault(SUMMARY) }),
        previous: Prev::None, timeout: "1", expect: Expect::Fails,
    },
    summary_429_then_ok: Row {
        serve: |sc| sc.faults.push(Fault { status: Some(429), count: Some(1), ..fault(SUMMARY) }),
        previous: Prev::This, timeout: "20", expect: Expect::Written(unchanged),
    },
    summary_404_keeps_the_previous_document: Row {
        serve: |sc| sc.faults.push(Fault { status: Some(404), ..fault(SUMMARY) }),
        previous: Prev::This, timeout: "5", expect: Expect::Kept,
    },
    summary_redirect_is_not_followed: Row {
        serve: |sc| sc.faults.push(Fault { status: Some(302), body: Some("instance-id: 99\n".into()), ..fault(SUMMARY) }),
        previous: Prev::This, timeout: "5", expect: Expect::Kept,
    },
    private_networks_404_means_none: Row {
        serve: |sc| sc.faults.push(Fault { status: Some(404), ..fault(PRIVATE) }),
        previous: Prev::This, timeout: "5", expect: Expect::Written(|d| d.network.private.clear()),
    },
    private_networks_500_then_ok: Row {
        serve: |sc| sc.faults.push(Fault { status: Some(500), count: Some(1), ..fault(PRIVATE) }),
        previous: Prev::None, timeout: "20", expect: Expect::Written(unchanged),
    },
    private_networks_503_always_keeps_the_previous_document: Row {
        serve: |sc| sc.faults.push(Fault { status: Some(503), ..fault(PRIVATE) }),
        previous: Prev::This, timeout: "1", expect: Expect::Kept,
    },
    summary_slow_within_the_request_timeout: Row {
        serve: |sc| sc.faults.push(Fault { delay_ms: Some(1500), ..fault(SUMMARY) }),
        previous: Prev::None, timeout: "20", expect: Expect::Written(unchanged),
    },
    summary_trickled_within_the_request_timeout: Row {
        serve: |sc| sc.faults.push(Fault { trickle_ms: Some(20), ..fault(SUMMARY) }),
        previous: Prev::None, timeout: "20", expect: Expect::Written(unchanged),
    },
    summary_trickled_past_the_request_timeout_keeps_the_previous_document: Row {
        serve: |sc| sc.faults.push(Fault { trickle_ms: Some(400), ..fault(SUMMARY) }),
        previous: Prev::This, timeout: "8", expect: Expect::Kept,
    },
    summary_trickled_once_then_prompt: Row {
        serve: |sc| sc.faults.push(Fault { trickle_ms: Some(400), count: Some(1), ..fault(SUMMARY) }),
        previous: Prev::This, timeout: "20", expect: Expect::Written(unchanged),
    },
    connection_dropped_twice_then_ok: Row {
        serve: |sc| sc.faults.push(Fault { drop: true, count: Some(2), ..fault("*") }),
        previous: Prev::None, timeout: "20", expect: Expect::Written(unchanged),
    },
    every_connection_dropped_keeps_the_previous_document: Row {
        serve: |sc| sc.faults.push(Fault { drop: true, ..fault("*") }),
        previous: Prev::This, timeout: "1", expect: Expect::Kept,
    },
    unreachable_at_boot_then_back: Row {
        serve: |sc| sc.faults.push(Fault { drop: true, for_secs: Some(1.5), ..fault("*") }),
        previous: Prev::None, timeout: "20", expect: Expect::Written(unchanged),
    },
    flapping_through_every_failure_then_ok: Row {
        serve: |sc| sc.faults.extend([
            Fault { drop: true, count: Some(1), ..fault(SUMMARY) },
            Fault { status: Some(503), count: Some(1), ..fault(SUMMARY) },
            Fault { garbage: true, count: Some(1), ..fault(SUMMARY) },
            Fault { truncate_to: Some(60), count: Some(1), ..fault(SUMMARY) },
            Fault { status: Some(500), count: Some(1), ..fault(PRIVATE) },
        ]),
        previous: Prev::This, timeout: "30", expect: Expect::Written(unchanged),
    },
    summary_garbage_then_ok: Row {
        serve: |sc| sc.faults.push(Fault { garbage: true, count: Some(1), ..fault(SUMMARY) }),
        previous: Prev::None, timeout: "20", expect: Expect::Written(unchanged),
    },
    summary_garbage_always_keeps_the_previous_document: Row {
        serve: |sc| sc.faults.push(Fault { garbage: true, ..fault(SUMMARY) }),
        previous: Prev::This, timeout: "1", expect: Expect::Kept,
    },
    private_networks_garbage_always_keeps_the_previous_document: Row {
        serve: |sc| sc.faults.push(Fault { garbage: true, ..fault(PRIVATE) }),
        previous: Prev::This, timeout: "1", expect: Expect::Kept,
    },
    summary_oversize_keeps_the_previous_document: Row {
        serve: |sc| sc.faults.push(Fault { oversize: Some(2_000_000), ..fault(SUMMARY) }),
        previous: Prev::This, timeout: "5", expect: Expect::Kept,
    },
    summary_transfer_cut_short_then_ok: Row {
        serve: |sc| sc.faults.push(Fault { truncate_to: Some(40), count: Some(1), ..fault(SUMMARY) }),
        previous: Prev::None, timeout: "20", expect: Expect::Written(unchanged),
    },
    summary_html_error_page_keeps_the_previous_document: Row {
        serve: |sc| body(sc, SUMMARY, "<html><body><h1>502 Bad Gateway</h1></body></html>\n".into()),
        previous: Prev::This, timeout: "1", expect: Expect::Kept,
    },
    summary_empty_body_keeps_the_previous_document: Row {
        serve: |sc| body(sc, SUMMARY, String::new()),
        previous: Prev::This, timeout: "1", expect: Expect::Kept,
    },
    summary_json_body_is_read_like_yaml: Row {
        serve: |sc| {
            let s = render::summary(sc);
            let v: serde_json::Value = serde_saphyr::from_str(&s).unwrap();
            body(sc, SUMMARY, serde_json::to_string(&v).unwrap());
        },
        previous: Prev::None, timeout: "5", expect: Expect::Written(unchanged),
    },

    // --- broken but well-formed answers
    summary_without_public_keys_keeps_the_previous_document: Row {
        serve: |sc| { let s = without_top_level_key(&render::summary(sc), "public-keys"); body(sc, SUMMARY, s) },
        previous: Prev::This, timeout: "1", expect: Expect::Kept,
    },
    summary_without_network_config_keeps_the_previous_document: Row {
        serve: |sc| { let s = without_top_level_key(&render::summary(sc), "network-config"); body(sc, SUMMARY, s) },
        previous: Prev::This, timeout: "1", expect: Expect::Kept,
    },
    public_keys_that_are_a_mapping_keep_the_previous_document: Row {
        serve: |sc| {
            let s = without_top_level_key(&render::summary(sc), "public-keys") + "public-keys: {ssh-ed25519: AAAA}\n";
            body(sc, SUMMARY, s)
        },
        previous: Prev::This, timeout: "1", expect: Expect::Kept,
    },
    summary_without_instance_id_keeps_the_previous_document: Row {
        serve: |sc| { let s = without_top_level_key(&render::summary(sc), "instance-id"); body(sc, SUMMARY, s) },
        previous: Prev::This, timeout: "1", expect: Expect::Kept,
    },
    explicit_empty_keys_and_network_remove_them: Row {
        serve: |sc| {
            sc.server.public_keys.clear();
            sc.server.public_ipv4 = None;
            sc.server.public_ipv6 = None;
        },
        previous: Prev::This, timeout: "5",
        expect: Expect::Written(|d| {
            d.ssh_keys.clear();
            d.network = hcloud_metadata::Network { private: d.network.private.clone(), ..Default::default() };
        }),
    },

    // --- one bad value per field: only that value or entry is dropped
    bad_nameserver_is_dropped: Row {
        serve: |sc| { let s = summary_replacing(sc, "2a01:4ff:ff00::add:1", "not-an-ip"); body(sc, SUMMARY, s) },
        previous: Prev::This, timeout: "5",
        expect: Expect::Written(|d| d.network.nameservers.retain(|n| n != "2a01:4ff:ff00::add:1")),
    },
    bad_public_ipv4_is_dropped: Row {
        serve: |sc| { let s = summary_replacing(sc, "public-ipv4: 203.0.113.10", "public-ipv4: 203.0.113.300"); body(sc, SUMMARY, s) },
        previous: Prev::This, timeout: "5",
        expect: Expect::Written(|d| {
            d.network.ipv4_address = None;
            d.network.ipv4_subnet = None;
            d.network.ipv4_gateway = None;
        }),
    },
    ipv6_address_with_a_zone_id_is_dropped: Row {
        serve: |sc| { let s = summary_replacing(sc, "2001:db8:1:2::1/64", "2001:db8:1:2::1%eth0/64"); body(sc, SUMMARY, s) },
        previous: Prev::This, timeout: "5",
        expect: Expect::Written(|d| {
            d.network.ipv6_address = None;
            d.network.ipv6_subnet = None;
            d.network.ipv6_gateway = None;
        }),
    },
    bad_ipv6_prefix_is_dropped: Row {
        serve: |sc| { let s = summary_replacing(sc, "2001:db8:1:2::1/64", "2001:db8:1:2::1/129"); body(sc, SUMMARY, s) },
        previous: Prev::This, timeout: "5",
        expect: Expect::Written(|d| {
            d.network.ipv6_address = None;
            d.network.ipv6_subnet = None;
            d.network.ipv6_gateway = None;
        }),
    },
    bad_ipv6_gateway_is_dropped: Row {
        serve: |sc| { let s = summary_replacing(sc, "gateway: fe80::1", "gateway: fe80::zz"); body(sc, SUMMARY, s) },
        previous: Prev::This, timeout: "5",
        expect: Expect::Written(|d| d.network.ipv6_gateway = None),
    },
    bad_public_mac_is_dropped: Row {
        serve: |sc| { let s = summary_replacing(sc, "mac_address: '96:00:00:11:22:33'", "mac_address: '96:00:00:11:22'"); body(sc, SUMMARY, s) },
        previous: Prev::This, timeout: "5",
        expect: Expect::Written(|d| d.network.mac_address = None),
    },
    public_keys_entry_that_is_a_mapping_is_dropped: Row {
        serve: |sc| { let s = summary_replacing(sc, "public-keys:\n", "public-keys:\n- {not: a key}\n"); body(sc, SUMMARY, s) },
        previous: Prev::This, timeout: "5", expect: Expect::Written(unchanged),
    },
    private_network_with_a_bad_mac_is_dropped: Row {
        serve: |sc| { let s = private_replacing(sc, "86:00:00:00:00:01", "86:00:00:00:00:0g"); body(sc, PRIVATE, s) },
        previous: Prev::This, timeout: "5", expect: Expect::Written(|d| d.network.private.clear()),
    },
    private_network_with_a_non_integer_interface_num_is_dropped: Row {
        serve: |sc| { let s = private_replacing(sc, "interface_num: 1", "interface_num: 1.5"); body(sc, PRIVATE, s) },
        previous: Prev::This, timeout: "5", expect: Expect::Written(|d| d.network.private.clear()),
    },
    private_network_with_a_bad_network_id_keeps_the_entry: Row {
        serve: |sc| { let s = private_replacing(sc, "network_id: 1001", "network_id: [1001]"); body(sc, PRIVATE, s) },
        previous: Prev::This, timeout: "5", expect: Expect::Written(|d| d.network.private[0].network_id = None),
    },
    private_network_entry_that_is_not_a_mapping_is_dropped: Row {
        serve: |sc| { let s = format!("- just text\n{}", render::private_networks(sc)); body(sc, PRIVATE, s) },
        previous: Prev::This, timeout: "5", expect: Expect::Written(unchanged),
    },
    private_networks_that_are_a_mapping_keep_the_previous_document: Row {
        serve: |sc| body(sc, PRIVATE, "ip: 10.0.0.2\n".into()),
        previous: Prev::This, timeout: "1", expect: Expect::Kept,
    },

    // --- hostile strings reach the document as exact text, never as structure
    hostile_hostname_is_kept_as_exact_text: Row {
        serve: |sc| { let s = summary_replacing(sc, "hostname: app-7", "hostname: \"../../etc/passwd\\n\\\"}, {\\\"x\\\": 1\""); body(sc, SUMMARY, s) },
        previous: Prev::None, timeout: "5",
        expect: Expect::Written(|d| d.hostname = Some("../../etc/passwd\n\"}, {\"x\": 1".into())),
    },
    hostile_network_name_is_kept_as_exact_text: Row {
        serve: |sc| { let s = private_replacing(sc, "network_name: backend", "network_name: '../../x; rm -rf /'"); body(sc, PRIVATE, s) },
        previous: Prev::None, timeout: "5",
        expect: Expect::Written(|d| d.network.private[0].network_name = Some("../../x; rm -rf /".into())),
    },
    hostile_ssh_key_line_is_kept_as_exact_text: Row {
        serve: |sc| sc.server.public_keys = vec!["command=\"sh\" ssh-ed25519 AAAA x\nssh-rsa BBBB injected".into()],
        previous: Prev::None, timeout: "5",
        expect: Expect::Written(|d| d.ssh_keys = vec!["command=\"sh\" ssh-ed25519 AAAA x\nssh-rsa BBBB injected".into()]),
    },
    server_name_08_stays_08: Row {
        serve: |sc| { let s = summary_replacing(sc, "hostname: app-7", "hostname: 08"); body(sc, SUMMARY, s) },
        previous: Prev::None, timeout: "5", expect: Expect::Written(|d| d.hostname = Some("08".into())),
    },
    server_name_3e8_stays_3e8: Row {
        serve: |sc| { let s = summary_replacing(sc, "hostname: app-7", "hostname: 3e8"); body(sc, SUMMARY, s) },
        previous: Prev::None, timeout: "5", expect: Expect::Written(|d| d.hostname = Some("3e8".into())),
    },
    server_name_0o17_stays_0o17: Row {
        serve: |sc| { let s = summary_replacing(sc, "hostname: app-7", "hostname: 0o17"); body(sc, SUMMARY, s) },
        previous: Prev::None, timeout: "5", expect: Expect::Written(|d| d.hostname = Some("0o17".into())),
    },
    server_name_yes_stays_yes: Row {
        serve: |sc| { let s = summary_replacing(sc, "hostname: app-7", "hostname: yes"); body(sc, SUMMARY, s) },
        previous: Prev::None, timeout: "5", expect: Expect::Written(|d| d.hostname = Some("yes".into())),
    },
    network_name_1e400_stays_1e400: Row {
        serve: |sc| { let s = private_replacing(sc, "network_name: backend", "network_name: 1e400"); body(sc, PRIVATE, s) },
        previous: Prev::None, timeout: "5",
        expect: Expect::Written(|d| d.network.private[0].network_name = Some("1e400".into())),
    },

    // --- identity
    document_of_another_instance_is_never_written: Row {
        serve: |sc| sc.server.id = 43,
        previous: Prev::This, timeout: "5", expect: Expect::Fails,
    },
    clone_with_a_new_identity_gets_its_own_document: Row {
        serve: |_| {},
        previous: Prev::Other, timeout: "5", expect: Expect::Written(unchanged),
    },
    clone_without_the_service_keeps_the_other_document_and_fails: Row {
        serve: |sc| sc.faults.push(Fault { drop: true, ..fault("*") }),
        previous: Prev::Other, timeout: "1", expect: Expect::Fails,
    },
}

/// A summary cut at each line boundary, served as a whole body (right Content-Length): the
/// first answer is cut, the retry is whole; the document is the whole answer's every time.
#[test]
fn summary_cut_at_every_line_boundary_then_whole() {
    let full = render::summary(&base());
    let want = document_of(&base()).to_json();
    let cuts: Vec<usize> = full.match_indices('\n').map(|(i, _)| i + 1).collect();
    for cut in cuts.iter().copied().filter(|c| *c < full.len()) {
        let mut sc = base();
        sc.faults.push(Fault {
            body: Some(full[..cut].into()),
            count: Some(1),
            ..fault(SUMMARY)
        });
        let server = fake(sc);
        let root = root_with_serial(Some("42"));
        let out = run(BIN, &server.base_url(), root.path(), &["--timeout", "20"]);
        assert!(out.status.success(), "cut at {cut}: {}", stderr(&out));
        assert_eq!(
            show(&read_doc(root.path())),
            show(&Some(want.clone())),
            "cut at {cut}"
        );
    }
}

/// Cut at each line boundary for the whole budget: the previous document is kept whole, or (a
/// cut after the last key, which nothing can tell from a whole answer) the document written is
/// the whole answer's.
#[test]
fn summary_cut_at_every_line_boundary_never_loses_keys_or_addresses() {
    let full = render::summary(&base());
    let whole = document_of(&base());
    for (cut, _) in full.match_indices('\n') {
        let mut sc = base();
        body(&mut sc, SUMMARY, full[..cut + 1].into());
        let server = fake(sc);
        let root = root_with_serial(Some("42"));
        let before = write_previous(root.path(), Prev::This);
        let out = run(BIN, &server.base_url(), root.path(), &["--timeout", "0.5"]);
        assert!(out.status.success(), "cut at {cut}: {}", stderr(&out));
        let after = read_doc(root.path());
        if after != before {
            assert_eq!(show(&after), show(&Some(whole.to_json())), "cut at {cut}");
        }
    }
}

/// A kill at each step of the atomic write: the old or the new document is there, never a
/// partial one; the next run cleans the temporary file and writes the new document.
#[test]
fn killed_at_each_step_of_the_write_leaves_the_old_or_the_new_document() {
    let want = document_of(&base()).to_json();
    for step in ["write", "fsync", "rename", "dirsync"] {
        let server = fake(base());
        let root = root_with_serial(Some("42"));
        let before = write_previous(root.path(), Prev::This).unwrap();
        let out = Command::new(BIN)
            .args(["--metadata-url", &server.base_url(), "--root"])
            .arg(root.path())
            .env("HCLOUD_TEST_CRASH_AFTER", step)
            .env_remove("JOURNAL_STREAM")
            .output()
            .unwrap();
        assert!(
            !out.status.success(),
            "{step}: the crash point was not reached"
        );
        let after = read_doc(root.path()).unwrap();
        assert!(
            after == before || after == want,
            "{step}: partial document {}",
            show(&Some(after))
        );
        let out = run(BIN, &server.base_url(), root.path(), &[]);
        assert!(out.status.success(), "{step}: {}", stderr(&out));
        assert_eq!(
            show(&read_doc(root.path())),
            show(&Some(want.clone())),
            "{step}"
        );
        let left: Vec<_> = std::fs::read_dir(root.path().join("etc"))
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
            .map(|e| e.file_name())
            .collect();
        assert!(left.is_empty(), "{step}: {left:?}");
    }
}

/// Two runs at once (the boot unit and a hotplug refresh): both succeed, one document.
#[test]
fn two_runs_at_once_write_one_whole_document() {
    let server = fake(base());
    let root = root_with_serial(Some("42"));
    let want = document_of(&base()).to_json();
    for _ in 0..5 {
        let spawn = || {
            Command::new(BIN)
                .args(["--metadata-url", &server.base_url(), "--root"])
                .arg(root.path())
                .env_remove("JOURNAL_STREAM")
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (a, b) = (spawn(), spawn());
        for child in [a, b] {
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert_eq!(show(&read_doc(root.path())), show(&Some(want.clone())));
    }
}

/// Links planted at the document's path: a symlink is refused and neither it nor its target
/// changes; a hard link keeps the other name's bytes; a directory is refused.
#[test]
fn symlink_planted_at_the_document_path_is_refused() {
    let server = fake(base());
    let root = root_with_serial(Some("42"));
    let victim = root.path().join("etc/shadow");
    std::fs::write(&victim, "root:!:19000::::::\n").unwrap();
    std::os::unix::fs::symlink("shadow", path(root.path(), DOC)).unwrap();
    let out = run(BIN, &server.base_url(), root.path(), &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("symbolic link"), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(&victim).unwrap(),
        "root:!:19000::::::\n"
    );
    assert!(
        std::fs::symlink_metadata(path(root.path(), DOC))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(mode(&victim), 0o644);
}

#[test]
fn hard_link_planted_at_the_document_path_keeps_the_other_name() {
    let server = fake(base());
    let root = root_with_serial(Some("42"));
    let before = write_previous(root.path(), Prev::This).unwrap();
    let other = root.path().join("etc/planted");
    std::fs::hard_link(path(root.path(), DOC), &other).unwrap();
    let out = run(BIN, &server.base_url(), root.path(), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read(&other).unwrap(), before);
    assert_eq!(
        show(&read_doc(root.path())),
        show(&Some(document_of(&base()).to_json()))
    );
}

/// Behind the shipped link (/etc/hcloud-metadata.json -> the state file): a symlink planted at
/// the state file itself is refused like one at the public path, and its target is untouched.
#[test]
fn symlink_planted_at_the_state_file_behind_the_shipped_link_is_refused() {
    let server = fake(base());
    let root = root_with_serial(Some("42"));
    let state = path(root.path(), hcloud_metadata::state::METADATA.state);
    std::fs::create_dir_all(state.parent().unwrap()).unwrap();
    let victim = root.path().join("etc/shadow");
    std::fs::write(&victim, "root:!:19000::::::\n").unwrap();
    std::os::unix::fs::symlink(&victim, &state).unwrap();
    std::os::unix::fs::symlink(
        hcloud_metadata::state::METADATA.state,
        path(root.path(), DOC),
    )
    .unwrap();
    let out = run(BIN, &server.base_url(), root.path(), &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("symbolic link"), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(&victim).unwrap(),
        "root:!:19000::::::\n"
    );
    assert!(std::fs::symlink_metadata(&state).unwrap().is_symlink());
}

/// The shipped link is kept while the document behind it is replaced, byte for byte.
#[test]
fn the_shipped_link_is_written_through_and_kept() {
    let server = fake(base());
    let root = root_with_serial(Some("42"));
    let out = run(BIN, &server.base_url(), root.path(), &["--migrate"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(BIN, &server.base_url(), root.path(), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let state = path(root.path(), hcloud_metadata::state::METADATA.state);
    assert_eq!(
        std::fs::read(&state).unwrap(),
        document_of(&base()).to_json()
    );
    assert_eq!(
        std::fs::read_link(path(root.path(), DOC)).unwrap(),
        std::path::Path::new(hcloud_metadata::state::METADATA.state)
    );
}

#[test]
fn directory_at_the_document_path_is_refused() {
    let server = fake(base());
    let root = root_with_serial(Some("42"));
    std::fs::create_dir(path(root.path(), DOC)).unwrap();
    let out = run(BIN, &server.base_url(), root.path(), &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("not a regular file"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn world_writable_document_is_narrowed_to_0644() {
    use std::os::unix::fs::PermissionsExt;
    let server = fake(base());
    let root = root_with_serial(Some("42"));
    write_previous(root.path(), Prev::This);
    std::fs::set_permissions(
        path(root.path(), DOC),
        std::fs::Permissions::from_mode(0o666),
    )
    .unwrap();
    let out = run(BIN, &server.base_url(), root.path(), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(mode(&path(root.path(), DOC)), 0o644);
}

#[test]
fn temporary_file_of_a_crashed_run_is_removed_whatever_its_pid() {
    let server = fake(base());
    let root = root_with_serial(Some("42"));
    let stale = root.path().join("etc/.hcloud-metadata.json.tmp-99999999");
    std::fs::write(&stale, "{\"half\":").unwrap();
    let out = run(BIN, &server.base_url(), root.path(), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stale.exists());
}
