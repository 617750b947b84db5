//! A full or read-only target directory: the write fails with a clear error, the exit status is
//! non-zero and the previous document is intact. Runs the binary in its own mount namespace
//! (`unshare -m`) over a small tmpfs, so the test machine's mounts are never touched.

mod common;

use std::process::Command;

use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_hcloud-dl-metadata");
const PREVIOUS: &str = "{\"instance_id\": 42, \"previous\": true}\n";

fn run_in_namespace(setup: &str) -> (String, String) {
    assert!(
        is_root(),
        "this test needs root (mount namespaces and tmpfs); run the suite as root"
    );
    let server = fake(scenario_with(""));
    let root = root_with_serial(Some("42"));
    let script = format!(
        r#"set -eu
mount -t tmpfs -o size=256k tmpfs "$R/etc"
printf '%s' "$PREVIOUS" > "$R/etc/hcloud-metadata.json"
{setup}
set +e
"$BIN" --metadata-url "$URL" --root "$R" --timeout 3
echo "rc=$?"
printf 'content='; cat "$R/etc/hcloud-metadata.json"
ls -a "$R/etc" | grep -c tmp || true
"#
    );
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .env("R", root.path())
        .env("BIN", BIN)
        .env("URL", server.base_url())
        .env("PREVIOUS", PREVIOUS)
        .env_remove("JOURNAL_STREAM")
        .output()
        .expect("unshare");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_full_disk_keeps_the_previous_document() {
    let (stdout, stderr) =
        run_in_namespace(r#"dd if=/dev/zero of="$R/etc/filler" bs=4k 2>/dev/null || true"#);
    assert!(stdout.contains("rc=1"), "{stdout}\n{stderr}");
    assert!(stdout.contains(&format!("content={PREVIOUS}")), "{stdout}");
    assert!(
        stdout.trim_end().ends_with('0'),
        "a temporary file was left behind: {stdout}"
    );
    assert!(stderr.contains("No space left on device"), "{stderr}");
}

#[test]
fn a_read_only_directory_keeps_the_previous_document() {
    let (stdout, stderr) = run_in_namespace(r#"mount -o remount,ro "$R/etc""#);
    assert!(stdout.contains("rc=1"), "{stdout}\n{stderr}");
    assert!(stdout.contains(&format!("content={PREVIOUS}")), "{stdout}");
    assert!(stderr.contains("Read-only file system"), "{stderr}");
}
