//! Replays of recorded request sequences: three packer 1.6.6 runs (a build, a build from the
//! snapshot found by label that fails and cleans up, the error shapes) and
//! packer-plugin-hcloud 1.7's build, with the bodies those clients send, asserting the
//! status of every step and the recorded sequence (polls collapsed).

mod common;

use common::{Fake, KEY_A, id, start};
use serde_json::{Value, json};

const RSA_KEY: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQCyjvNQmQ0S6guAqTMaSucV4x6qu8jOeE1LCrr5LCSpDTDFNC4V5v7kFy8miVk5k0M6/QVRc3TNSQA7p6czAgrB4UGC/UX43YUWkeXwU91cfVb0gGJ58FQGlncvVSVbjudtpzBiEpL//VDRnW6lzmU/os8vh950AprlS3iGbTFBgQ== packer";

/// packer 1.6.6's create, rescue and reset (steps 1–7), waiting with `GET /actions/{id}`.
/// A server as the fake holds it (read through the library, not over HTTP, so the recorded
/// sequence is exactly the client's).
fn held(f: &Fake, sid: u64) -> Value {
    f.cloud
        .servers()
        .into_iter()
        .find(|s| s["id"] == sid)
        .unwrap_or(Value::Null)
}

fn packer_up(f: &Fake, name: &str, image: Value) -> (u64, u64) {
    let k = f.post(
        "/ssh_keys",
        json!({"name": format!("packer-{name}"), "public_key": RSA_KEY}),
    );
    assert_eq!(k.status, 201, "{:?}", k.json);
    let key = id(&k.json, "ssh_key");
    let s = f.post(
        "/servers",
        json!({"name": name, "server_type": "cx23", "image": image, "ssh_keys": [key], "location": "fsn1"}),
    );
    assert_eq!(s.status, 201, "{:?}", s.json);
    let server = &s.json["server"];
    assert_eq!(server["status"], "initializing");
    assert_eq!(server["rescue_enabled"], false);
    assert!(
        server["public_net"]["ipv4"]["ip"]
            .as_str()
            .unwrap()
            .parse::<std::net::Ipv4Addr>()
            .is_ok()
    );
    assert!(
        server["public_net"]["ipv6"]["ip"]
            .as_str()
            .unwrap()
            .ends_with("::/64")
    );
    assert_eq!(s.json["action"]["command"], "create_server");
    assert_eq!(s.json["next_actions"][0]["command"], "start_server");
    assert_eq!(s.json["root_password"], Value::Null);
    let sid = id(&s.json, "server");
    assert_eq!(f.wait_action(id(&s.json, "action"))["status"], "success");
    assert_eq!(
        f.wait_action(s.json["next_actions"][0]["id"].as_u64().unwrap())["status"],
        "success"
    );
    assert_eq!(held(f, sid)["status"], "running");
    let r = f.post(
        &format!("/servers/{sid}/actions/enable_rescue"),
        json!({"type": "linux64", "ssh_keys": [key]}),
    );
    assert_eq!(r.status, 201);
    assert!(r.json["root_password"].is_string());
    f.wait_action(id(&r.json, "action"));
    assert_eq!(held(f, sid)["rescue_enabled"], true);
    let r = f.call("POST", &format!("/servers/{sid}/actions/reset"), None);
    assert_eq!(r.status, 201);
    assert_eq!(f.wait_action(id(&r.json, "action"))["status"], "success");
    (key, sid)
}

/// packer's cleanup: delete the server (not awaited), then the key.
fn packer_cleanup(f: &Fake, key: u64, sid: u64) {
    let d = f.call("DELETE", &format!("/servers/{sid}"), None);
    assert_eq!(d.status, 200);
    assert_eq!(d.json["action"]["command"], "delete_server");
    assert_eq!(
        f.call("DELETE", &format!("/ssh_keys/{key}"), None).status,
        204
    );
}

