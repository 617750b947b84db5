//! The project's resources as the fake keeps them (SSH keys, servers, images, actions, and the
//! lookups primary IPs and firewalls), and their JSON as the API renders it.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};

use crate::catalog::{self, Location, ServerType};
use crate::clock::rfc3339;
use crate::machines::Machines;
use crate::rules::Labels;

#[derive(Debug, Clone)]
pub struct SshKey {
    pub id: u64,
    pub name: String,
    pub public_key: String,
    pub fingerprint: String,
    pub labels: Labels,
    pub created: SystemTime,
}

impl SshKey {
    pub fn json(&self) -> Value {
        json!({"id": self.id, "name": self.name, "fingerprint": self.fingerprint,
               "public_key": self.public_key, "labels": self.labels,
               "created": rfc3339(self.created)})
    }
}

#[derive(Debug, Clone)]
pub struct Image {
    pub id: u64,
    /// `system` or `snapshot`.
    pub kind: &'static str,
    /// `creating` or `available`.
    pub status: &'static str,
    pub name: Option<String>,
    pub description: String,
    pub architecture: &'static str,
    pub os_flavor: String,
    pub os_version: Option<String>,
    pub disk_size: f64,
    pub image_size: Option<f64>,
    pub created_from: Option<(u64, String)>,
    pub labels: Labels,
    pub created: SystemTime,
}

impl Image {
    pub fn json(&self) -> Value {
        json!({
            "id": self.id, "type": self.kind, "status": self.status, "name": self.name,
            "description": self.description, "image_size": self.image_size,
            "disk_size": self.disk_size, "created": rfc3339(self.created),
            "created_from": self.created_from.as_ref().map(|(id, name)| json!({"id": id, "name": name})),
            "bound_to": null, "os_flavor": self.os_flavor, "os_version": self.os_version,
            "rapid_deploy": self.kind == "system", "protection": {"delete": false},
            "deprecated": null, "deleted": null, "labels": self.labels,
            "architecture": self.architecture,
        })
    }
}

/// A server's status other than `running`/`off`, which come from its machine.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Phase {
    Initializing,
    Starting,
    Settled,
    Deleting,
}

#[derive(Debug, Clone)]
pub struct Server {
    pub id: u64,
    pub name: String,
    pub phase: Phase,
    pub created: SystemTime,
    pub server_type: String,
    pub location: String,
    pub image_id: u64,
    pub ipv4: Option<(u64, Ipv4Addr)>,
    pub ipv6: Option<(u64, Ipv6Addr)>,
    pub rescue_enabled: bool,
    pub rescue_keys: Vec<String>,
    pub labels: Labels,
    pub primary_disk_size: u64,
    pub firewalls: Vec<u64>,
    /// The action chain running on this server, if any (another action is `locked`).
    pub busy: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ActionStatus {
    Running,
    Success,
    Error { code: String, message: String },
}

#[derive(Debug, Clone)]
pub struct Action {
    pub id: u64,
    pub command: &'static str,
    pub status: ActionStatus,
    pub started: SystemTime,
    pub finished: Option<SystemTime>,
    pub resources: Vec<(u64, &'static str)>,
    /// When its step began (None: waiting for the action before it in the chain).
    pub began: Option<Instant>,
    pub duration: Duration,
}

impl Action {
    pub fn status_str(&self) -> &'static str {
        match self.status {
            ActionStatus::Running => "running",
            ActionStatus::Success => "success",
            ActionStatus::Error { .. } => "error",
        }
    }

    pub fn progress(&self) -> u64 {
        match (&self.status, self.began) {
            (ActionStatus::Running, Some(b)) if !self.duration.is_zero() => {
                ((b.elapsed().as_secs_f64() / self.duration.as_secs_f64()) * 100.0).min(99.0) as u64
            }
            (ActionStatus::Running, _) => 0,
            _ => 100,
        }
    }

