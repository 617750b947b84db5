//! `hcloud-image preflight`, `find-snapshot` and `cleanup` against the fake Hetzner Cloud API
//! (`hcloud-fake-cloud`) over real HTTP on loopback: the commands as users run them (exit
//! status, messages), the client's pagination and error parsing, and the fake's record of every
//! request, which must never name the datacenters endpoint.

use std::process::{Command, Output};
use std::time::Duration;

use hcloud_fake_cloud::{Config, Failure, FakeCloud};
use hcloud_image::cloud::{self, Client};
use hcloud_image::dist::Arch;
use serde_json::{Value, json};

const TOKEN: &str = "image-test-token";
const BUILD: &str = "0b6c8a3e-1f2d-4c5b-9a8e-7d6c5b4a3f21";
const OTHER_BUILD: &str = "9f8e7d6c-5b4a-4321-8fed-cba987654321";

fn fake() -> FakeCloud {
    let config = Config {
        token: TOKEN.to_string(),
        action_time: Duration::from_millis(30),
        snapshot_time: Duration::from_millis(60),
        ..Config::default()
    };
    FakeCloud::start_in_memory("127.0.0.1:0", config, Default::default())
        .expect("the fake starts")
        .0
}

/// `hcloud-image ARGS` with the fake as endpoint.
fn run(fake: &FakeCloud, token: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hcloud-image"))
        .args(args)
        .env("HCLOUD_ENDPOINT", fake.endpoint())
        .env("HCLOUD_TOKEN", token)
        .output()
        .expect("hcloud-image runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A request of the test's own (setting up the project), not through the code under test.
fn call(fake: &FakeCloud, method: &str, path: &str, body: Value) -> Value {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let url = format!("{}{path}", fake.endpoint());
    let auth = format!("Bearer {TOKEN}");
    let mut resp = match method {
        "POST" => agent
            .post(&url)
            .header("Authorization", &auth)
            .header("Content-Type", "application/json")
            .send(body.to_string())
            .expect("an answer"),
        _ => agent
            .get(&url)
            .header("Authorization", &auth)
            .call()
            .expect("an answer"),
    };
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().expect("a body");
    assert!(status < 300, "{method} {path}: {status} {text}");
    serde_json::from_str(&text).expect("JSON")
}

/// A server with `labels`, once its create actions are done; its id.
fn server(fake: &FakeCloud, name: &str, labels: Value) -> u64 {
    let a = call(
        fake,
        "POST",
        "/servers",
        json!({"name": name, "server_type": "cx23", "image": "debian-13",
               "location": "fsn1", "labels": labels}),
    );
    assert!(fake.wait_idle(Duration::from_secs(10)));
    a["server"]["id"].as_u64().expect("server id")
}

/// A snapshot of a new server with `labels`, as packer's `create_image` makes it; its id.
fn snapshot(fake: &FakeCloud, server_name: &str, labels: Value) -> u64 {
    let id = server(fake, server_name, json!({}));
    let a = call(
        fake,
        "POST",
        &format!("/servers/{id}/actions/create_image"),
        json!({"type": "snapshot", "description": server_name, "labels": labels}),
    );
    assert!(fake.wait_idle(Duration::from_secs(10)));
    a["image"]["id"].as_u64().expect("image id")
}

/// An OpenSSH ed25519 public key line whose key bytes are all `seed`.
fn public_key(seed: u8) -> String {
    let mut blob = Vec::new();
    for part in [b"ssh-ed25519".as_slice(), &[seed; 32]] {
        blob.extend_from_slice(&(part.len() as u32).to_be_bytes());
        blob.extend_from_slice(part);
    }
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::new();
    for chunk in blob.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (*b as u32) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                b64.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                b64.push('=');
            }
        }
    }
    format!("ssh-ed25519 {b64} test@example")
}

fn ssh_key(fake: &FakeCloud, name: &str, seed: u8, labels: Value) -> u64 {
    let a = call(
        fake,
        "POST",
        "/ssh_keys",
        json!({"name": name, "public_key": public_key(seed), "labels": labels}),
    );
    a["ssh_key"]["id"].as_u64().expect("key id")
}