fn lines(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn packer_1_6_6_run_1_builds_a_snapshot_with_labels() {
    let f = start();
    let (key, sid) = packer_up(&f, "packer-fake-1", json!("debian-13"));
    // The reset booted the rescue system with exactly the key given to enable_rescue.
    let m = f.machines.machine(sid).unwrap();
    assert_eq!(
        m.last_boot,
        Some(hcloud_fake_cloud::Boot::Rescue {
            ssh_keys: vec![RSA_KEY.to_string()]
        })
    );
    assert_eq!(held(&f, sid)["rescue_enabled"], false);
    let sh = f.call("POST", &format!("/servers/{sid}/actions/shutdown"), None);
    assert_eq!(
        (sh.status, sh.json["action"]["command"].as_str()),
        (201, Some("shutdown_server"))
    );
    f.wait_action(id(&sh.json, "action"));
    let labels =
        json!({"arch": "x86_64", "build-time": "20261201T074000", "os-flavor": "archlinux"});
    let img = f.post(
        &format!("/servers/{sid}/actions/create_image"),
        json!({"type": "snapshot", "description": "fake-archlinux-20261201", "labels": labels}),
    );
    assert_eq!(img.status, 201);
    let image = &img.json["image"];
    assert_eq!(
        (image["type"].as_str(), image["status"].as_str()),
        (Some("snapshot"), Some("creating"))
    );
    assert_eq!(
        (image["name"].clone(), image["image_size"].clone()),
        (Value::Null, Value::Null)
    );
    assert_eq!(image["disk_size"], 40.0);
    assert_eq!(
        image["created_from"],
        json!({"id": sid, "name": "packer-fake-1"})
    );
    let image_id = id(&img.json, "image");
    assert_eq!(
        img.json["action"]["resources"],
        json!([{"id": sid, "type": "server"}, {"id": image_id, "type": "image"}])
    );
    assert_eq!(f.wait_action(id(&img.json, "action"))["status"], "success");
    packer_cleanup(&f, key, sid);

    let done = f.cloud.snapshots()[0].clone();
    assert_eq!(done["id"], image_id);
    assert_eq!(done["status"], "available");
    assert_eq!(done["labels"], labels);
    assert!(done["image_size"].as_f64().unwrap() > 0.0);
    assert!(f.cloud.wait_idle(std::time::Duration::from_secs(5)));
    assert!(f.cloud.servers().is_empty());
    assert!(f.cloud.ssh_keys().is_empty());
    // The ids run as in the observed run.
    assert_eq!((key, sid, image_id), (1000, 1001, 1009));
    assert_eq!(f.sequence(), common::PACKER_166_RUN1);
}

#[test]
fn packer_1_6_6_run_2_builds_from_the_snapshot_found_by_label_and_cleans_up_on_failure() {
    let f = start();
    // Run 1, short: a snapshot labelled os-flavor=archlinux.
    let (key, sid) = packer_up(&f, "packer-fake-1", json!("debian-13"));
    let img = f.post(
        &format!("/servers/{sid}/actions/create_image"),
        json!({"type": "snapshot", "description": "fake-archlinux-1", "labels": {"os-flavor": "archlinux"}}),
    );
    let image_id = id(&img.json, "image");
    f.wait_action(id(&img.json, "action"));
    packer_cleanup(&f, key, sid);
    f.cloud.clear_requests();

    // Run 2: image_filter with_selector os-flavor=archlinux, most_recent.
    let k = f.post(
        "/ssh_keys",
        json!({"name": "packer-2", "public_key": RSA_KEY}),
    );
    assert_eq!(k.status, 201);
    let key = id(&k.json, "ssh_key");
    let found = f.get("/images?label_selector=os-flavor%3Darchlinux&page=1&status=available");
    assert_eq!(found.status, 200);
    let images = found.json["images"].as_array().unwrap();
    assert_eq!(images.len(), 1);
    assert_eq!(images[0]["id"], image_id);
    assert_eq!(found.json["meta"]["pagination"]["next_page"], Value::Null);
    let s = f.post(
        "/servers",
        json!({"name": "packer-fake-2", "server_type": "cx23", "image": image_id, "ssh_keys": [key], "location": "fsn1"}),
    );
    assert_eq!(s.status, 201, "{:?}", s.json);
    let sid = id(&s.json, "server");
    assert_eq!(s.json["server"]["image"]["id"], image_id);
    f.wait_action(id(&s.json, "action"));
    f.wait_action(s.json["next_actions"][0]["id"].as_u64().unwrap());
    // The new server's disk is the snapshot.
    assert_eq!(
        f.machines.machine(sid).unwrap().spec.image,
        hcloud_fake_cloud::DiskSource::Snapshot { image_id }
    );
    let r = f.post(
        &format!("/servers/{sid}/actions/enable_rescue"),
        json!({"type": "linux64", "ssh_keys": [key]}),
    );
    f.wait_action(id(&r.json, "action"));
    let r = f.call("POST", &format!("/servers/{sid}/actions/reset"), None);
    f.wait_action(id(&r.json, "action"));
    // A provisioner fails: cleanup runs as on success.
    packer_cleanup(&f, key, sid);
    assert!(f.cloud.wait_idle(std::time::Duration::from_secs(5)));
    assert!(f.cloud.servers().is_empty() && f.cloud.ssh_keys().is_empty());
    assert_eq!(f.cloud.snapshots().len(), 1);
    let seq = f.sequence();
    assert_eq!(seq[0], "POST /v1/ssh_keys -> 201");
    assert_eq!(
        seq[1],
        "GET /v1/images?label_selector=os-flavor%3Darchlinux&page=1&status=available -> 200"
    );
    assert_eq!(seq[2], "POST /v1/servers -> 201");
    assert_eq!(
        &seq[seq.len() - 2..],
        &lines(&[
            &format!("DELETE /v1/servers/{sid} -> 200"),
            &format!("DELETE /v1/ssh_keys/{key} -> 204")
        ])
    );
}

#[test]
fn packer_1_6_6_run_3_error_shapes() {
    let f = start();
    let k = f.post(
        "/ssh_keys",
        json!({"name": "packer-3", "public_key": RSA_KEY}),
    );
    let key = id(&k.json, "ssh_key");
    let s = f.post(
        "/servers",
        json!({"name": "packer-fake-3", "server_type": "cx99", "image": "debian-13", "ssh_keys": [key], "location": "fsn1"}),
    );
    assert_eq!(s.status, 422);
    assert_eq!(
        s.json,
        json!({"error": {"code": "invalid_input", "message": "server type not found",
                         "details": {"fields": [{"name": "server_type", "messages": ["not found"]}]}}})
    );
    // Cleanup still runs.
    assert_eq!(
        f.call("DELETE", &format!("/ssh_keys/{key}"), None).status,
        204
    );
    let bad = f.call_as(
        Some("wrong"),
        "POST",
        "/ssh_keys",
        Some(json!({"name": "packer-4", "public_key": RSA_KEY})),
    );
    assert_eq!(bad.status, 401);
    assert_eq!(
        bad.json,
        json!({"error": {"code": "unauthorized", "message": "unable to authenticate", "details": null}})
    );
    assert_eq!(
        f.sequence(),
        lines(&[
            "POST /v1/ssh_keys -> 201",
            "POST /v1/servers -> 422",
            "DELETE /v1/ssh_keys/1000 -> 204",
            "POST /v1/ssh_keys -> 401"
        ])
    );
    assert!(f.cloud.servers().is_empty() && f.cloud.ssh_keys().is_empty());
}

/// packer-plugin-hcloud 1.7's snapshot-name check: every page of x86 snapshots.
fn plugin_snapshot_names(f: &Fake) -> Vec<String> {
    let mut names = Vec::new();
    let mut page = Some(1);
    while let Some(p) = page {
        let a = f.get(&format!(
            "/images?architecture=x86&page={p}&per_page=50&type=snapshot"
        ));
        assert_eq!(a.status, 200);
        names.extend(
            a.json["images"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["description"].as_str().unwrap().to_string()),
        );
        page = a.json["meta"]["pagination"]["next_page"].as_u64();
    }
    names
}

#[test]
fn plugin_1_7_build_with_upgrade_server_type_and_list_form_polling() {
    let f = start();
    // 1. Pre-validation.
    let t = f.get("/server_types?name=cx23");
    assert_eq!(t.json["server_types"][0]["architecture"], "x86");
    let up = f.get("/server_types?name=cx33");
    assert_eq!(up.json["server_types"][0]["architecture"], "x86");
    assert!(!plugin_snapshot_names(&f).contains(&"debian-agents".to_string()));
    // 3. The key, with labels.
    let k = f.post(
        "/ssh_keys",
        json!({"name": "packer-6a1", "public_key": KEY_A, "labels": {"packer": "build-1"}}),
    );
    assert_eq!(k.status, 201);
    let key = id(&k.json, "ssh_key");
    // 5. The image by name and architecture.
    let img = f.get("/images?architecture=x86&include_deprecated=true&name=debian-13");
    let images = img.json["images"].as_array().unwrap();
    assert_eq!(images.len(), 1);
    let image = images[0]["id"].clone();
    // 6. The server, image as id, stopped after create for the type change.
    let s = f.post(
        "/servers",
        json!({"name": "packer-debian-20261201", "server_type": "cx23", "image": image, "ssh_keys": [key],
               "location": "fsn1", "labels": {"packer": "build-1"}, "start_after_create": false,
               "public_net": {"enable_ipv4": true, "enable_ipv6": true}}),
    );
    assert_eq!(s.status, 201, "{:?}", s.json);
    let sid = id(&s.json, "server");
    assert_eq!(s.json["next_actions"], json!([]));
    // 7. Polling is the list form.
    assert_eq!(
        f.wait_action_list(id(&s.json, "action"))["status"],
        "success"
    );
    assert_eq!(
        f.get(&format!("/servers/{sid}")).json["server"]["status"],
        "off"
    );
    // 9. Running firewall actions that name this server: none.
    let fw = f.get("/firewalls/actions?page=1&per_page=50&status=running");
    assert_eq!((fw.status, fw.json["actions"].clone()), (200, json!([])));
    // 10. change_type and poweron.
    let c = f.post(
        &format!("/servers/{sid}/actions/change_type"),
        json!({"server_type": "cx33", "upgrade_disk": false}),
    );
    assert_eq!(c.status, 201, "{:?}", c.json);
    assert_eq!(
        f.wait_action_list(id(&c.json, "action"))["status"],
        "success"
    );
    let p = f.call("POST", &format!("/servers/{sid}/actions/poweron"), None);
    assert_eq!(p.status, 201);
    assert_eq!(
        f.wait_action_list(id(&p.json, "action"))["status"],
        "success"
    );
    let server = f.get(&format!("/servers/{sid}")).json["server"].clone();
    assert_eq!(
        (
            server["status"].as_str(),
            server["server_type"]["name"].as_str()
        ),
        (Some("running"), Some("cx33"))
    );
    assert_eq!(server["primary_disk_size"], 40);
    // 11. Rescue.
    let r = f.post(
        &format!("/servers/{sid}/actions/enable_rescue"),
        json!({"type": "linux64", "ssh_keys": [key]}),
    );
    f.wait_action_list(id(&r.json, "action"));
    let r = f.call("POST", &format!("/servers/{sid}/actions/reset"), None);
    f.wait_action_list(id(&r.json, "action"));
    // 12. Shutdown and snapshot; the snapshot's disk is the 40 GB of the build server.
    let sh = f.call("POST", &format!("/servers/{sid}/actions/shutdown"), None);
    f.wait_action_list(id(&sh.json, "action"));
    let i = f.post(
        &format!("/servers/{sid}/actions/create_image"),
        json!({"type": "snapshot", "description": "debian-agents", "labels": {"os-flavor": "debian", "build-id": "b1"}}),
    );
    assert_eq!(
        f.wait_action_list(id(&i.json, "action"))["status"],
        "success"
    );
    // 13. Cleanup.
    let d = f.call("DELETE", &format!("/servers/{sid}"), None);
    assert_eq!(d.status, 200);
    assert_eq!(
        f.call("DELETE", &format!("/ssh_keys/{key}"), None).status,
        204
    );
    assert!(f.cloud.wait_idle(std::time::Duration::from_secs(5)));
    let snap = &f.cloud.snapshots()[0];
    assert_eq!(
        (snap["disk_size"].as_f64(), snap["architecture"].as_str()),
        (Some(40.0), Some("x86"))
    );

    // A second build with the same snapshot_name is refused by the plugin, not the API.
    assert!(plugin_snapshot_names(&f).contains(&"debian-agents".to_string()));

    let seq = f.sequence();
    let want_prefix = lines(&[
        "GET /v1/server_types?name=cx23 -> 200",
        "GET /v1/server_types?name=cx33 -> 200",
        "GET /v1/images?architecture=x86&page=1&per_page=50&type=snapshot -> 200",
        "POST /v1/ssh_keys -> 201",
        "GET /v1/images?architecture=x86&include_deprecated=true&name=debian-13 -> 200",
        "POST /v1/servers -> 201",
        &format!(
            "GET /v1/actions?id={}&page=1&sort=status&sort=id -> 200",
            id(&s.json, "action")
        ),
        &format!("GET /v1/servers/{sid} -> 200"),
        "GET /v1/firewalls/actions?page=1&per_page=50&status=running -> 200",
        &format!("POST /v1/servers/{sid}/actions/change_type -> 201"),
    ]);
    assert_eq!(&seq[..want_prefix.len()], &want_prefix[..]);
    assert!(seq.contains(&format!("DELETE /v1/servers/{sid} -> 200")));
    assert!(f.cloud.requests().iter().all(|r| r.status < 400));
}

#[test]
fn plugin_lookups_of_firewalls_and_primary_ips() {
    let f = start();
    let fw = f.cloud.add_firewall("build-fw", Default::default());
    let ip = f
        .cloud
        .add_primary_ip("build-ip", "203.0.113.200".parse().unwrap(), "fsn1");
    let a = f.get("/firewalls?name=build-fw");
    assert_eq!(a.json["firewalls"][0]["id"], fw);
    assert_eq!(f.get(&format!("/firewalls/{fw}")).status, 200);
    assert_eq!(
        f.get("/primary_ips?name=build-ip").json["primary_ips"][0]["id"],
        ip
    );
    let by_ip = f.get("/primary_ips?ip=203.0.113.200");
    assert_eq!(by_ip.json["primary_ips"][0]["assignee_type"], "unassigned");
    assert_eq!(
        f.get("/primary_ips?name=none").json["primary_ips"],
        json!([])
    );
    let s = f.post(
        "/servers",
        json!({"name": "s", "server_type": "cx23", "image": "debian-13", "location": "fsn1",
               "firewalls": [{"firewall": fw}], "public_net": {"enable_ipv4": true, "enable_ipv6": false, "ipv4": ip}}),
    );
    assert_eq!(s.status, 201, "{:?}", s.json);
    assert_eq!(
        s.json["server"]["public_net"]["ipv4"]["ip"],
        "203.0.113.200"
    );
    assert_eq!(s.json["server"]["public_net"]["ipv6"], Value::Null);
    assert_eq!(s.json["server"]["public_net"]["firewalls"][0]["id"], fw);
    // Assigned now: a second server cannot take it.
    let t = f.post(
        "/servers",
        json!({"name": "t", "server_type": "cx23", "image": "debian-13", "location": "fsn1", "public_net": {"ipv4": ip}}),
    );
    assert_eq!((t.status, t.code()), (422, "primary_ip_assigned"));
    // Of another location.
    let far = f
        .cloud
        .add_primary_ip("far", "203.0.113.201".parse().unwrap(), "hel1");
    let t = f.post(
        "/servers",
        json!({"name": "t", "server_type": "cx23", "image": "debian-13", "location": "fsn1", "public_net": {"ipv4": far}}),
    );
    assert_eq!(
        (t.status, t.code()),
        (422, "primary_ip_datacenter_mismatch")
    );
    let u = f.post(
        "/servers",
        json!({"name": "u", "server_type": "cx23", "image": "debian-13", "firewalls": [{"firewall": 424242}]}),
    );
    assert_eq!(common::field(&u), "firewalls");
    let _ = KEY_A;
}