    pub fn json(&self) -> Value {
        let error = match &self.status {
            ActionStatus::Error { code, message } => json!({"code": code, "message": message}),
            _ => Value::Null,
        };
        json!({
            "id": self.id, "command": self.command, "status": self.status_str(),
            "progress": self.progress(), "started": rfc3339(self.started),
            "finished": self.finished.map(rfc3339), "error": error,
            "resources": self.resources.iter().map(|(id, t)| json!({"id": id, "type": t})).collect::<Vec<_>>(),
        })
    }
}

/// A primary IP a test put into the project (the fake creates none itself).
#[derive(Debug, Clone)]
pub struct PrimaryIp {
    pub id: u64,
    pub name: String,
    /// `ipv4` or `ipv6`.
    pub kind: &'static str,
    pub ip: String,
    pub location: String,
    pub assignee_id: Option<u64>,
    pub labels: Labels,
}

impl PrimaryIp {
    pub fn json(&self, locations: &[Location]) -> Value {
        let loc = locations
            .iter()
            .find(|l| l.name == self.location)
            .map(Location::json);
        json!({
            "id": self.id, "name": self.name, "type": self.kind, "ip": self.ip,
            "assignee_id": self.assignee_id,
            "assignee_type": if self.assignee_id.is_some() { "server" } else { "unassigned" },
            "auto_delete": false, "blocked": false, "created": rfc3339(SystemTime::now()),
            "dns_ptr": [], "labels": self.labels, "location": loc,
            "protection": {"delete": false},
        })
    }
}

/// A firewall a test put into the project (rules are not modelled).
#[derive(Debug, Clone)]
pub struct Firewall {
    pub id: u64,
    pub name: String,
    pub labels: Labels,
}

impl Firewall {
    pub fn json(&self, servers: &BTreeMap<u64, Server>) -> Value {
        let applied: Vec<Value> = servers
            .values()
            .filter(|s| s.firewalls.contains(&self.id))
            .map(|s| json!({"type": "server", "server": {"id": s.id}}))
            .collect();
        json!({"id": self.id, "name": self.name, "labels": self.labels, "rules": [],
               "applied_to": applied, "created": rfc3339(SystemTime::now())})
    }
}

/// An action that is told to fail: the next action of `command` ends in `error`.
#[derive(Debug, Clone)]
pub struct Failure {
    pub command: String,
    pub code: String,
    pub message: String,
    /// Apply the action's effect anyway (a snapshot that exists although its action failed,
    /// as in hetznercloud/packer-plugin-hcloud#400).
    pub effect_anyway: bool,
}

/// The whole project.
pub struct State {
    next_id: u64,
    pub locations: Vec<Location>,
    pub server_types: Vec<ServerType>,
    pub ssh_keys: BTreeMap<u64, SshKey>,
    pub servers: BTreeMap<u64, Server>,
    pub images: BTreeMap<u64, Image>,
    pub actions: BTreeMap<u64, Action>,
    pub primary_ips: BTreeMap<u64, PrimaryIp>,
    pub firewalls: BTreeMap<u64, Firewall>,
    pub failures: Vec<Failure>,
}

impl State {
    pub fn new() -> State {
        let mut st = State {
            next_id: 1000,
            locations: catalog::locations(),
            server_types: catalog::server_types(),
            ssh_keys: BTreeMap::new(),
            servers: BTreeMap::new(),
            images: BTreeMap::new(),
            actions: BTreeMap::new(),
            primary_ips: BTreeMap::new(),
            firewalls: BTreeMap::new(),
            failures: Vec::new(),
        };
        // System images: ids below 1000, x86 then arm for each name.
        let created = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut id = 100;
        for img in catalog::system_images() {
            for arch in ["x86", "arm"] {
                st.images.insert(
                    id,
                    Image {
                        id,
                        kind: "system",
                        status: "available",
                        name: Some(img.name.to_string()),
                        description: img.description.to_string(),
                        architecture: arch,
                        os_flavor: img.os_flavor.to_string(),
                        os_version: Some(img.os_version.to_string()),
                        disk_size: 5.0,
                        image_size: None,
                        created_from: None,
                        labels: Labels::new(),
                        created,
                    },
                );
                id += 1;
            }
        }
        st
    }

    /// A new id; one sequence for every kind of resource, as a packer 1.6.6 build against a
    /// stand-in showed (key 1000, server 1001, …).
    pub fn id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    pub fn location(&self, name: &str) -> Option<&Location> {
        self.locations.iter().find(|l| l.name == name)
    }

