//! Debian's packer 1.6.6 (its built-in hcloud builder, hcloud-go 1.35.2) against the fake
//! through `HCLOUD_ENDPOINT`. The servers are not machines, so the templates use
//! `communicator = "none"`: packer runs every API step (key, server, rescue, reset, shutdown,
//! snapshot with labels, cleanup) and skips SSH. Requires `packer` on PATH
//! (`scripts/install-deps` installs Debian's package).

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Fake, start};
use serde_json::json;

fn template(server_name: &str) -> String {
    format!(
        r#"
source "hcloud" "fake" {{
  poll_interval   = "50ms"
  image           = "debian-13"
  location        = "fsn1"
  server_type     = "cx23"
  server_name     = "{server_name}"
  rescue          = "linux64"
  snapshot_name   = "fake-debian-20261201"
  snapshot_labels = {{
    os-flavor = "debian"
    arch      = "x86_64"
    build-id  = "20261201T074000"
  }}
  communicator    = "none"
}}

build {{
  sources = ["source.hcloud.fake"]
}}
"#
    )
}

/// Run `packer build` on `template` in `dir` against `fake`; (success, output).
fn packer_build(fake: &Fake, dir: &Path, template: &str) -> (bool, String) {
    let file = dir.join("fake.pkr.hcl");
    std::fs::write(&file, template).expect("template");
    let out = dir.join("packer.log");
    let log = std::fs::File::create(&out).expect("log");
    let mut child = Command::new("packer")
        .args(["build", "-color=false"])
        .arg(&file)
        .current_dir(dir)
        .env("HCLOUD_ENDPOINT", fake.cloud.endpoint())
        .env("HCLOUD_TOKEN", fake.cloud.token())
        .env("CHECKPOINT_DISABLE", "1")
        .env("HOME", dir)
        .env("PACKER_CACHE_DIR", dir.join("cache"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("packer 1.6.6 on PATH (scripts/install-deps installs it)");
    let until = Instant::now() + Duration::from_secs(180);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if Instant::now() > until {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "packer build did not finish in 180 s:\n{}",
                std::fs::read_to_string(&out).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (
        status.success(),
        std::fs::read_to_string(&out).unwrap_or_default(),
    )
}

#[test]
fn packer_1_6_6_is_the_expected_version() {
    let out = Command::new("packer")
        .arg("version")
        .output()
        .expect("packer on PATH");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Packer v1.6.6"), "{text}");
}

#[test]
fn packer_1_6_6_builds_a_snapshot_with_labels_and_cleans_up() {
    let f = start();
    let dir = tempfile::tempdir().expect("tempdir");
    let (ok, output) = packer_build(&f, dir.path(), &template("packer-fake-debian"));
    assert!(ok, "packer build failed:\n{output}");
    let snaps = f.cloud.snapshots();
    assert_eq!(snaps.len(), 1, "{output}");
    let snap = &snaps[0];
    assert!(
        output.contains(&format!(
            "A snapshot was created: 'fake-debian-20261201' (ID: {})",
            snap["id"]
        )),
        "{output}"
    );
    assert_eq!(snap["status"], "available");
    assert_eq!(snap["description"], "fake-debian-20261201");
    assert_eq!(
        snap["labels"],
        json!({"os-flavor": "debian", "arch": "x86_64", "build-id": "20261201T074000"})
    );
    assert_eq!(snap["disk_size"], 40.0);
    assert!(snap["image_size"].as_f64().is_some_and(|s| s > 0.0));
    assert_eq!(snap["created_from"]["name"], "packer-fake-debian");
    // The delete is not awaited by packer; it completes on the fake's clock.
    assert!(f.cloud.wait_idle(Duration::from_secs(10)));
    assert!(f.cloud.servers().is_empty(), "{:?}", f.cloud.servers());
    assert!(f.cloud.ssh_keys().is_empty(), "{:?}", f.cloud.ssh_keys());
    // The sequence recorded from packer 1.6.6 against a stand-in API.
    assert_eq!(f.sequence(), common::PACKER_166_RUN1, "{output}");
    let reqs = f.cloud.requests();
    assert!(
        reqs.iter().all(|r| r
            .user_agent
            .as_deref()
            .is_some_and(|u| u.contains("hcloud-go/1.35.2"))),
        "{reqs:?}"
    );
    // packer's temporary key went into the rescue boot.
    let key = reqs[0].body.as_ref().expect("key body")["public_key"]
        .as_str()
        .expect("public_key")
        .to_string();
    assert!(key.starts_with("ssh-rsa "));
    assert_eq!(
        reqs[1].body.as_ref().expect("server body")["server_type"],
        "cx23"
    );
}

#[test]
fn packer_1_6_6_reports_hetzners_refusal_of_an_underscore_in_the_server_name() {
    let f = start();
    let dir = tempfile::tempdir().expect("tempdir");
    // nixos.pkr.hcl's default name on x86_64.
    let (ok, output) = packer_build(
        &f,
        dir.path(),
        &template("packer-nixos-x86_64-20261201T074000"),
    );
    assert!(!ok, "packer build succeeded:\n{output}");
    assert!(
        output.contains("Error creating server: invalid input in field 'name' (invalid_input)"),
        "{output}"
    );
    assert!(f.cloud.servers().is_empty());
    // Cleanup still deleted the temporary key.
    assert!(f.cloud.ssh_keys().is_empty());
    assert_eq!(
        f.sequence(),
        [
            "POST /v1/ssh_keys -> 201",
            "POST /v1/servers -> 422",
            "DELETE /v1/ssh_keys/1000 -> 204"
        ]
    );
}
