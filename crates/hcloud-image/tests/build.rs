//! `hcloud-image build` with a stand-in `packer` that records how it is called: the checks
//! before a build, and the packer command lines, whose variables must all be declared by the
//! template (packer rejects an undeclared -var).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use hcloud_fake_cloud::{Config, FakeCloud};

/// The Cloud API every build of these tests checks its server type with (token `secret`).
fn cloud() -> &'static FakeCloud {
    static FAKE: OnceLock<FakeCloud> = OnceLock::new();
    FAKE.get_or_init(|| {
        let config = Config {
            token: "secret".into(),
            ..Config::default()
        };
        FakeCloud::start_in_memory("127.0.0.1:0", config, Default::default())
            .unwrap()
            .0
    })
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// A `packer` that answers `version` with `version` and appends every other call to `log`.
fn fake_packer(dir: &Path, version: &str) -> (PathBuf, PathBuf) {
    let log = dir.join("calls.log");
    let p = dir.join("packer");
    fs::write(
        &p,
        format!(
            "#!/bin/sh\nif [ \"$1\" = version ]; then echo 'Packer v{version}'; exit 0; fi\n\
             printf '%s\\n' \"$PWD :: $*\" >> '{}'\n",
            log.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    (p, log)
}

/// A release API on loopback answering `body` once.
fn release_api(body: &'static str) -> String {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        if let Some(Ok(mut stream)) = listener.incoming().next() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
                line.clear();
            }
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    format!("http://{addr}/api/v1/releng/releases/")
}

fn build(args: &[&str], packer: &Path, token: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hcloud-image"));
    cmd.arg("--workspace")
        .arg(repo())
        .arg("build")
        .arg("--packer")
        .arg(packer)
        .args(args);
    cmd.env_remove("HCLOUD_TOKEN")
        .env_remove("HCLOUD_IMAGE_ARCH_RELEASE")
        .env_remove("HCLOUD_IMAGE_ARCH_API")
        .env("HCLOUD_ENDPOINT", cloud().endpoint());
    if let Some(t) = token {
        cmd.env("HCLOUD_TOKEN", t);
    }
    cmd.output().unwrap()
}

fn declared(template: &str) -> Vec<String> {
    let body =
        hcl::parse(&fs::read_to_string(repo().join("packer").join(template)).unwrap()).unwrap();
    body.blocks()
        .filter(|b| b.identifier() == "variable")
        .map(|b| b.labels()[0].as_str().to_string())
        .collect()
}

fn vars_of(call: &str) -> Vec<(String, String)> {
    let words: Vec<&str> = call.split_whitespace().collect();
    words
        .windows(2)
        .filter(|w| w[0] == "-var")
        .map(|w| {
            let (k, v) = w[1].split_once('=').unwrap();
            (k.to_string(), v.to_string())
        })
        .collect()
}

#[test]
fn missing_prerequisites_are_all_named_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let (packer, log) = fake_packer(dir.path(), "1.6.6");
    let out = build(
        &["archlinux", "--arch-release", "2026.11.01"],
        &packer,
        None,
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("packer 1.6.6 is too old"), "{err}");
    assert!(err.contains("HCLOUD_TOKEN is not set"), "{err}");
    assert!(!log.exists(), "packer was run");

    let out = build(&["archlinux", "--arch", "aarch64"], &packer, Some("t"));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("archlinux images are built for x86_64 only")
    );
    let out = build(
        &["archlinux", "--arch-release", "latest"],
        &fake_packer(dir.path(), "1.11.2").0,
        Some("t"),
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected YYYY.MM.DD"));
    assert!(!log.exists(), "packer was run");
}

/// The template checks the bootstrap against the pinned key: a release the API says is signed by
/// another key cannot pass, so the build stops before packer creates anything.
#[test]
fn a_release_signed_by_another_key_stops_the_build_before_packer() {
    let dir = tempfile::tempdir().unwrap();
    let (packer, log) = fake_packer(dir.path(), "1.11.2");
    let api = release_api(
        r#"{"latest_version": "2027.01.01", "releases": [{"version": "2027.01.01", "pgp_fingerprint": "0000 1111 2222 3333 4444  5555 6666 7777 8888 9999"}]}"#,
    );
    let out = build(
        &["archlinux", "--arch-api-url", &api],
        &packer,
        Some("secret"),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("not building")
            && err.contains("signed by 0000111122223333444455556666777788889999")
            && err.contains("the pinned key is 3E80CA1A8B89F69CBA57D98A76A5EF9054449A5C"),
        "{err}"
    );
    assert!(!log.exists(), "packer was run");
}

