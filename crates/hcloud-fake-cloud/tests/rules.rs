//! Each of Hetzner's rules and failure modes the fake enforces, over real HTTP: the request
//! Hetzner refuses, the code, status and field it refuses it with, and (where it matters)
//! that nothing was created.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{Answer, KEY_A, KEY_B, field, id, start};
use hcloud_fake_cloud::{Config, Failure};
use serde_json::{Value, json};

fn create(f: &common::Fake, body: Value) -> Answer {
    f.post("/servers", body)
}

fn assert_invalid(a: &Answer, field_name: &str) {
    assert_eq!(a.status, 422, "{:?}", a.json);
    assert_eq!(a.code(), "invalid_input", "{:?}", a.json);
    assert_eq!(field(a), field_name, "{:?}", a.json);
    assert_eq!(a.content_type.as_deref(), Some("application/json"));
}

#[test]
fn a_wrong_or_missing_token_is_unauthorized_in_hetzners_error_json() {
    let f = start();
    for token in [Some("wrong"), None] {
        let a = f.call_as(
            token,
            "POST",
            "/ssh_keys",
            Some(json!({"name": "k", "public_key": KEY_A})),
        );
        assert_eq!(a.status, 401);
        assert_eq!(a.content_type.as_deref(), Some("application/json"));
        assert_eq!(
            a.json,
            json!({"error": {"code": "unauthorized", "message": "unable to authenticate", "details": null}})
        );
    }
    assert!(f.cloud.ssh_keys().is_empty());
    // Every endpoint, reads too.
    assert_eq!(
        f.call_as(Some("wrong"), "GET", "/server_types", None)
            .status,
        401
    );
}

#[test]
fn a_read_only_token_reads_but_does_not_write() {
    let f = common::start_with(Config {
        readonly_token: Some("ro".into()),
        ..common::config()
    });
    assert_eq!(f.call_as(Some("ro"), "GET", "/images", None).status, 200);
    let a = f.call_as(
        Some("ro"),
        "POST",
        "/ssh_keys",
        Some(json!({"name": "k", "public_key": KEY_A})),
    );
    assert_eq!((a.status, a.code()), (401, "token_readonly"));
}

#[test]
fn a_server_name_with_an_underscore_is_not_a_hostname() {
    let f = start();
    // The NixOS template's default x86_64 name.
    let a = create(
        &f,
        json!({"name": "packer-nixos-x86_64-20261201T074000", "server_type": "cx23", "image": "debian-13", "location": "fsn1"}),
    );
    assert_invalid(&a, "name");
    assert_eq!(
        a.json["error"]["details"]["fields"][0]["messages"][0],
        "Name must be a valid hostname."
    );
    for bad in ["-lead", "trail-", "a..b", "with space", ""] {
        let a = create(
            &f,
            json!({"name": bad, "server_type": "cx23", "image": "debian-13"}),
        );
        assert_invalid(&a, "name");
    }
    assert!(f.cloud.servers().is_empty());
    let ok = create(
        &f,
        json!({"name": "packer-nixos-x86-64-20261201T074000", "server_type": "cx23", "image": "debian-13", "location": "fsn1"}),
    );
    assert_eq!(ok.status, 201, "{:?}", ok.json);
}