/// No request of the fake's record went to the datacenters endpoint (gone since 2026-10-01).
fn assert_no_datacenters(fake: &FakeCloud) {
    let reqs = fake.requests();
    assert!(!reqs.is_empty(), "no request was recorded");
    for r in reqs {
        assert!(!r.path.contains("datacenter"), "{}", r.line());
    }
}

fn paths(fake: &FakeCloud) -> Vec<String> {
    fake.requests().iter().map(|r| r.line()).collect()
}

#[test]
fn preflight_accepts_a_type_available_in_the_location() {
    let fake = fake();
    let out = run(
        &fake,
        TOKEN,
        &[
            "preflight",
            "--server-type",
            "cax11",
            "--location",
            "hel1",
            "--arch",
            "aarch64",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("cax11 (arm, 40 GB disk) is available in hel1"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        paths(&fake),
        ["GET /v1/server_types?name=cax11&page=1&per_page=50"]
    );
    assert_no_datacenters(&fake);
}

#[test]
fn preflight_refuses_an_unknown_server_type() {
    let fake = fake();
    let out = run(&fake, TOKEN, &["preflight", "--server-type", "cx22"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("server type cx22 does not exist"),
        "{}",
        stderr(&out)
    );
    assert_no_datacenters(&fake);
}

#[test]
fn preflight_refuses_a_type_not_offered_in_the_location_and_names_where_it_is() {
    let fake = fake();
    let out = run(
        &fake,
        TOKEN,
        &["preflight", "--server-type", "cx23", "--location", "ash"],
    );
    assert!(!out.status.success());
    let e = stderr(&out);
    assert!(
        e.contains("server type cx23 is not offered in ash; it is available in fsn1, nbg1, hel1"),
        "{e}"
    );
    // A location that does not exist at all is named as such.
    let out = run(
        &fake,
        TOKEN,
        &["preflight", "--server-type", "cx23", "--location", "xyz9"],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("location xyz9 does not exist"),
        "{}",
        stderr(&out)
    );
    // Withdrawn from a location it used to be offered in.
    fake.withdraw("cx23", "nbg1").unwrap();
    let out = run(
        &fake,
        TOKEN,
        &["preflight", "--server-type", "cx23", "--location", "nbg1"],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("not offered in nbg1; it is available in fsn1, hel1"),
        "{}",
        stderr(&out)
    );
    assert_no_datacenters(&fake);
}

#[test]
fn preflight_refuses_a_type_offered_but_without_capacity_in_the_location() {
    let fake = fake();
    fake.set_availability("cx23", "fsn1", false).unwrap();
    let out = run(
        &fake,
        TOKEN,
        &["preflight", "--server-type", "cx23", "--location", "fsn1"],
    );
    assert!(!out.status.success());
    let e = stderr(&out);
    assert!(
        e.contains("cx23 is offered in fsn1 but not available there now")
            && e.contains("it is available in nbg1, hel1"),
        "{e}"
    );
    // Back in stock: the same check passes.
    fake.set_availability("cx23", "fsn1", true).unwrap();
    let out = run(&fake, TOKEN, &["preflight", "--server-type", "cx23"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_no_datacenters(&fake);
}

#[test]
fn preflight_refuses_a_type_of_the_other_architecture() {
    let fake = fake();
    let out = run(
        &fake,
        TOKEN,
        &["preflight", "--server-type", "cax11", "--arch", "x86_64"],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("server type cax11 is arm (aarch64), not x86_64 (x86)"),
        "{}",
        stderr(&out)
    );
    let out = run(
        &fake,
        TOKEN,
        &["preflight", "--server-type", "cx23", "--arch", "aarch64"],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("pick a cax* type"),
        "{}",
        stderr(&out)
    );
    assert_no_datacenters(&fake);
}

#[test]
fn a_wrong_token_is_reported_as_unauthorized() {
    let fake = fake();
    let out = run(
        &fake,
        "not-the-token",
        &["preflight", "--server-type", "cx23"],
    );
    assert!(!out.status.success());
    let e = stderr(&out);
    assert!(
        e.contains("looking up server type cx23")
            && e.contains("unable to authenticate (unauthorized, HTTP 401"),
        "{e}"
    );
    // The library keeps the API's error for callers that act on the code.
    let client = Client::new(&fake.endpoint(), "not-the-token").unwrap();
    let err = client.server_type("cx23").unwrap_err();
    let api = err.downcast_ref::<cloud::ApiError>().expect("an ApiError");
    assert_eq!((api.status, api.code.as_str()), (401, "unauthorized"));
    // No token at all is refused before anything is sent.
    let out = run(&fake, "", &["find-snapshot", "--build-id", BUILD]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("HCLOUD_TOKEN is not set"),
        "{}",
        stderr(&out)
    );
    assert_eq!(fake.requests().len(), 2, "{:?}", paths(&fake));
}

#[test]
fn lists_follow_every_page() {
    let fake = fake();
    for i in 0..5 {
        server(
            &fake,
            &format!("build-{i}"),
            json!({"packer-build-id": BUILD}),
        );
    }
    server(&fake, "unrelated", json!({"packer-build-id": OTHER_BUILD}));
    fake.clear_requests();
    let client = Client::new(&fake.endpoint(), TOKEN)
        .unwrap()
        .with_per_page(2);
    let servers = client.servers(&format!("packer-build-id={BUILD}")).unwrap();
    let mut names: Vec<&str> = servers.iter().map(|s| s.name.as_str()).collect();
    names.sort();
    assert_eq!(
        names,
        ["build-0", "build-1", "build-2", "build-3", "build-4"]
    );
    let pages: Vec<String> = fake
        .requests()
        .iter()
        .map(|r| {
            r.query
                .split('&')
                .find(|p| p.starts_with("page="))
                .unwrap_or("")
                .to_string()
        })
        .collect();
    assert_eq!(pages, ["page=1", "page=2", "page=3"]);
    assert_no_datacenters(&fake);
}

#[test]
fn find_snapshot_prints_the_snapshot_of_the_build() {
    let fake = fake();
    let id = snapshot(
        &fake,
        "packer-archlinux-1",
        json!({"build-id": BUILD, "os-flavor": "archlinux"}),
    );
    snapshot(
        &fake,
        "packer-archlinux-2",
        json!({"build-id": OTHER_BUILD, "os-flavor": "archlinux"}),
    );
    let out = run(&fake, TOKEN, &["find-snapshot", "--build-id", BUILD]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<String> = stdout(&out).lines().map(str::to_string).collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with(&format!("{id}\tavailable\tx86\t"))
            && lines[0].ends_with("\tpacker-archlinux-1"),
        "{lines:?}"
    );
    assert!(
        paths(&fake).iter().any(|p| p.starts_with("GET /v1/images?")
            && p.contains("type=snapshot")
            && p.contains("label_selector=build-id%3D")),
        "{:?}",
        paths(&fake)
    );
    assert_no_datacenters(&fake);
}

#[test]
fn find_snapshot_fails_when_the_build_left_none() {
    let fake = fake();
    snapshot(&fake, "packer-nixos-1", json!({"build-id": OTHER_BUILD}));
    let out = run(&fake, TOKEN, &["find-snapshot", "--build-id", BUILD]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(&format!("no snapshot is labelled build-id={BUILD}")),
        "{}",
        stderr(&out)
    );
    assert_eq!(stdout(&out), "");
    // A build id that would widen the selector is refused before anything is asked.
    fake.clear_requests();
    let out = run(&fake, TOKEN, &["find-snapshot", "--build-id", "x,!y"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("invalid build id"),
        "{}",
        stderr(&out)
    );
    assert!(fake.requests().is_empty(), "{:?}", paths(&fake));
}

#[test]
fn find_snapshot_finds_the_snapshot_whose_create_image_action_failed() {
    // packer-plugin-hcloud#400: the action ends in error, packer reports no artifact, yet the
    // snapshot exists and is available.
    let fake = fake();
    fake.fail_next(Failure {
        command: "create_image".into(),
        code: "service_error".into(),
        message: "service temporarily unavailable".into(),
        effect_anyway: true,
    });
    let id = snapshot(&fake, "packer-debian-1", json!({"build-id": BUILD}));
    let failed = fake
        .actions()
        .into_iter()
        .find(|a| a["command"] == "create_image")
        .expect("the create_image action");
    assert_eq!(failed["status"], "error", "{failed}");
    let out = run(&fake, TOKEN, &["find-snapshot", "--build-id", BUILD]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with(&format!("{id}\tavailable\t")),
        "{}",
        stdout(&out)
    );
    assert_no_datacenters(&fake);
}

#[test]
fn cleanup_deletes_only_what_the_build_left() {
    let fake = fake();
    let leftover = server(
        &fake,
        "packer-archlinux-1",
        json!({"packer-build-id": BUILD}),
    );
    let other = server(
        &fake,
        "packer-archlinux-2",
        json!({"packer-build-id": OTHER_BUILD}),
    );
    let users = server(&fake, "web-1", json!({}));
    let labelled_key = ssh_key(&fake, "labelled", 1, json!({"packer-build-id": BUILD}));
    let packer_key = ssh_key(
        &fake,
        "packer-5f7c1a2b-0c3d-4e5f-8a9b-0123456789ab",
        2,
        json!({}),
    );
    let user_key = ssh_key(&fake, "alice@laptop", 3, json!({}));
    let out = run(&fake, TOKEN, &["cleanup", "--build-id", BUILD]);
    assert!(out.status.success(), "{}", stderr(&out));
    let o = stdout(&out);
    assert!(
        o.contains(&format!("deleted server {leftover} (packer-archlinux-1)"))
            && o.contains(&format!("deleted SSH key {labelled_key} (labelled)"))
            && o.contains(&format!("kept SSH key {packer_key} (packer-5f7c1a2b")),
        "{o}"
    );
    let deletes: Vec<String> = paths(&fake)
        .into_iter()
        .filter(|p| p.starts_with("DELETE"))
        .collect();
    assert_eq!(
        deletes,
        [
            format!("DELETE /v1/servers/{leftover}"),
            format!("DELETE /v1/ssh_keys/{labelled_key}")
        ]
    );
    assert!(fake.wait_idle(Duration::from_secs(10)));
    let mut left: Vec<u64> = fake
        .servers()
        .iter()
        .map(|s| s["id"].as_u64().unwrap())
        .collect();
    left.sort();
    assert_eq!(left, [other, users]);

    // packer's unlabelled temporary key only on request; a user's key never.
    let out = run(
        &fake,
        TOKEN,
        &["cleanup", "--build-id", BUILD, "--packer-keys"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("deleted SSH key {packer_key}")),
        "{}",
        stdout(&out)
    );
    let keys: Vec<u64> = fake
        .ssh_keys()
        .iter()
        .map(|k| k["id"].as_u64().unwrap())
        .collect();
    assert_eq!(keys, [user_key]);
    assert_no_datacenters(&fake);
}

#[test]
fn cleanup_dry_run_deletes_nothing() {
    let fake = fake();
    let leftover = server(&fake, "packer-nixos-1", json!({"packer-build-id": BUILD}));
    let key = ssh_key(&fake, "labelled", 4, json!({"packer-build-id": BUILD}));
    fake.clear_requests();
    let out = run(
        &fake,
        TOKEN,
        &["cleanup", "--build-id", BUILD, "--dry-run", "--packer-keys"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let o = stdout(&out);
    assert!(
        o.contains(&format!("would delete server {leftover}"))
            && o.contains(&format!("would delete SSH key {key}")),
        "{o}"
    );
    assert!(
        fake.requests().iter().all(|r| r.method == "GET"),
        "{:?}",
        paths(&fake)
    );
    assert_eq!(fake.servers().len(), 1);
    assert_eq!(fake.ssh_keys().len(), 1);
    // Nothing of the build left: said so, and still a success.
    let out = run(&fake, TOKEN, &["cleanup", "--build-id", OTHER_BUILD]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "nothing to delete\n");
    assert_no_datacenters(&fake);
}

#[test]
fn the_library_preflight_matches_the_command() {
    let fake = fake();
    let client = Client::new(&fake.endpoint(), TOKEN).unwrap();
    let st = cloud::preflight(&client, "cpx12", "sin", Arch::X86_64).unwrap();
    assert_eq!(
        (st.name.as_str(), st.architecture.as_str()),
        ("cpx12", "x86")
    );
    assert!(cloud::preflight(&client, "cx23", "sin", Arch::X86_64).is_err());
    assert_no_datacenters(&fake);
}