#[test]
fn a_build_server_type_without_capacity_stops_the_build_before_packer() {
    let dir = tempfile::tempdir().unwrap();
    let (packer, log) = fake_packer(dir.path(), "1.11.2");
    cloud().set_availability("cpx22", "nbg1", false).unwrap();
    let args = [
        "archlinux",
        "--arch-release",
        "2026.11.01",
        "--",
        "-var",
        "location=nbg1",
        "-var",
        "server-type=cpx22",
    ];
    let out = build(&args, &packer, Some("secret"));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("checking the build server before packer starts")
            && err.contains("cpx22 is offered in nbg1 but not available there now"),
        "{err}"
    );
    assert!(!log.exists(), "packer was run");
    assert!(
        cloud()
            .requests()
            .iter()
            .any(|r| r.line() == "GET /v1/server_types?name=cpx22&page=1&per_page=50"),
        "{:?}",
        cloud().requests()
    );
    assert!(
        cloud()
            .requests()
            .iter()
            .all(|r| !r.path.contains("datacenter"))
    );
}

#[test]
fn a_build_stages_the_agents_and_runs_packer_init_and_build_with_declared_variables() {
    let dir = tempfile::tempdir().unwrap();
    let (packer, log) = fake_packer(dir.path(), "1.11.2");
    let out = build(
        &[
            "archlinux",
            "--arch-release",
            "2026.11.01",
            "--",
            "-var",
            "location=hel1",
            "-debug",
        ],
        &packer,
        Some("secret"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let calls = fs::read_to_string(&log).unwrap();
    let calls: Vec<&str> = calls.lines().collect();
    let root = repo();
    assert_eq!(
        calls[0],
        format!("{} :: init packer/archlinux.pkr.hcl", root.display())
    );
    let b = calls[1];
    assert!(
        b.starts_with(&format!("{} :: build ", root.display())),
        "{b}"
    );
    assert!(
        b.ends_with(" -var location=hel1 -debug packer/archlinux.pkr.hcl"),
        "{b}"
    );
    let vars = vars_of(b);
    let names = declared("archlinux.pkr.hcl");
    for (k, _) in &vars {
        assert!(
            names.contains(k),
            "-var {k} is not declared by the template"
        );
    }
    assert!(
        vars.contains(&("arch-image".into(), "2026.11.01".into())),
        "{vars:?}"
    );
    let dist = &vars.iter().find(|(k, _)| k == "dist-dir").unwrap().1;
    let manifest = hcloud_image::dist::read_manifest(Path::new(dist)).unwrap();
    assert_eq!(manifest.arch, hcloud_image::dist::Arch::X86_64);

    // NixOS: the architecture goes to the template, and again only declared variables.
    fs::remove_file(&log).unwrap();
    let out = build(&["nixos"], &packer, Some("secret"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let calls = fs::read_to_string(&log).unwrap();
    let b = calls.lines().nth(1).unwrap();
    let names = declared("nixos.pkr.hcl");
    for (k, _) in vars_of(b) {
        assert!(
            names.contains(&k),
            "-var {k} is not declared by the NixOS template"
        );
    }
    assert!(vars_of(b).contains(&("arch".into(), "x86_64".into())));

    // Debian: the same, with its own template.
    fs::remove_file(&log).unwrap();
    let out = build(&["debian"], &packer, Some("secret"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let calls = fs::read_to_string(&log).unwrap();
    let mut lines = calls.lines();
    assert_eq!(
        lines.next().unwrap(),
        format!("{} :: init packer/debian.pkr.hcl", root.display())
    );
    let b = lines.next().unwrap();
    assert!(b.ends_with(" packer/debian.pkr.hcl"), "{b}");
    let names = declared("debian.pkr.hcl");
    for (k, _) in vars_of(b) {
        assert!(
            names.contains(&k),
            "-var {k} is not declared by the Debian template"
        );
    }
    assert!(vars_of(b).contains(&("arch".into(), "x86_64".into())));

    // --no-preflight leaves the server type to packer: a type without capacity still builds.
    // (Here rather than in a test of its own: two builds staging the same tree must not race.)
    fs::remove_file(&log).unwrap();
    cloud().set_availability("cpx32", "ash", false).unwrap();
    let out = build(
        &[
            "archlinux",
            "--no-preflight",
            "--arch-release",
            "2026.11.01",
            "--",
            "-var",
            "location=ash",
            "-var",
            "server-type=cpx32",
        ],
        &packer,
        Some("secret"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(log.exists(), "packer was not run");
    assert!(
        !cloud().requests().iter().any(|r| r.query.contains("cpx32")),
        "{:?}",
        cloud().requests()
    );
}
