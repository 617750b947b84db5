//! systemd-imds in `locked` mode: a `prohibit` route to the metadata address makes connect(2)
//! fail with EACCES for our unmarked sockets. The downloader stops at once with an error that
//! says so and what to change, instead of retrying for the whole budget; an address that is
//! merely unreachable (as at boot before the network is up) is still retried for the budget.
//! Each run is in a network namespace of its own (see `common::run_behind_route`).

mod common;

use std::time::Duration;

use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_hcloud-dl-metadata");

#[test]
fn a_prohibit_route_fails_at_once_and_names_the_switch() {
    let root = root_with_serial(Some("42"));
    let (out, took) = run_behind_route(BIN, "prohibit", root.path(), &["--timeout", "30"]);
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(took < Duration::from_secs(5), "took {took:?}: {err}");
    assert!(err.contains("Permission denied"), "{err}");
    assert!(
        err.contains("prohibited, most likely by systemd-imds in locked mode"),
        "{err}"
    );
    assert!(err.contains("systemd.imds.network=unlocked"), "{err}");
    assert!(err.contains("docs/install.md"), "{err}");
    // One attempt, no retries.
    assert_eq!(err.matches("attempt #").count(), 1, "{err}");
    assert!(!path(root.path(), DOC).exists());
}

#[test]
fn locked_mode_on_the_kernel_command_line_is_named_first() {
    let root = root_with_serial(Some("42"));
    let generator = path(
        root.path(),
        "/usr/lib/systemd/system-generators/systemd-imds-generator",
    );
    std::fs::create_dir_all(generator.parent().unwrap()).unwrap();
    std::fs::write(&generator, "").unwrap();
    std::fs::create_dir_all(path(root.path(), "/proc")).unwrap();
    let cmdline = path(root.path(), "/proc/cmdline");
    std::fs::write(&cmdline, "root=/dev/sda1 systemd.imds.network=unlocked\n").unwrap();
    let (out, _) = run_behind_route(BIN, "prohibit", root.path(), &["--timeout", "30"]);
    assert!(
        !stderr(&out).contains("runs in locked mode"),
        "{}",
        stderr(&out)
    );
    std::fs::write(&cmdline, "root=/dev/sda1 systemd.imds.network=locked\n").unwrap();
    let (out, _) = run_behind_route(BIN, "prohibit", root.path(), &["--timeout", "30"]);
    let err = stderr(&out);
    assert!(
        err.contains("warning: systemd-imds runs in locked mode here"),
        "{err}"
    );
}

#[test]
fn a_prohibit_route_keeps_the_previous_document_and_says_why() {
    let root = root_with_serial(Some("42"));
    let before = previous(root.path(), 42);
    let (out, took) = run_behind_route(BIN, "prohibit", root.path(), &["--timeout", "30"]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(took < Duration::from_secs(5), "took {took:?}: {err}");
    assert!(err.contains("keeping the previous document"), "{err}");
    assert!(err.contains("systemd.imds.network=unlocked"), "{err}");
    assert_eq!(std::fs::read(path(root.path(), DOC)).unwrap(), before);
}

#[test]
fn an_unreachable_route_is_still_retried_for_the_budget_and_soon() {
    let root = root_with_serial(Some("42"));
    let (out, took) = run_behind_route(BIN, "unreachable", root.path(), &["--timeout", "3"]);
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    // No route yet (early boot, before the lease): retried every 200, 400, then 500 ms, so the
    // metadata is fetched within half a second of the route appearing: 200 + 400 + 4 x 500 ms
    // fit the 3 s budget, the next pause would not.
    assert!(took >= Duration::from_millis(2400), "took {took:?}: {err}");
    assert!(err.contains("gave up after 7 attempt(s)"), "{err}");
    assert!(!err.contains("prohibited"), "{err}");
}
