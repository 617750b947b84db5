//! What the integration tests share: a fake with fast actions, a blocking client that keeps
//! its connection alive as Go's does, and helpers to wait for actions and to read the record.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use hcloud_fake_cloud::{Config, FakeCloud, InMemoryMachines};
use serde_json::{Value, json};

pub const TOKEN: &str = "test-token";
/// An ed25519 key and an RSA key, as packer and users upload them.
pub const KEY_A: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGhjbG91ZC1hZ2VudHMtZXhhbXBsZS1rZXktMDAwMDAw alice@laptop";
pub const KEY_B: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGhjbG91ZC1hZ2VudHMtZXhhbXBsZS1rZXktMDAwMDAx bob@laptop";

pub struct Fake {
    pub cloud: FakeCloud,
    pub machines: Arc<InMemoryMachines>,
    pub http: reqwest::blocking::Client,
}

/// The answer to one request.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub content_type: Option<String>,
    pub json: Value,
}

impl Answer {
    pub fn code(&self) -> &str {
        self.json["error"]["code"].as_str().unwrap_or("")
    }
}

pub fn config() -> Config {
    Config {
        token: TOKEN.to_string(),
        action_time: Duration::from_millis(60),
        snapshot_time: Duration::from_millis(120),
        ..Config::default()
    }
}

pub fn start() -> Fake {
    start_with(config())
}

pub fn start_with(config: Config) -> Fake {
    let (cloud, machines) =
        FakeCloud::start_in_memory("127.0.0.1:0", config, Default::default()).expect("start");
    Fake {
        cloud,
        machines,
        http: reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(10))
            .user_agent("hcloud-fake-cloud-tests")
            .build()
            .expect("client"),
    }
}

impl Fake {
    /// `method` `path` (with query) under `/v1`, with `body` as JSON if given.
    pub fn call_as(
        &self,
        token: Option<&str>,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Answer {
        let url = format!("{}{path}", self.cloud.endpoint());
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut rb = self.http.request(method, url);
        if let Some(t) = token {
            rb = rb.header("Authorization", format!("Bearer {t}"));
        }
        if let Some(b) = body {
            rb = rb
                .header("Content-Type", "application/json")
                .body(serde_json::to_vec(&b).expect("json"));
        }
        let resp = rb.send().expect("an answer");
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = resp.bytes().expect("body");
        let json = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).expect("a JSON body")
        };
        Answer {
            status,
            content_type,
            json,
        }
    }

    pub fn call(&self, method: &str, path: &str, body: Option<Value>) -> Answer {
        self.call_as(Some(TOKEN), method, path, body)
    }

    pub fn get(&self, path: &str) -> Answer {
        self.call("GET", path, None)
    }

    pub fn post(&self, path: &str, body: Value) -> Answer {
        self.call("POST", path, Some(body))
    }

    /// Poll `GET /actions/{id}` as hcloud-go 1.35.2 does until it is done; its final state.
    pub fn wait_action(&self, id: u64) -> Value {
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            std::thread::sleep(Duration::from_millis(20));
            let a = self.get(&format!("/actions/{id}"));
            assert_eq!(a.status, 200, "{:?}", a.json);
            let status = a.json["action"]["status"]
                .as_str()
                .unwrap_or("")
                .to_string();
            if status != "running" {
                return a.json["action"].clone();
            }
            assert!(Instant::now() < until, "action {id} still running");
        }
    }

    /// Poll the list form `GET /actions?id=…&page=1&sort=status&sort=id` as hcloud-go v2 does.
    pub fn wait_action_list(&self, id: u64) -> Value {
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            std::thread::sleep(Duration::from_millis(20));
            let a = self.get(&format!("/actions?id={id}&page=1&sort=status&sort=id"));
            assert_eq!(a.status, 200, "{:?}", a.json);
            let list = a.json["actions"].as_array().expect("actions").clone();
            assert_eq!(list.len(), 1, "actions not found");
            if list[0]["status"] != "running" {
                return list[0].clone();
            }
            assert!(Instant::now() < until, "action {id} still running");
        }
    }

    pub fn ssh_key(&self, name: &str, public_key: &str) -> u64 {
        let a = self.post("/ssh_keys", json!({"name": name, "public_key": public_key}));
        assert_eq!(a.status, 201, "{:?}", a.json);
        a.json["ssh_key"]["id"].as_u64().expect("id")
    }

    /// Create a server as packer 1.6.6 does and wait for its actions; its id.
    pub fn server(&self, name: &str, server_type: &str, image: Value) -> u64 {
        let a = self.post(
            "/servers",
            json!({"name": name, "server_type": server_type, "image": image, "location": "fsn1"}),
        );
        assert_eq!(a.status, 201, "{:?}", a.json);
        let id = a.json["server"]["id"].as_u64().expect("id");
        self.wait_action(a.json["action"]["id"].as_u64().expect("action"));
        for n in a.json["next_actions"].as_array().expect("next_actions") {
            self.wait_action(n["id"].as_u64().expect("id"));
        }
        id
    }

    /// The recorded requests as `METHOD path[?query] -> status`, runs of the same line
    /// (polls) collapsed into one.
    pub fn sequence(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for r in self.cloud.requests() {
            let line = format!("{} -> {}", r.line(), r.status);
            if out.last() != Some(&line) {
                out.push(line);
            }
        }
        out
    }
}

/// `error.details.fields[0].name` of an error answer.
pub fn field(a: &Answer) -> &str {
    a.json["error"]["details"]["fields"][0]["name"]
        .as_str()
        .unwrap_or("")
}

/// The id of `value[key]["id"]`.
pub fn id(v: &Value, key: &str) -> u64 {
    v[key]["id"]
        .as_u64()
        .unwrap_or_else(|| panic!("no {key}.id in {v}"))
}

/// The requests of packer 1.6.6's successful build (cloud-api.md section 6, run 1), as
/// [`Fake::sequence`] lists them.
pub const PACKER_166_RUN1: &[&str] = &[
    "POST /v1/ssh_keys -> 201",
    "POST /v1/servers -> 201",
    "GET /v1/actions/1004 -> 200",
    "GET /v1/actions/1005 -> 200",
    "POST /v1/servers/1001/actions/enable_rescue -> 201",
    "GET /v1/actions/1006 -> 200",
    "POST /v1/servers/1001/actions/reset -> 201",
    "GET /v1/actions/1007 -> 200",
    "POST /v1/servers/1001/actions/shutdown -> 201",
    "GET /v1/actions/1008 -> 200",
    "POST /v1/servers/1001/actions/create_image -> 201",
    "GET /v1/actions/1010 -> 200",
    "DELETE /v1/servers/1001 -> 200",
    "DELETE /v1/ssh_keys/1000 -> 204",
];