#[test]
fn labels_that_break_hetzners_key_or_value_rules_are_refused() {
    let f = start();
    let base = |labels: Value| json!({"name": "s1", "server_type": "cx23", "image": "debian-13", "location": "fsn1", "labels": labels});
    for labels in [
        json!({"build-time": "2026-12-01T07:40:00Z"}),
        json!({"url": "https://example.com/x"}),
        json!({"with space": "x"}),
        json!({"hetzner.cloud/reserved": "x"}),
        json!({"-dash": "x"}),
        json!({"k": "v".repeat(64)}),
        json!({"k": 1}),
    ] {
        let a = create(&f, base(labels.clone()));
        assert_invalid(&a, "labels");
    }
    assert!(f.cloud.servers().is_empty());
    // On SSH keys and snapshots as well.
    let a = f.post(
        "/ssh_keys",
        json!({"name": "k", "public_key": KEY_A, "labels": {"a b": "c"}}),
    );
    assert_invalid(&a, "labels");
    let ok = create(
        &f,
        base(json!({"os-flavor": "archlinux", "example.com/arch": "x86_64", "empty": ""})),
    );
    assert_eq!(ok.status, 201, "{:?}", ok.json);
    let sid = id(&ok.json, "server");
    f.wait_action(id(&ok.json, "action"));
    f.wait_action(ok.json["next_actions"][0]["id"].as_u64().unwrap());
    let a = f.post(
        &format!("/servers/{sid}/actions/create_image"),
        json!({"type": "snapshot", "description": "x", "labels": {"build-time": "2026-12-01T07:40:00Z"}}),
    );
    assert_invalid(&a, "labels");
    assert!(f.cloud.snapshots().is_empty());
}

#[test]
fn an_unknown_server_type_is_refused() {
    let f = start();
    // cx22 was removed at the end of 2025; cx99 never existed.
    for t in ["cx99", "cx22", "cpx11"] {
        let a = create(
            &f,
            json!({"name": "s", "server_type": t, "image": "debian-13", "location": "fsn1"}),
        );
        assert_invalid(&a, "server_type");
        assert_eq!(a.json["error"]["message"], "server type not found");
    }
    let a = create(&f, json!({"name": "s", "image": "debian-13"}));
    assert_invalid(&a, "server_type");
}