    pub fn server_type(&self, name: &str) -> Option<&ServerType> {
        self.server_types.iter().find(|t| t.name == name)
    }

    pub fn server_type_by_id_or_name(&self, v: &Value) -> Option<&ServerType> {
        match v {
            Value::Number(n) => n
                .as_u64()
                .and_then(|id| self.server_types.iter().find(|t| t.id == id)),
            Value::String(s) => self.server_type(s).or_else(|| {
                s.parse::<u64>()
                    .ok()
                    .and_then(|id| self.server_types.iter().find(|t| t.id == id))
            }),
            _ => None,
        }
    }

    /// A new running action (its clock starts now unless `waiting`).
    pub fn new_action(
        &mut self,
        command: &'static str,
        resources: Vec<(u64, &'static str)>,
        duration: Duration,
        waiting: bool,
    ) -> u64 {
        let id = self.id();
        self.actions.insert(
            id,
            Action {
                id,
                command,
                status: ActionStatus::Running,
                started: SystemTime::now(),
                finished: None,
                resources,
                began: if waiting { None } else { Some(Instant::now()) },
                duration,
            },
        );
        id
    }

    pub fn action_json(&self, id: u64) -> Value {
        self.actions
            .get(&id)
            .map(Action::json)
            .unwrap_or(Value::Null)
    }

    pub fn server_json(
        &self,
        s: &Server,
        machines: &dyn Machines,
        datacenter_field: bool,
    ) -> Value {
        let status = match s.phase {
            Phase::Initializing => "initializing",
            Phase::Starting => "starting",
            Phase::Deleting => "deleting",
            Phase::Settled if machines.is_running(s.id) => "running",
            Phase::Settled => "off",
        };
        let location = self.location(&s.location);
        let ipv4 = s.ipv4.map(|(id, ip)| {
            json!({"id": id, "ip": ip.to_string(), "blocked": false,
                   "dns_ptr": format!("static.{}.clients.your-server.de", ip.octets().iter().rev().map(u8::to_string).collect::<Vec<_>>().join("."))})
        });
        let ipv6 = s.ipv6.map(|(id, net)| {
            json!({"id": id, "ip": format!("{net}/64"), "blocked": false, "dns_ptr": []})
        });
        let mut v = json!({
            "id": s.id, "name": s.name, "status": status, "created": rfc3339(s.created),
            "public_net": {"ipv4": ipv4, "ipv6": ipv6, "floating_ips": [],
                           "firewalls": s.firewalls.iter().map(|f| json!({"id": f, "status": "applied"})).collect::<Vec<_>>()},
            "private_net": [],
            "server_type": self.server_type(&s.server_type).map(|t| t.json(&self.locations)),
            "location": location.map(Location::json),
            "image": self.images.get(&s.image_id).map(Image::json),
            "iso": null, "rescue_enabled": s.rescue_enabled, "locked": s.busy.is_some(),
            "backup_window": null, "outgoing_traffic": 0, "ingoing_traffic": 0,
            "included_traffic": 21990232555520u64,
            "protection": {"delete": false, "rebuild": false},
            "labels": s.labels, "volumes": [], "load_balancers": [],
            "primary_disk_size": s.primary_disk_size, "placement_group": null,
        });
        if datacenter_field {
            // For hcloud-go 1.35.2, which reads only `datacenter` (gone from the real API
            // since 2026-07-01).
            v["datacenter"] = json!({
                "id": location.map(|l| l.id).unwrap_or(0),
                "name": format!("{}-dc1", s.location),
                "description": format!("{} virtual DC 1", s.location),
                "location": location.map(Location::json),
                "server_types": {"supported": [], "available": [], "available_for_migration": []},
            });
        }
        v
    }

    /// Take the failure injected for `command`, if any.
    pub fn take_failure(&mut self, command: &str) -> Option<Failure> {
        let i = self.failures.iter().position(|f| f.command == command)?;
        Some(self.failures.remove(i))
    }
}

impl Default for State {
    fn default() -> State {
        State::new()
    }
}
