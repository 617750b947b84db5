//! The real `hcloud-dl-userdata` binary against the fake metadata service on loopback.

#[path = "../../hcloud-dl-metadata/tests/common.rs"]
mod common;

use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_hcloud-dl-userdata");
const UD: &str = "/etc/hcloud-userdata";
const MARK: &str = "/etc/hcloud-userdata.instance-id";

#[test]
fn binary_user_data_is_written_byte_for_byte_with_mode_0600() {
    // gzip magic, NUL bytes, invalid UTF-8, CR LF: nothing may be decoded or altered.
    let bytes: Vec<u8> = [
        &[0x1f, 0x8b, 0x08, 0x00, 0x00, 0xff, 0xfe, b'\r', b'\n'][..],
        &(0..=255u8).collect::<Vec<_>>(),
    ]
    .concat();
    let mut sc = scenario_with("");
    sc.server.userdata = None;
    sc.server.userdata_base64 = Some(base64_encode(&bytes));
    let server = fake(sc);
    let root = root_with_serial(Some("42"));
    let out = run(BIN, &server.base_url(), root.path(), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let p = path(root.path(), UD);
    assert_eq!(std::fs::read(&p).unwrap(), bytes);
    assert_eq!(mode(&p), 0o600);
}

fn no_userdata(option: &str) -> (Vec<u8>, String) {
    let mut sc = scenario_with(&format!("options:\n  empty_userdata: {option}\n"));
    sc.server.userdata = None;
    let server = fake(sc);
    let root = root_with_serial(Some("42"));
    std::fs::write(path(root.path(), UD), "old user data").unwrap();
    let out = run(BIN, &server.base_url(), root.path(), &[]);
    assert!(out.status.success(), "{option}: {}", stderr(&out));
    let p = path(root.path(), UD);
    assert_eq!(mode(&p), 0o600);
    let status = server.requests().last().and_then(|r| r.status).unwrap();
    (std::fs::read(&p).unwrap(), format!("{status}"))
}

#[test]
fn no_user_data_gives_an_empty_file_for_204_404_and_empty_200() {
    assert_eq!(no_userdata("no_content"), (vec![], "204".into()));
    assert_eq!(no_userdata("not_found"), (vec![], "404".into()));
    assert_eq!(no_userdata("empty_ok"), (vec![], "200".into()));
}

#[test]
fn a_failing_service_leaves_the_previous_user_data() {
    let server = fake(scenario_with("faults:\n  - {path: \"*\", status: 500}\n"));
    let root = root_with_serial(Some("42"));
    std::fs::write(path(root.path(), UD), "previous").unwrap();
    std::fs::write(path(root.path(), MARK), "42\n").unwrap();
    let out = run(BIN, &server.base_url(), root.path(), &["--timeout", "1.5"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("HTTP 500") && err.contains("was left as it was"),
        "{err}"
    );
    assert_eq!(std::fs::read(path(root.path(), UD)).unwrap(), b"previous");
}

#[test]
fn other_4xx_are_not_retried() {
    let server = fake(scenario_with("faults:\n  - {path: \"*\", status: 403}\n"));
    let root = root_with_serial(Some("42"));
    let out = run(BIN, &server.base_url(), root.path(), &["--timeout", "10"]);
    assert!(!out.status.success());
    assert_eq!(server.requests().len(), 1);
    assert!(stderr(&out).contains("HTTP 403"));
}

#[test]
fn oversize_user_data_is_refused() {
    let server = fake(scenario_with(
        "faults:\n  - {path: /hetzner/v1/userdata, oversize: 1100000}\n",
    ));
    let root = root_with_serial(Some("42"));
    let out = run(BIN, &server.base_url(), root.path(), &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("larger than"), "{}", stderr(&out));
    assert!(!path(root.path(), UD).exists());
}

#[test]
fn user_data_of_32_kib_and_more_is_accepted() {
    let mut sc = scenario_with("");
    sc.server.userdata = Some("#!/bin/sh\n".to_string() + &"x".repeat(64 * 1024));
    let server = fake(sc.clone());
    let root = root_with_serial(Some("42"));
    let out = run(BIN, &server.base_url(), root.path(), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        std::fs::read(path(root.path(), UD)).unwrap().len(),
        sc.server.userdata.unwrap().len()
    );
}

fn base64_encode(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn a_prohibit_route_fails_at_once_and_keeps_the_user_data() {
    let root = root_with_serial(Some("42"));
    let p = path(root.path(), UD);
    std::fs::write(&p, "previous\n").unwrap();
    std::fs::write(path(root.path(), MARK), "42\n").unwrap();
    let (out, took) = run_behind_route(BIN, "prohibit", root.path(), &["--timeout", "30"]);
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        took < std::time::Duration::from_secs(5),
        "took {took:?}: {err}"
    );
    assert!(
        err.contains("prohibited, most likely by systemd-imds in locked mode"),
        "{err}"
    );
    assert!(err.contains("systemd.imds.network=unlocked"), "{err}");
    assert_eq!(std::fs::read_to_string(&p).unwrap(), "previous\n");
}

#[test]
fn written_user_data_records_its_instance() {
    let server = fake(scenario_with(""));
    let root = root_with_serial(Some("42"));
    let out = run(BIN, &server.base_url(), root.path(), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        std::fs::read(path(root.path(), UD)).unwrap(),
        b"#cloud-config\nhello: 1\n"
    );
    assert_eq!(
        std::fs::read_to_string(path(root.path(), MARK)).unwrap(),
        "42\n"
    );
}

#[test]
fn a_clone_keeps_no_other_servers_user_data_when_the_fetch_fails() {
    let server = fake(scenario_with("faults:\n  - {path: \"*\", status: 500}\n"));
    // The snapshot's files: user data of instance 7; this server is 42.
    let root = root_with_serial(Some("42"));
    std::fs::write(path(root.path(), UD), "#cloud-config\nsecret: of-7\n").unwrap();
    std::fs::write(path(root.path(), MARK), "7\n").unwrap();
    let out = run(BIN, &server.base_url(), root.path(), &["--timeout", "1"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("instance 7"), "{err}");
    assert!(
        !path(root.path(), UD).exists(),
        "another server's user data was kept"
    );
    assert!(!path(root.path(), MARK).exists());
}

#[test]
fn user_data_without_a_record_of_its_instance_is_not_kept_on_failure() {
    let server = fake(scenario_with("faults:\n  - {path: \"*\", status: 500}\n"));
    let root = root_with_serial(Some("42"));
    std::fs::write(path(root.path(), UD), "unknown origin").unwrap();
    let out = run(BIN, &server.base_url(), root.path(), &["--timeout", "1"]);
    assert!(!out.status.success());
    assert!(!path(root.path(), UD).exists());
}

#[test]
fn a_404_keeps_this_instances_user_data() {
    // User data is fixed when a server is created: a 404 where there was user data for this
    // very instance is a broken answer, not "none".
    let sc = scenario_with("options:\n  empty_userdata: not_found\n");
    let mut none = sc.clone();
    none.server.userdata = None;
    let server = fake(none);
    let root = root_with_serial(Some("42"));
    std::fs::write(path(root.path(), UD), "#cloud-config\nmine: 1\n").unwrap();
    std::fs::write(path(root.path(), MARK), "42\n").unwrap();
    let out = run(BIN, &server.base_url(), root.path(), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("404"), "{}", stderr(&out));
    assert_eq!(
        std::fs::read(path(root.path(), UD)).unwrap(),
        b"#cloud-config\nmine: 1\n"
    );
    // A clone whose previous user data is another server's: the 404 means none.
    std::fs::write(path(root.path(), MARK), "7\n").unwrap();
    let out = run(BIN, &server.base_url(), root.path(), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read(path(root.path(), UD)).unwrap(), b"");
    assert_eq!(
        std::fs::read_to_string(path(root.path(), MARK)).unwrap(),
        "42\n"
    );
}

/// `--migrate` moves the user data and the instance it names into the state directory and
/// leaves the shipped link; the download then writes both there, never in /etc.
#[test]
fn migrate_moves_user_data_and_its_instance_and_the_download_writes_through_the_link() {
    let server = fake(scenario_with(""));
    let root = root_with_serial(Some("42"));
    std::fs::write(path(root.path(), UD), "old user data").unwrap();
    std::fs::write(path(root.path(), MARK), "42\n").unwrap();
    let out = run(BIN, &server.base_url(), root.path(), &["--migrate"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let state = path(root.path(), hcloud_metadata::state::USERDATA.state);
    assert_eq!(std::fs::read(&state).unwrap(), b"old user data");
    assert!(!path(root.path(), MARK).exists());
    assert_eq!(mode(state.parent().unwrap()), 0o700);

    let out = run(BIN, &server.base_url(), root.path(), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read(&state).unwrap(), b"#cloud-config\nhello: 1\n");
    assert_eq!(mode(&state), 0o600);
    let marker = std::fs::read_to_string(format!("{}.instance-id", state.display())).unwrap();
    assert_eq!(marker.trim(), "42");
    assert!(!path(root.path(), MARK).exists());
    assert!(
        std::fs::symlink_metadata(path(root.path(), UD))
            .unwrap()
            .is_symlink()
    );
}