#[test]
fn a_server_type_not_offered_in_the_location_is_refused() {
    let f = start();
    // CX types are offered in the EU only.
    let a = create(
        &f,
        json!({"name": "s", "server_type": "cx23", "image": "debian-13", "location": "ash"}),
    );
    assert_invalid(&a, "server_type");
    assert_eq!(
        a.json["error"]["message"],
        "unsupported location for server type"
    );
    // The plugin's pre-check sees the same in server_type.locations[].
    let t = f.get("/server_types?name=cx23");
    let locs: Vec<&str> = t.json["server_types"][0]["locations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    assert_eq!(locs, ["fsn1", "nbg1", "hel1"]);
    // A test can withdraw a type from a location.
    f.cloud.withdraw("cpx22", "hel1").unwrap();
    let a = create(
        &f,
        json!({"name": "s", "server_type": "cpx22", "image": "debian-13", "location": "hel1"}),
    );
    assert_invalid(&a, "server_type");
}

#[test]
fn a_server_type_without_capacity_in_the_location_is_unavailable() {
    let f = start();
    f.cloud.set_availability("cx23", "fsn1", false).unwrap();
    let a = create(
        &f,
        json!({"name": "s", "server_type": "cx23", "image": "debian-13", "location": "fsn1"}),
    );
    assert_eq!(
        (a.status, a.code()),
        (412, "resource_unavailable"),
        "{:?}",
        a.json
    );
    let t = f.get("/server_types?name=cx23");
    assert_eq!(
        t.json["server_types"][0]["locations"][0]["available"],
        false
    );
    let b = create(
        &f,
        json!({"name": "s", "server_type": "cx23", "image": "debian-13", "location": "nbg1"}),
    );
    assert_eq!(b.status, 201);
}

#[test]
fn an_image_of_the_other_architecture_is_refused() {
    let f = start();
    // A name means the x86 image, so debian-13 on an Arm type fails, as packer 1.6.6 sends it.
    let a = create(
        &f,
        json!({"name": "s", "server_type": "cax11", "image": "debian-13", "location": "fsn1"}),
    );
    assert_invalid(&a, "image");
    assert_eq!(
        a.json["error"]["message"],
        "image has incompatible architecture"
    );
    // The plugin resolves name and architecture itself and sends the Arm image's id.
    let imgs = f.get("/images?architecture=arm&include_deprecated=true&name=debian-13");
    assert_eq!(imgs.json["images"].as_array().unwrap().len(), 1);
    let arm = imgs.json["images"][0]["id"].clone();
    let x86 = f.get("/images?architecture=x86&name=debian-13").json["images"][0]["id"].clone();
    assert_eq!(
        create(
            &f,
            json!({"name": "s", "server_type": "cax11", "image": arm, "location": "fsn1"})
        )
        .status,
        201
    );
    let a = create(
        &f,
        json!({"name": "t", "server_type": "cax11", "image": x86, "location": "fsn1"}),
    );
    assert_invalid(&a, "image");
}

#[test]
fn an_unknown_location_or_image_is_refused() {
    let f = start();
    let a = create(
        &f,
        json!({"name": "s", "server_type": "cx23", "image": "debian-13", "location": "xyz1"}),
    );
    assert_invalid(&a, "location");
    assert_eq!(a.json["error"]["message"], "location 'xyz1' not found");
    let a = create(
        &f,
        json!({"name": "s", "server_type": "cx23", "image": "debian-99", "location": "fsn1"}),
    );
    assert_invalid(&a, "image");
    let a = create(
        &f,
        json!({"name": "s", "server_type": "cx23", "image": 999999, "location": "fsn1"}),
    );
    assert_invalid(&a, "image");
}

#[test]
fn datacenters_are_gone() {
    let f = start();
    for p in ["/datacenters", "/datacenters/4"] {
        let a = f.get(p);
        assert_eq!((a.status, a.code()), (410, "deprecated_api_endpoint"));
        assert!(
            a.json["error"]["details"]["announcement"]
                .as_str()
                .unwrap()
                .contains("datacenters")
        );
    }
    let a = create(
        &f,
        json!({"name": "s", "server_type": "cx23", "image": "debian-13", "datacenter": "fsn1-dc14"}),
    );
    assert_invalid(&a, "datacenter");
    // Servers carry location, not datacenter (unless asked for, for hcloud-go 1.35.2).
    let s = create(
        &f,
        json!({"name": "s", "server_type": "cx23", "image": "debian-13", "location": "fsn1"}),
    );
    assert_eq!(s.json["server"]["location"]["name"], "fsn1");
    assert!(s.json["server"].get("datacenter").is_none());
}

#[test]
fn missing_resources_are_not_found() {
    let f = start();
    for (method, path) in [
        ("DELETE", "/servers/424242"),
        ("GET", "/servers/424242"),
        ("POST", "/servers/424242/actions/reset"),
        ("DELETE", "/ssh_keys/424242"),
        ("GET", "/ssh_keys/424242"),
        ("GET", "/actions/424242"),
        ("GET", "/images/424242"),
        ("DELETE", "/images/424242"),
        ("GET", "/server_types/424242"),
        ("GET", "/firewalls/424242"),
        ("GET", "/primary_ips/424242"),
        ("GET", "/servers/abc"),
        ("GET", "/nothing"),
    ] {
        let a = f.call(method, path, None);
        assert_eq!(
            (a.status, a.code()),
            (404, "not_found"),
            "{method} {path}: {:?}",
            a.json
        );
    }
    let a = f.call("PUT", "/actions", None);
    assert_eq!((a.status, a.code()), (405, "method_not_allowed"));
}

#[test]
fn names_and_key_fingerprints_are_unique() {
    let f = start();
    f.ssh_key("k", KEY_A);
    let a = f.post("/ssh_keys", json!({"name": "k", "public_key": KEY_B}));
    assert_eq!(
        (a.status, a.code(), field(&a)),
        (409, "uniqueness_error", "name")
    );
    let a = f.post("/ssh_keys", json!({"name": "other", "public_key": KEY_A}));
    assert_eq!(
        (a.status, a.code(), field(&a)),
        (409, "uniqueness_error", "public_key")
    );
    let a = f.post(
        "/ssh_keys",
        json!({"name": "bad", "public_key": "ssh-rsa not-base64"}),
    );
    assert_invalid(&a, "public_key");
    f.server("s", "cx23", json!("debian-13"));
    let a = create(
        &f,
        json!({"name": "s", "server_type": "cx23", "image": "debian-13", "location": "fsn1"}),
    );
    assert_eq!((a.status, a.code()), (409, "uniqueness_error"));
}

#[test]
fn a_second_action_while_one_runs_is_locked() {
    let f = start();
    let sid = f.server("s", "cx23", json!("debian-13"));
    let a = f.post(
        &format!("/servers/{sid}/actions/enable_rescue"),
        json!({"type": "linux64"}),
    );
    assert_eq!(a.status, 201);
    let b = f.call("POST", &format!("/servers/{sid}/actions/reset"), None);
    assert_eq!((b.status, b.code()), (423, "locked"));
    f.wait_action(id(&a.json, "action"));
    assert_eq!(
        f.call("POST", &format!("/servers/{sid}/actions/reset"), None)
            .status,
        201
    );
}

#[test]
fn change_type_needs_a_stopped_server_of_the_same_architecture() {
    let f = start();
    let sid = f.server("s", "cx23", json!("debian-13"));
    let body = json!({"server_type": "cx33", "upgrade_disk": false});
    let a = f.post(&format!("/servers/{sid}/actions/change_type"), body.clone());
    assert_eq!((a.status, a.code()), (422, "server_not_stopped"));
    let off = f.call("POST", &format!("/servers/{sid}/actions/poweroff"), None);
    assert_eq!(f.wait_action(id(&off.json, "action"))["status"], "success");
    assert_eq!(
        f.get(&format!("/servers/{sid}")).json["server"]["status"],
        "off"
    );
    let a = f.post(
        &format!("/servers/{sid}/actions/change_type"),
        json!({"server_type": "cax21", "upgrade_disk": false}),
    );
    assert_eq!((a.status, a.code()), (422, "invalid_server_type"));
    let a = f.post(
        &format!("/servers/{sid}/actions/change_type"),
        json!({"server_type": "cx33"}),
    );
    assert_invalid(&a, "upgrade_disk");
    let a = f.post(&format!("/servers/{sid}/actions/change_type"), body);
    assert_eq!(a.status, 201);
    f.wait_action(id(&a.json, "action"));
    let s = f.get(&format!("/servers/{sid}")).json;
    assert_eq!(s["server"]["server_type"]["name"], "cx33");
    assert_eq!(s["server"]["primary_disk_size"], 40);
}

#[test]
fn only_the_linux64_rescue_system_exists() {
    let f = start();
    let sid = f.server("s", "cx23", json!("debian-13"));
    let a = f.post(
        &format!("/servers/{sid}/actions/enable_rescue"),
        json!({"type": "linux32"}),
    );
    assert_invalid(&a, "type");
    let a = f.post(
        &format!("/servers/{sid}/actions/enable_rescue"),
        json!({"type": "linux64", "ssh_keys": [424242]}),
    );
    assert_invalid(&a, "ssh_keys");
}

#[test]
fn label_selectors_must_parse_and_pages_must_exist() {
    let f = start();
    for q in [
        "label_selector=a%3Db%2C",
        "label_selector=a+in+(b",
        "page=0",
        "per_page=x",
        "type=iso",
        "architecture=mips",
        "sort=size",
    ] {
        let a = f.get(&format!("/images?{q}"));
        assert_eq!(
            (a.status, a.code()),
            (422, "invalid_input"),
            "{q}: {:?}",
            a.json
        );
    }
}

#[test]
fn malformed_json_is_a_json_error() {
    let f = start();
    let url = format!("{}/ssh_keys", f.cloud.endpoint());
    let r = f
        .http
        .post(url)
        .header("Authorization", format!("Bearer {}", common::TOKEN))
        .header("Content-Type", "application/json")
        .body("{\"name\": ")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let v: Value = serde_json::from_slice(&r.bytes().unwrap()).unwrap();
    assert_eq!(v["error"]["code"], "json_error");
}

#[test]
fn user_data_over_32_kib_is_refused() {
    let f = start();
    let a = create(
        &f,
        json!({"name": "s", "server_type": "cx23", "image": "debian-13", "user_data": "x".repeat(32 * 1024 + 1)}),
    );
    assert_invalid(&a, "user_data");
}

#[test]
fn deletes_answer_204_without_a_content_type_and_system_images_stay() {
    let f = start();
    let k = f.ssh_key("k", KEY_A);
    let a = f.call("DELETE", &format!("/ssh_keys/{k}"), None);
    assert_eq!(
        (a.status, a.content_type.as_deref(), &a.json),
        (204, None, &Value::Null)
    );
    let system = f.get("/images?type=system&name=debian-13").json["images"][0]["id"]
        .as_u64()
        .unwrap();
    let a = f.call("DELETE", &format!("/images/{system}"), None);
    assert_eq!((a.status, a.code()), (403, "forbidden"));
    let sid = f.server("s", "cx23", json!("debian-13"));
    let a = f.post(
        &format!("/servers/{sid}/actions/create_image"),
        json!({"description": "snap"}),
    );
    let image = id(&a.json, "image");
    // Not while it is being created.
    assert_eq!(
        f.call("DELETE", &format!("/images/{image}"), None).status,
        423
    );
    f.wait_action(id(&a.json, "action"));
    assert_eq!(f.machines.snapshots(), vec![image]);
    let d = f.call("DELETE", &format!("/images/{image}"), None);
    assert_eq!((d.status, d.content_type.as_deref()), (204, None));
    assert!(f.machines.snapshots().is_empty());
}

#[test]
fn actions_finish_on_their_own_clock_and_are_kept() {
    let f = start();
    let sid = f.server("s", "cx23", json!("debian-13"));
    let a = f.call("DELETE", &format!("/servers/{sid}"), None);
    assert_eq!(a.status, 200);
    assert_eq!(a.json["action"]["command"], "delete_server");
    assert_eq!(a.json["action"]["status"], "running");
    // Nobody polls the delete; it completes anyway.
    assert!(f.cloud.wait_idle(Duration::from_secs(5)));
    assert_eq!(f.get(&format!("/servers/{sid}")).status, 404);
    assert!(f.machines.machine(sid).is_none());
    // Every action is still there, finished.
    let all = f.cloud.actions();
    assert_eq!(all.len(), 3);
    for a in all {
        assert_eq!(a["status"], "success");
        assert_eq!(a["progress"], 100);
        assert!(a["finished"].is_string());
        assert_eq!(f.get(&format!("/actions/{}", a["id"])).status, 200);
    }
}

#[test]
fn the_list_form_of_actions_returns_what_exists_sorted() {
    let f = start();
    let a = f.post(
        "/servers",
        json!({"name": "s", "server_type": "cx23", "image": "debian-13", "location": "fsn1"}),
    );
    let (create, start_) = (
        id(&a.json, "action"),
        a.json["next_actions"][0]["id"].as_u64().unwrap(),
    );
    let l = f.get(&format!(
        "/actions?id={start_}&id={create}&id=424242&page=1&sort=status&sort=id"
    ));
    assert_eq!(l.status, 200);
    let ids: Vec<u64> = l.json["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_u64().unwrap())
        .collect();
    // Fewer than asked for: hcloud-go v2 then fails with "actions not found".
    assert_eq!(ids, vec![create, start_]);
    assert_eq!(l.json["meta"]["pagination"]["total_entries"], 2);
    let a = f.get("/actions");
    assert_eq!(a.code(), "invalid_input");
}

#[test]
fn an_injected_failure_ends_the_action_in_error() {
    let f = start();
    let sid = f.server("s", "cx23", json!("debian-13"));
    f.cloud.fail_next(Failure {
        command: "create_image".into(),
        code: "service_error".into(),
        message: "service temporarily unavailable".into(),
        effect_anyway: false,
    });
    let a = f.post(
        &format!("/servers/{sid}/actions/create_image"),
        json!({"description": "snap"}),
    );
    let done = f.wait_action(id(&a.json, "action"));
    assert_eq!(done["status"], "error");
    assert_eq!(
        done["error"],
        json!({"code": "service_error", "message": "service temporarily unavailable"})
    );
    assert!(f.cloud.snapshots().is_empty());
    // packer-plugin-hcloud#400: the action failed, yet the snapshot exists.
    f.cloud.fail_next(Failure {
        command: "create_image".into(),
        code: "service_error".into(),
        message: "service temporarily unavailable".into(),
        effect_anyway: true,
    });
    let a = f.post(
        &format!("/servers/{sid}/actions/create_image"),
        json!({"description": "snap", "labels": {"build-id": "b1"}}),
    );
    assert_eq!(f.wait_action(id(&a.json, "action"))["status"], "error");
    let found = f.get("/images?type=snapshot&label_selector=build-id%3Db1");
    assert_eq!(found.json["images"][0]["status"], "available");
}

#[test]
fn lists_paginate_with_meta() {
    let f = start();
    let mut seen = Vec::new();
    let mut page = Some(1);
    while let Some(p) = page {
        let a = f.get(&format!("/images?type=system&per_page=5&page={p}"));
        assert_eq!(a.status, 200);
        let meta = &a.json["meta"]["pagination"];
        assert_eq!(meta["per_page"], 5);
        assert_eq!(meta["total_entries"], 12);
        assert_eq!(meta["last_page"], 3);
        seen.extend(
            a.json["images"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["id"].as_u64().unwrap()),
        );
        page = meta["next_page"].as_u64();
    }
    assert_eq!(seen.len(), 12);
    // per_page is capped at 50.
    assert_eq!(
        f.get("/images?per_page=500").json["meta"]["pagination"]["per_page"],
        50
    );
}

#[test]
fn one_connection_carries_many_requests() {
    let f = start();
    let mut s = TcpStream::connect(f.cloud.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let auth = format!("Authorization: Bearer {}\r\n", common::TOKEN);
    let req = format!("GET /v1/locations HTTP/1.1\r\nHost: x\r\n{auth}\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(
        format!(
            "GET /v1/server_types?name=cx23 HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    assert_eq!(raw.matches("HTTP/1.1 200 OK").count(), 2, "{raw}");
    assert!(raw.contains("Connection: keep-alive") && raw.contains("Connection: close"));
    assert_eq!(f.cloud.requests().len(), 2);
}

#[test]
fn the_binary_records_every_request_as_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("requests.jsonl");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_hcloud-fake-cloud"))
        .args(["--listen", "127.0.0.1:0", "--token", "t", "--record"])
        .arg(&record)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut buf = [0u8; 200];
    let n = out.read(&mut buf).unwrap();
    let line = String::from_utf8_lossy(&buf[..n]).to_string();
    let endpoint = line
        .trim()
        .strip_prefix("listening on ")
        .expect(&line)
        .to_string();
    let http = reqwest::blocking::Client::new();
    let r = http
        .post(format!("{endpoint}/ssh_keys"))
        .header("Authorization", "Bearer t")
        .header("Content-Type", "application/json")
        .body(json!({"name": "k", "public_key": KEY_A}).to_string())
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let r = http
        .get(format!("{endpoint}/images?name=debian-13"))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let _ = child.kill();
    let _ = child.wait();
    let lines: Vec<Value> = std::fs::read_to_string(&record)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["method"], "POST");
    assert_eq!(lines[0]["path"], "/v1/ssh_keys");
    assert_eq!(lines[0]["body"]["name"], "k");
    assert_eq!(lines[0]["status"], 201);
    assert_eq!(lines[1]["query"], "name=debian-13");
    assert_eq!(lines[1]["status"], 401);
}
