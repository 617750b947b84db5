//! `hcloud-image arch-release` against a canned answer of the release API served on loopback,
//! and offline with the release given.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::{Command, Output};
use std::thread;

/// Serve `status` and `body` to each of `n` requests on a free loopback port.
fn serve(status: &'static str, body: &'static str, n: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for stream in listener.incoming().take(n) {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap() > 0 && line != "\r\n" {
                line.clear();
            }
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    format!("http://{addr}/releng/releases/json/")
}

fn arch_release(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hcloud-image"))
        .arg("arch-release")
        .args(args)
        .env_remove("HCLOUD_IMAGE_ARCH_RELEASE")
        .output()
        .unwrap()
}

const ANSWER: &str = r#"{
  "version": 1,
  "latest_version": "2026.11.01",
  "releases": [
    {"version": "2026.11.01", "release_date": "2026-11-01", "available": true,
     "kernel_version": "6.17.7", "sha256_sum": "00", "pgp_fingerprint": "3E80CA1A8B89F69CBA57D98A76A5EF9054449A5C"},
    {"version": "2026.10.01", "release_date": "2026-10-01", "available": true,
     "kernel_version": "6.17.1", "pgp_fingerprint": "3E80CA1A8B89F69CBA57D98A76A5EF9054449A5C"}
  ]
}"#;

#[test]
fn the_latest_release_names_the_dated_bootstrap_tarball() {
    let url = serve("200 OK", ANSWER, 2);
    let out = arch_release(&["--api-url", &url, "--mirror", "https://mirror.example"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "version=2026.11.01\n\
         file=archlinux-bootstrap-2026.11.01-x86_64.tar.zst\n\
         url=https://mirror.example/iso/2026.11.01/archlinux-bootstrap-2026.11.01-x86_64.tar.zst\n\
         signature=https://mirror.example/iso/2026.11.01/archlinux-bootstrap-2026.11.01-x86_64.tar.zst.sig\n"
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = arch_release(&["--api-url", &url, "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["kernel_version"], "6.17.7");
    assert_eq!(v["release_date"], "2026-11-01");
}

#[test]
fn a_release_signed_by_another_key_is_flagged() {
    let url = serve(
        "200 OK",
        r#"{"latest_version": "2027.01.01", "releases": [{"version": "2027.01.01", "pgp_fingerprint": "0000 1111 2222 3333 4444  5555 6666 7777 8888 9999"}]}"#,
        1,
    );
    let out = arch_release(&["--api-url", &url]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("signed by 0000111122223333444455556666777788889999"),
        "{err}"
    );
    assert!(err.contains("packer/keys/archlinux-release.asc"), "{err}");
}

#[test]
fn server_errors_and_garbage_fail_with_the_url() {
    let url = serve("503 Service Unavailable", "{}", 1);
    let out = arch_release(&["--api-url", &url, "--timeout", "5"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&url) && err.contains("503"), "{err}");

    let url = serve("200 OK", "<html>maintenance</html>", 1);
    let out = arch_release(&["--api-url", &url]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&url) && err.contains("parsing the Arch Linux release API answer"),
        "{err}"
    );
}

#[test]
fn offline_the_given_release_is_used_without_asking() {
    // An address nothing listens on: any request would fail.
    let out = arch_release(&[
        "--release",
        "2026.09.01",
        "--api-url",
        "http://127.0.0.1:9/",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with(
            "version=2026.09.01\nfile=archlinux-bootstrap-2026.09.01-x86_64.tar.zst\n"
        )
    );
    let out = Command::new(env!("CARGO_BIN_EXE_hcloud-image"))
        .arg("arch-release")
        .env("HCLOUD_IMAGE_ARCH_RELEASE", "latest")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected YYYY.MM.DD"));
}
