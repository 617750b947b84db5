//! The endpoints: routing, the token check, request validation with Hetzner's rules, and the
//! answers. Work that takes time becomes actions (see `actions.rs`); the machines behind the
//! servers are reached only through [`crate::machines::Machines`].

use std::sync::Arc;
use std::time::SystemTime;

use serde_json::{Map, Value, json};

use crate::actions::{Effect, Job, Step, effect_only, spawn_chain};
use crate::error::ApiError;
use crate::http::{Reply, Request};
use crate::machines::{Boot, DiskSource, Hardware, MachineSpec};
use crate::rules::{self, Selector};
use crate::service::Shared;
use crate::state::{Image, Phase, Server, SshKey, State};

type ApiResult = Result<Reply, ApiError>;

/// Answer one request.
pub fn route(shared: &Arc<Shared>, req: &Request) -> Reply {
    match handle(shared, req) {
        Ok(r) => r,
        Err(e) => Reply::Json(e.status, e.body()),
    }
}

fn check_token(shared: &Shared, req: &Request) -> Result<(), ApiError> {
    let token = req
        .header("Authorization")
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim);
    let cfg = &shared.config;
    match token {
        Some(t) if t == cfg.token => Ok(()),
        Some(t) if cfg.readonly_token.as_deref() == Some(t) => {
            if req.method == "GET" {
                Ok(())
            } else {
                Err(ApiError::new(
                    "token_readonly",
                    "The token is only allowed to perform GET requests",
                ))
            }
        }
        _ => Err(ApiError::unauthorized()),
    }
}

fn id_of(s: &str, what: &str) -> Result<u64, ApiError> {
    s.parse().map_err(|_| ApiError::not_found(what))
}

/// The request body as a JSON object (an absent body is an empty object).
fn body(req: &Request) -> Result<Map<String, Value>, ApiError> {
    if req.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(&req.body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(ApiError::new("json_error", "JSON body must be an object")),
        Err(e) => Err(ApiError::new("json_error", format!("invalid JSON: {e}"))),
    }
}

fn handle(shared: &Arc<Shared>, req: &Request) -> ApiResult {
    check_token(shared, req)?;
    let Some(rest) = req.path.strip_prefix("/v1/") else {
        return Err(ApiError::not_found("path"));
    };
    let segs: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
    let m = req.method.as_str();
    match (m, segs.as_slice()) {
        ("POST", ["ssh_keys"]) => create_ssh_key(shared, req),
        ("GET", ["ssh_keys"]) => list_ssh_keys(shared, req),
        ("GET", ["ssh_keys", id]) => {
            let st = shared.lock_state();
            let k = st
                .ssh_keys
                .get(&id_of(id, "ssh key")?)
                .ok_or_else(|| ApiError::not_found("ssh key"))?;
            Ok(Reply::Json(200, json!({"ssh_key": k.json()})))
        }
        ("DELETE", ["ssh_keys", id]) => {
            let mut st = shared.lock_state();
            st.ssh_keys
                .remove(&id_of(id, "ssh key")?)
                .ok_or_else(|| ApiError::not_found("ssh key"))?;
            Ok(Reply::NoContent)
        }
        ("POST", ["servers"]) => create_server(shared, req),
        ("GET", ["servers"]) => list_servers(shared, req),
        ("GET", ["servers", id]) => {
            let st = shared.lock_state();
            let s = st
                .servers
                .get(&id_of(id, "server")?)
                .ok_or_else(|| ApiError::not_found("server"))?;
            let v = st.server_json(s, shared.machines.as_ref(), shared.config.datacenter_field);
            Ok(Reply::Json(200, json!({"server": v})))
        }
        ("DELETE", ["servers", id]) => delete_server(shared, id_of(id, "server")?),
        ("POST", ["servers", id, "actions", command]) => {
            server_action(shared, req, id_of(id, "server")?, command)
        }
        ("GET", ["actions"]) => list_actions(shared, req),
        ("GET", ["actions", id]) => {
            let st = shared.lock_state();
            let a = st
                .actions
                .get(&id_of(id, "action")?)
                .ok_or_else(|| ApiError::not_found("action"))?;
            Ok(Reply::Json(200, json!({"action": a.json()})))
        }
        ("GET", ["images"]) => list_images(shared, req),
        ("GET", ["images", id]) => {
            let st = shared.lock_state();
            let i = st
                .images
                .get(&id_of(id, "image")?)
                .ok_or_else(|| ApiError::not_found("image"))?;
            Ok(Reply::Json(200, json!({"image": i.json()})))
        }
        ("DELETE", ["images", id]) => delete_image(shared, id_of(id, "image")?),
        ("GET", ["server_types"]) => {
            let st = shared.lock_state();
            let name = req.param("name");
            let items = st
                .server_types
                .iter()
                .filter(|t| name.is_none_or(|n| n == t.name))
                .map(|t| t.json(&st.locations))
                .collect();
            list(req, "server_types", items)
        }
        ("GET", ["server_types", id]) => {
            let st = shared.lock_state();
            let id = id_of(id, "server type")?;
            let t = st
                .server_types
                .iter()
                .find(|t| t.id == id)
                .ok_or_else(|| ApiError::not_found("server type"))?;
            Ok(Reply::Json(
                200,
                json!({"server_type": t.json(&st.locations)}),
            ))
        }
        ("GET", ["locations"]) => {
            let st = shared.lock_state();
            let name = req.param("name");
            let items = st
                .locations
                .iter()
                .filter(|l| name.is_none_or(|n| n == l.name))
                .map(|l| l.json())
                .collect();
            list(req, "locations", items)
        }
        ("GET", ["locations", id]) => {
            let st = shared.lock_state();
            let id = id_of(id, "location")?;
            let l = st
                .locations
                .iter()
                .find(|l| l.id == id)
                .ok_or_else(|| ApiError::not_found("location"))?;
            Ok(Reply::Json(200, json!({"location": l.json()})))
        }
        (_, ["datacenters", ..]) => Err(ApiError {
            details: json!({"announcement": "https://docs.hetzner.cloud/changelog#2026-06-02-datacenters-deprecated"}),
            ..ApiError::new("deprecated_api_endpoint", "API functionality was removed")
        }),
        ("GET", ["primary_ips"]) => {
            let st = shared.lock_state();
            let sel = selector(req)?;
            let (name, ip) = (req.param("name"), req.param("ip"));
            let items = st
                .primary_ips
                .values()
                .filter(|p| name.is_none_or(|n| n == p.name))
                .filter(|p| ip.is_none_or(|i| p.ip == i || p.ip.split('/').next() == Some(i)))
                .filter(|p| sel.as_ref().is_none_or(|s| s.matches(&p.labels)))
                .map(|p| p.json(&st.locations))
                .collect();
            list(req, "primary_ips", items)
        }
        ("GET", ["primary_ips", id]) => {
            let st = shared.lock_state();
            let p = st
                .primary_ips
                .get(&id_of(id, "primary ip")?)
                .ok_or_else(|| ApiError::not_found("primary ip"))?;
            Ok(Reply::Json(
                200,
                json!({"primary_ip": p.json(&st.locations)}),
            ))
        }
        ("GET", ["firewalls", "actions"]) => {
            // Firewall actions are not modelled: none is ever running.
            status_filter(req, &["running", "success", "error"])?;
            list(req, "actions", Vec::new())
        }
        ("GET", ["firewalls"]) => {
            let st = shared.lock_state();
            let sel = selector(req)?;
            let name = req.param("name");
            let items = st
                .firewalls
                .values()
                .filter(|f| name.is_none_or(|n| n == f.name))
                .filter(|f| sel.as_ref().is_none_or(|s| s.matches(&f.labels)))
                .map(|f| f.json(&st.servers))
                .collect();
            list(req, "firewalls", items)
        }
        ("GET", ["firewalls", id]) => {
            let st = shared.lock_state();
            let f = st
                .firewalls
                .get(&id_of(id, "firewall")?)
                .ok_or_else(|| ApiError::not_found("firewall"))?;
            Ok(Reply::Json(200, json!({"firewall": f.json(&st.servers)})))
        }
        (_, segs) if known_path(segs) => Err(ApiError::new(
            "method_not_allowed",
            format!("method {m} is not allowed here"),
        )),
        _ => Err(ApiError::not_found("path")),
    }
}

fn known_path(segs: &[&str]) -> bool {
    matches!(
        segs,
        ["ssh_keys"]
            | ["ssh_keys", _]
            | ["servers"]
            | ["servers", _]
            | ["servers", _, "actions", _]
            | ["actions"]
            | ["actions", _]
            | ["images"]
            | ["images", _]
            | ["server_types"]
            | ["server_types", _]
            | ["locations"]
            | ["locations", _]
            | ["primary_ips"]
            | ["primary_ips", _]
            | ["firewalls"]
            | ["firewalls", _]
    )
}

/// A list answer with `meta.pagination`, after `page` and `per_page`.
fn list(req: &Request, key: &str, items: Vec<Value>) -> ApiResult {
    let (page, per_page) = rules::pagination(&req.query)?;
    let total = items.len();
    let last_page = total.div_ceil(per_page).max(1);
    let slice: Vec<Value> = items
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .collect();
    let mut out = Map::new();
    out.insert(key.to_string(), Value::Array(slice));
    out.insert(
        "meta".into(),
        json!({"pagination": {
            "page": page, "per_page": per_page,
            "previous_page": if page > 1 { json!(page - 1) } else { Value::Null },
            "next_page": if page < last_page { json!(page + 1) } else { Value::Null },
            "last_page": last_page, "total_entries": total,
        }}),
    );
    Ok(Reply::Json(200, Value::Object(out)))
}

fn selector(req: &Request) -> Result<Option<Selector>, ApiError> {
    req.param("label_selector")
        .map(rules::parse_selector)
        .transpose()
}

/// The `status` values asked for, each one of `allowed`.
fn status_filter<'a>(req: &'a Request, allowed: &[&str]) -> Result<Vec<&'a str>, ApiError> {
    let s = req.params("status");
    if let Some(bad) = s.iter().find(|v| !allowed.contains(v)) {
        return Err(ApiError::invalid_input(
            "status",
            &format!("invalid status '{bad}'"),
        ));
    }
    Ok(s)
}

/// Sort by each `sort` parameter (`field`, `field:asc`, `field:desc`), first one first.
fn sort(req: &Request, items: &mut [Value], allowed: &[&str]) -> Result<(), ApiError> {
    let mut keys = Vec::new();
    for s in req.params("sort") {
        let (field, desc) = match s.split_once(':') {
            Some((f, "asc")) => (f, false),
            Some((f, "desc")) => (f, true),
            None => (s, false),
            Some(_) => {
                return Err(ApiError::invalid_input(
                    "sort",
                    &format!("invalid sort '{s}'"),
                ));
            }
        };
        if !allowed.contains(&field) {
            return Err(ApiError::invalid_input(
                "sort",
                &format!("invalid sort field '{field}'"),
            ));
        }
        keys.push((field.to_string(), desc));
    }
    let cmp = |a: &Value, b: &Value| match (a, b) {
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(std::cmp::Ordering::Equal),
        _ => a.to_string().cmp(&b.to_string()),
    };
    items.sort_by(|a, b| {
        for (field, desc) in &keys {
            let o = cmp(&a[field.as_str()], &b[field.as_str()]);
            let o = if *desc { o.reverse() } else { o };
            if o != std::cmp::Ordering::Equal {
                return o;
            }
        }
        std::cmp::Ordering::Equal
    });
    Ok(())
}

fn missing(field: &str) -> ApiError {
    ApiError::invalid_field(field, &["Missing data for required field."])
}

fn string_field<'a>(b: &'a Map<String, Value>, field: &str) -> Result<Option<&'a str>, ApiError> {
    match b.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ApiError::invalid_field(field, &["Not a valid string."])),
    }
}

fn bool_field(b: &Map<String, Value>, field: &str, default: bool) -> Result<bool, ApiError> {
    match b.get(field) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(v)) => Ok(*v),
        Some(_) => Err(ApiError::invalid_field(field, &["Not a valid boolean."])),
    }
}

// --- SSH keys

fn create_ssh_key(shared: &Arc<Shared>, req: &Request) -> ApiResult {
    let b = body(req)?;
    let name = string_field(&b, "name")?.ok_or_else(|| missing("name"))?;
    if name.trim().is_empty() {
        return Err(ApiError::invalid_field(
            "name",
            &["Name must not be empty."],
        ));
    }
    let public_key = string_field(&b, "public_key")?.ok_or_else(|| missing("public_key"))?;
    let fingerprint = rules::ssh_key_fingerprint(public_key)
        .ok_or_else(|| ApiError::invalid_field("public_key", &["invalid public key"]))?;
    let labels = rules::parse_labels(b.get("labels"))?;
    let mut st = shared.lock_state();
    if st.ssh_keys.values().any(|k| k.name == name) {
        return Err(ApiError::uniqueness(
            "name",
            "SSH key with the same name already exists",
        ));
    }
    if st.ssh_keys.values().any(|k| k.fingerprint == fingerprint) {
        return Err(ApiError::uniqueness(
            "public_key",
            "SSH key with the same fingerprint already exists",
        ));
    }
    let id = st.id();
    let key = SshKey {
        id,
        name: name.to_string(),
        public_key: public_key.trim().to_string(),
        fingerprint,
        labels,
        created: SystemTime::now(),
    };
    let v = key.json();
    st.ssh_keys.insert(id, key);
    Ok(Reply::Json(201, json!({"ssh_key": v})))
}

fn list_ssh_keys(shared: &Arc<Shared>, req: &Request) -> ApiResult {
    let sel = selector(req)?;
    let (name, fp) = (req.param("name"), req.param("fingerprint"));
    let st = shared.lock_state();
    let mut items: Vec<Value> = st
        .ssh_keys
        .values()
        .filter(|k| name.is_none_or(|n| n == k.name))
        .filter(|k| fp.is_none_or(|f| f == k.fingerprint))
        .filter(|k| sel.as_ref().is_none_or(|s| s.matches(&k.labels)))
        .map(SshKey::json)
        .collect();
    sort(req, &mut items, &["id", "name"])?;
    list(req, "ssh_keys", items)
}

/// An SSH key by id or name (`ssh_keys` of a create or `enable_rescue`).
fn find_ssh_key<'a>(st: &'a State, v: &Value) -> Option<&'a SshKey> {
    match v {
        Value::Number(n) => n.as_u64().and_then(|id| st.ssh_keys.get(&id)),
        Value::String(s) => st
            .ssh_keys
            .values()
            .find(|k| k.name == *s)
            .or_else(|| s.parse::<u64>().ok().and_then(|id| st.ssh_keys.get(&id))),
        _ => None,
    }
}

fn ssh_keys_field(st: &State, b: &Map<String, Value>) -> Result<Vec<String>, ApiError> {
    match b.get("ssh_keys") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                find_ssh_key(st, v)
                    .map(|k| k.public_key.clone())
                    .ok_or_else(|| {
                        ApiError::invalid_input("ssh_keys", &format!("ssh key {v} not found"))
                    })
            })
            .collect(),
        Some(_) => Err(ApiError::invalid_field("ssh_keys", &["Not a valid list."])),
    }
}

// --- servers

/// The image a create names: an id, or a name, which resolves to the x86 image of that name.
fn find_image<'a>(st: &'a State, v: &Value) -> Option<&'a Image> {
    let by_id = |id: u64| st.images.get(&id);
    match v {
        Value::Number(n) => n.as_u64().and_then(by_id),
        Value::String(s) => st
            .images
            .values()
            .find(|i| i.name.as_deref() == Some(s) && i.architecture == "x86")
            .or_else(|| st.images.values().find(|i| i.name.as_deref() == Some(s)))
            .or_else(|| s.parse::<u64>().ok().and_then(by_id)),
        _ => None,
    }
}

fn create_server(shared: &Arc<Shared>, req: &Request) -> ApiResult {
    let b = body(req)?;
    let name = string_field(&b, "name")?.ok_or_else(|| missing("name"))?;
    if !rules::valid_hostname(name) {
        return Err(ApiError::invalid_field(
            "name",
            &["Name must be a valid hostname."],
        ));
    }
    let labels = rules::parse_labels(b.get("labels"))?;
    if b.get("datacenter").is_some_and(|v| !v.is_null()) {
        return Err(ApiError::invalid_input(
            "datacenter",
            "datacenters were removed, use location",
        ));
    }
    let user_data = string_field(&b, "user_data")?.map(str::to_string);
    if user_data.as_ref().is_some_and(|u| u.len() > 32 * 1024) {
        return Err(ApiError::invalid_field(
            "user_data",
            &["Longer than maximum length 32768."],
        ));
    }
    let start_after_create = bool_field(&b, "start_after_create", true)?;
    let public_net = match b.get("public_net") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => {
            return Err(ApiError::invalid_field(
                "public_net",
                &["Not a valid object."],
            ));
        }
    };
    let enable_ipv4 = bool_field(&public_net, "enable_ipv4", true)?;
    let enable_ipv6 = bool_field(&public_net, "enable_ipv6", true)?;
    for field in ["networks", "volumes"] {
        if b.get(field)
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty())
        {
            return Err(ApiError::invalid_input(
                field,
                &format!("{field}: not found (the project has none)"),
            ));
        }
    }

    let mut st = shared.lock_state();
    let type_value = b
        .get("server_type")
        .filter(|v| !v.is_null())
        .ok_or_else(|| missing("server_type"))?;
    let stype = st
        .server_type_by_id_or_name(type_value)
        .cloned()
        .ok_or_else(|| ApiError {
            details: json!({"fields": [{"name": "server_type", "messages": ["not found"]}]}),
            ..ApiError::new("invalid_input", "server type not found")
        })?;
    let location = match b.get("location") {
        None | Some(Value::Null) => stype
            .offers
            .iter()
            .find(|o| o.available)
            .map(|o| o.location.to_string())
            .ok_or_else(|| ApiError::new("resource_unavailable", "error during placement"))?,
        Some(v) => {
            let found = match v {
                Value::String(s) => st
                    .locations
                    .iter()
                    .find(|l| l.name == s || l.id.to_string() == *s),
                Value::Number(n) => st.locations.iter().find(|l| Some(l.id) == n.as_u64()),
                _ => None,
            };
            let shown = v
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| v.to_string());
            found.map(|l| l.name.to_string()).ok_or_else(|| {
                ApiError::invalid_input("location", &format!("location '{shown}' not found"))
            })?
        }
    };
    let image_value = b
        .get("image")
        .filter(|v| !v.is_null())
        .ok_or_else(|| missing("image"))?;
    let image = find_image(&st, image_value)
        .cloned()
        .ok_or_else(|| ApiError::invalid_input("image", "image not found"))?;
    if image.status != "available" {
        return Err(ApiError::invalid_input("image", "image is not available"));
    }
    let offer = stype.offer(&location).ok_or_else(|| {
        ApiError::invalid_input("server_type", "unsupported location for server type")
    })?;
    if !offer.available {
        return Err(ApiError::new(
            "resource_unavailable",
            "error during placement",
        ));
    }
    if image.architecture != stype.architecture {
        return Err(ApiError::invalid_input(
            "image",
            "image has incompatible architecture",
        ));
    }
    if image.disk_size > stype.disk_gb as f64 {
        return Err(ApiError::invalid_input(
            "server_type",
            "server type disk is smaller than the image disk",
        ));
    }
    let ssh_keys = ssh_keys_field(&st, &b)?;
    let mut firewalls = Vec::new();
    if let Some(fws) = b.get("firewalls").and_then(Value::as_array) {
        for f in fws {
            let id = f.get("firewall").and_then(Value::as_u64);
            match id.filter(|id| st.firewalls.contains_key(id)) {
                Some(id) => firewalls.push(id),
                None => {
                    return Err(ApiError::invalid_input(
                        "firewalls",
                        &format!("firewall {f} not found"),
                    ));
                }
            }
        }
    }
    let mut primary_ips = Vec::new();
    for (field, kind, enabled) in [("ipv4", "ipv4", enable_ipv4), ("ipv6", "ipv6", enable_ipv6)] {
        let Some(v) = public_net.get(field).filter(|v| !v.is_null()) else {
            continue;
        };
        let p = v
            .as_u64()
            .and_then(|id| st.primary_ips.get(&id))
            .ok_or_else(|| ApiError::invalid_input(field, "primary ip not found"))?;
        if !enabled {
            continue;
        }
        if p.kind != kind {
            return Err(ApiError::new(
                "primary_ip_version_mismatch",
                "The specified Primary IP has the wrong IP Version",
            ));
        }
        if p.assignee_id.is_some() {
            return Err(ApiError::new(
                "primary_ip_assigned",
                "The specified Primary IP is already assigned to a server",
            ));
        }
        if p.location != location {
            return Err(ApiError::new(
                "primary_ip_datacenter_mismatch",
                "The specified Primary IP is in a different location",
            ));
        }
        primary_ips.push((kind, p.id, p.ip.clone()));
    }
    if st.servers.values().any(|s| s.name == name) {
        return Err(ApiError::uniqueness("name", "server name is already used"));
    }

    let id = st.id();
    let spec = MachineSpec {
        id,
        name: name.to_string(),
        hardware: hardware(&stype),
        image: match image.kind {
            "system" => DiskSource::System {
                name: image.name.clone().unwrap_or_default(),
                image_id: image.id,
            },
            _ => DiskSource::Snapshot { image_id: image.id },
        },
        location: location.clone(),
        user_data,
        ssh_keys: ssh_keys.clone(),
        labels: labels.clone(),
        enable_ipv4,
        enable_ipv6,
    };
    let addresses = shared.machines.allocate(&spec).map_err(|e| {
        eprintln!("hcloud-fake-cloud: placing server {id}: {e:#}");
        ApiError::new("placement_error", "error during placement")
    })?;
    let mut ipv4 = None;
    let mut ipv6 = None;
    for (kind, pid, ip) in &primary_ips {
        if let Some(p) = st.primary_ips.get_mut(pid) {
            p.assignee_id = Some(id);
        }
        match *kind {
            "ipv4" => ipv4 = ip.parse().ok().map(|a| (*pid, a)),
            _ => {
                ipv6 = ip
                    .split('/')
                    .next()
                    .and_then(|a| a.parse().ok())
                    .map(|a| (*pid, a))
            }
        }
    }
    if ipv4.is_none() {
        if let Some(a) = addresses.ipv4 {
            ipv4 = Some((st.id(), a));
        }
    }
    if ipv6.is_none() {
        if let Some(a) = addresses.ipv6_net {
            ipv6 = Some((st.id(), a));
        }
    }
    let t = shared.config.action_time;
    let create = st.new_action("create_server", vec![(id, "server")], t, false);
    let start =
        start_after_create.then(|| st.new_action("start_server", vec![(id, "server")], t, true));
    st.servers.insert(
        id,
        Server {
            id,
            name: name.to_string(),
            phase: Phase::Initializing,
            created: SystemTime::now(),
            server_type: stype.name.to_string(),
            location,
            image_id: image.id,
            ipv4,
            ipv6,
            rescue_enabled: false,
            rescue_keys: Vec::new(),
            labels,
            primary_disk_size: stype.disk_gb,
            firewalls,
            busy: Some(create),
        },
    );
    let server_json = st.server_json(
        &st.servers[&id],
        shared.machines.as_ref(),
        shared.config.datacenter_field,
    );
    let mut steps = vec![step(
        &mut st,
        create,
        "create_server",
        Box::new(move |m| {
            m.create(&spec)?;
            Ok(set_phase(
                id,
                if start_after_create {
                    Phase::Starting
                } else {
                    Phase::Settled
                },
            ))
        }),
    )];
    if let Some(start) = start {
        steps.push(step(
            &mut st,
            start,
            "start_server",
            Box::new(move |m| {
                m.power_on(id, &Boot::Disk)?;
                Ok(set_phase(id, Phase::Settled))
            }),
        ));
    }
    let answer = json!({
        "server": server_json,
        "action": st.action_json(create),
        "next_actions": start.map(|s| vec![st.action_json(s)]).unwrap_or_default(),
        "root_password": if ssh_keys.is_empty() { json!(password(id)) } else { Value::Null },
    });
    drop(st);
    spawn_chain(shared.clone(), Some(id), create, steps);
    Ok(Reply::Json(201, answer))
}

fn hardware(t: &crate::catalog::ServerType) -> Hardware {
    Hardware {
        server_type: t.name.to_string(),
        cores: t.cores,
        memory_gb: t.memory_gb,
        disk_gb: t.disk_gb,
        architecture: t.architecture.to_string(),
    }
}

/// A root password as the API would return it (not a secret here).
fn password(seed: u64) -> String {
    let alphabet = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0),
    );
    (0..20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            alphabet[(x % alphabet.len() as u64) as usize] as char
        })
        .collect()
}

fn set_phase(id: u64, phase: Phase) -> Effect {
    Box::new(move |st: &mut State| {
        if let Some(s) = st.servers.get_mut(&id) {
            if s.phase != Phase::Deleting {
                s.phase = phase;
            }
        }
    })
}

/// A chain step, with the failure a test injected for `command`.
fn step(st: &mut State, action: u64, command: &str, job: Job) -> Step {
    let mut s = Step::new(action, job);
    s.failure = st.take_failure(command);
    s
}

fn list_servers(shared: &Arc<Shared>, req: &Request) -> ApiResult {
    let sel = selector(req)?;
    let statuses = status_filter(
        req,
        &[
            "initializing",
            "starting",
            "running",
            "stopping",
            "off",
            "deleting",
            "migrating",
            "rebuilding",
            "unknown",
        ],
    )?;
    let name = req.param("name");
    let st = shared.lock_state();
    let mut items: Vec<Value> = st
        .servers
        .values()
        .filter(|s| name.is_none_or(|n| n == s.name))
        .filter(|s| sel.as_ref().is_none_or(|x| x.matches(&s.labels)))
        .map(|s| st.server_json(s, shared.machines.as_ref(), shared.config.datacenter_field))
        .filter(|v| statuses.is_empty() || statuses.iter().any(|x| v["status"] == *x))
        .collect();
    sort(req, &mut items, &["id", "name", "created"])?;
    list(req, "servers", items)
}

fn delete_server(shared: &Arc<Shared>, id: u64) -> ApiResult {
    let mut st = shared.lock_state();
    let s = st
        .servers
        .get_mut(&id)
        .ok_or_else(|| ApiError::not_found("server"))?;
    if s.phase == Phase::Deleting {
        return Err(ApiError::locked());
    }
    s.phase = Phase::Deleting;
    let action = st.new_action(
        "delete_server",
        vec![(id, "server")],
        shared.config.action_time,
        false,
    );
    let steps = vec![step(
        &mut st,
        action,
        "delete_server",
        Box::new(move |m| {
            m.delete(id)?;
            Ok(Box::new(move |st: &mut State| {
                st.servers.remove(&id);
                for p in st.primary_ips.values_mut() {
                    if p.assignee_id == Some(id) {
                        p.assignee_id = None;
                    }
                }
            }) as Effect)
        }),
    )];
    let answer = json!({"action": st.action_json(action)});
    drop(st);
    spawn_chain(shared.clone(), None, action, steps);
    Ok(Reply::Json(200, answer))
}

fn server_action(shared: &Arc<Shared>, req: &Request, id: u64, command: &str) -> ApiResult {
    let b = body(req)?;
    let mut st = shared.lock_state();
    let server = st
        .servers
        .get(&id)
        .cloned()
        .ok_or_else(|| ApiError::not_found("server"))?;
    let known = [
        "enable_rescue",
        "disable_rescue",
        "reset",
        "poweron",
        "poweroff",
        "shutdown",
        "change_type",
        "create_image",
    ];
    if !known.contains(&command) {
        return Err(ApiError::not_found("action"));
    }
    if server.busy.is_some() || server.phase == Phase::Deleting {
        return Err(ApiError::locked());
    }
    let t = shared.config.action_time;
    let res = vec![(id, "server")];
    // The boot that a reset or power-on starts: rescue once after enable_rescue.
    let boot = if server.rescue_enabled {
        Boot::Rescue {
            ssh_keys: server.rescue_keys.clone(),
        }
    } else {
        Boot::Disk
    };
    let consume_rescue = move |st: &mut State| {
        if let Some(s) = st.servers.get_mut(&id) {
            s.rescue_enabled = false;
            s.rescue_keys.clear();
        }
    };
    let mut extra = Map::new();
    let (action, job): (u64, Job) = match command {
        "enable_rescue" => {
            let kind = string_field(&b, "type")?.unwrap_or("linux64");
            if kind != "linux64" {
                return Err(ApiError::invalid_field(
                    "type",
                    &["Must be one of: linux64."],
                ));
            }
            let keys = ssh_keys_field(&st, &b)?;
            let a = st.new_action("enable_rescue", res, t, false);
            extra.insert("root_password".into(), json!(password(a)));
            (
                a,
                effect_only(move |st| {
                    if let Some(s) = st.servers.get_mut(&id) {
                        s.rescue_enabled = true;
                        s.rescue_keys = keys;
                    }
                }),
            )
        }
        "disable_rescue" => {
            let a = st.new_action("disable_rescue", res, t, false);
            (a, effect_only(consume_rescue))
        }
        "reset" | "poweron" => {
            let a = st.new_action(
                if command == "reset" {
                    "reset_server"
                } else {
                    "start_server"
                },
                res,
                t,
                false,
            );
            let reset = command == "reset";
            (
                a,
                Box::new(move |m| {
                    if reset {
                        m.reset(id, &boot)?;
                    } else if !m.is_running(id) {
                        m.power_on(id, &boot)?;
                    } else {
                        return Ok(Box::new(|_: &mut State| {}) as Effect);
                    }
                    Ok(Box::new(consume_rescue) as Effect)
                }),
            )
        }
        "shutdown" => {
            let a = st.new_action("shutdown_server", res, t, false);
            (
                a,
                Box::new(move |m| {
                    m.shutdown(id)?;
                    Ok(Box::new(|_: &mut State| {}) as Effect)
                }),
            )
        }
        "poweroff" => {
            let a = st.new_action("stop_server", res, t, false);
            (
                a,
                Box::new(move |m| {
                    m.power_off(id)?;
                    Ok(Box::new(|_: &mut State| {}) as Effect)
                }),
            )
        }
        "change_type" => {
            let v = b
                .get("server_type")
                .filter(|v| !v.is_null())
                .ok_or_else(|| missing("server_type"))?;
            let upgrade_disk = match b.get("upgrade_disk") {
                Some(Value::Bool(u)) => *u,
                None | Some(Value::Null) => return Err(missing("upgrade_disk")),
                Some(_) => {
                    return Err(ApiError::invalid_field(
                        "upgrade_disk",
                        &["Not a valid boolean."],
                    ));
                }
            };
            let new = st
                .server_type_by_id_or_name(v)
                .cloned()
                .ok_or_else(|| ApiError::invalid_input("server_type", "server type not found"))?;
            if shared.machines.is_running(id) {
                return Err(ApiError::new(
                    "server_not_stopped",
                    "The action requires a stopped server",
                ));
            }
            let old = st.server_type(&server.server_type).cloned();
            let fits = old
                .as_ref()
                .is_none_or(|o| o.architecture == new.architecture)
                && new.disk_gb >= server.primary_disk_size
                && new.offer(&server.location).is_some();
            if !fits {
                return Err(ApiError::new(
                    "invalid_server_type",
                    "The server type does not fit for the given server or is deprecated",
                ));
            }
            let a = st.new_action("change_server_type", res, t, false);
            let hw = hardware(&new);
            (
                a,
                Box::new(move |m| {
                    m.change_type(id, &hw, upgrade_disk)?;
                    Ok(Box::new(move |st: &mut State| {
                        if let Some(s) = st.servers.get_mut(&id) {
                            s.server_type = hw.server_type.clone();
                            if upgrade_disk {
                                s.primary_disk_size = hw.disk_gb;
                            }
                        }
                    }) as Effect)
                }),
            )
        }
        _ => {
            // create_image
            let kind = string_field(&b, "type")?.unwrap_or("snapshot");
            if kind != "snapshot" && kind != "backup" {
                return Err(ApiError::invalid_field(
                    "type",
                    &["Must be one of: snapshot, backup."],
                ));
            }
            let labels = rules::parse_labels(b.get("labels"))?;
            let description = string_field(&b, "description")?
                .map(str::to_string)
                .unwrap_or_else(|| {
                    format!(
                        "{}-{}",
                        server.name,
                        crate::clock::rfc3339(SystemTime::now())
                    )
                });
            let image_id = st.id();
            let source = st
                .images
                .get(&server.image_id)
                .map(|i| i.os_flavor.clone())
                .unwrap_or_else(|| "unknown".into());
            let arch = st
                .server_type(&server.server_type)
                .map(|t| t.architecture)
                .unwrap_or("x86");
            st.images.insert(
                image_id,
                Image {
                    id: image_id,
                    kind: if kind == "backup" {
                        "backup"
                    } else {
                        "snapshot"
                    },
                    status: "creating",
                    name: None,
                    description,
                    architecture: arch,
                    os_flavor: source,
                    os_version: None,
                    disk_size: server.primary_disk_size as f64,
                    image_size: None,
                    created_from: Some((id, server.name.clone())),
                    labels,
                    created: SystemTime::now(),
                },
            );
            let a = st.new_action(
                "create_image",
                vec![(id, "server"), (image_id, "image")],
                shared.config.snapshot_time,
                false,
            );
            extra.insert("image".into(), st.images[&image_id].json());
            let mut s = step(
                &mut st,
                a,
                "create_image",
                Box::new(move |m| {
                    let info = m.snapshot(id, image_id)?;
                    Ok(Box::new(move |st: &mut State| {
                        if let Some(i) = st.images.get_mut(&image_id) {
                            i.status = "available";
                            i.image_size = Some(info.image_size_gb);
                        }
                    }) as Effect)
                }),
            );
            s.undo = Some(Box::new(move |st: &mut State| {
                st.images.remove(&image_id);
            }));
            return finish_action(shared, st, id, a, s, extra);
        }
    };
    let command = command_name(&st, action);
    let s = step(&mut st, action, command, job);
    finish_action(shared, st, id, action, s, extra)
}

fn command_name(st: &State, action: u64) -> &'static str {
    st.actions.get(&action).map(|a| a.command).unwrap_or("")
}

/// Lock the server for `action`, answer 201 with the action (and `extra`), run the step.
fn finish_action(
    shared: &Arc<Shared>,
    mut st: std::sync::MutexGuard<'_, State>,
    id: u64,
    action: u64,
    step: Step,
    extra: Map<String, Value>,
) -> ApiResult {
    if let Some(s) = st.servers.get_mut(&id) {
        s.busy = Some(action);
    }
    let mut answer = Map::new();
    answer.insert("action".into(), st.action_json(action));
    answer.extend(extra);
    drop(st);
    spawn_chain(shared.clone(), Some(id), action, vec![step]);
    Ok(Reply::Json(201, Value::Object(answer)))
}

// --- actions and images

fn list_actions(shared: &Arc<Shared>, req: &Request) -> ApiResult {
    let ids = req.params("id");
    if ids.is_empty() {
        return Err(ApiError::invalid_input("id", "at least one id is required"));
    }
    let ids: Vec<u64> = ids
        .iter()
        .map(|v| {
            v.parse()
                .map_err(|_| ApiError::invalid_input("id", &format!("invalid id '{v}'")))
        })
        .collect::<Result<_, _>>()?;
    let statuses = status_filter(req, &["running", "success", "error"])?;
    let st = shared.lock_state();
    let mut items: Vec<Value> = ids
        .iter()
        .filter_map(|id| st.actions.get(id))
        .map(|a| a.json())
        .filter(|v| statuses.is_empty() || statuses.iter().any(|s| v["status"] == *s))
        .collect();
    sort(
        req,
        &mut items,
        &["id", "command", "status", "started", "finished"],
    )?;
    list(req, "actions", items)
}

fn list_images(shared: &Arc<Shared>, req: &Request) -> ApiResult {
    let sel = selector(req)?;
    let types = req.params("type");
    if let Some(bad) = types
        .iter()
        .find(|t| !["system", "snapshot", "backup", "app"].contains(t))
    {
        return Err(ApiError::invalid_input(
            "type",
            &format!("invalid type '{bad}'"),
        ));
    }
    let statuses = status_filter(req, &["available", "creating", "unavailable"])?;
    let archs = req.params("architecture");
    if let Some(bad) = archs.iter().find(|a| !["x86", "arm"].contains(a)) {
        return Err(ApiError::invalid_input(
            "architecture",
            &format!("invalid architecture '{bad}'"),
        ));
    }
    let name = req.param("name");
    let st = shared.lock_state();
    let mut items: Vec<Value> = st
        .images
        .values()
        .filter(|i| types.is_empty() || types.contains(&i.kind))
        .filter(|i| statuses.is_empty() || statuses.contains(&i.status))
        .filter(|i| archs.is_empty() || archs.contains(&i.architecture))
        .filter(|i| name.is_none_or(|n| i.name.as_deref() == Some(n)))
        .filter(|i| sel.as_ref().is_none_or(|s| s.matches(&i.labels)))
        .map(Image::json)
        .collect();
    sort(req, &mut items, &["id", "name", "created", "description"])?;
    list(req, "images", items)
}

fn delete_image(shared: &Arc<Shared>, id: u64) -> ApiResult {
    let mut st = shared.lock_state();
    let image = st
        .images
        .get(&id)
        .ok_or_else(|| ApiError::not_found("image"))?;
    if image.kind == "system" {
        return Err(ApiError::new(
            "forbidden",
            "system images cannot be deleted",
        ));
    }
    if image.status == "creating" {
        return Err(ApiError::locked());
    }
    shared.machines.delete_image(id).map_err(|e| {
        eprintln!("hcloud-fake-cloud: deleting image {id}: {e:#}");
        ApiError::new("server_error", "image could not be deleted")
    })?;
    st.images.remove(&id);
    Ok(Reply::NoContent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_means_the_x86_image() {
        let st = State::new();
        let i = find_image(&st, &json!("debian-13")).unwrap();
        assert_eq!(i.architecture, "x86");
        let arm = st
            .images
            .values()
            .find(|i| i.name.as_deref() == Some("debian-13") && i.architecture == "arm")
            .unwrap();
        assert_eq!(find_image(&st, &json!(arm.id)).unwrap().id, arm.id);
        assert!(find_image(&st, &json!("debian-99")).is_none());
    }
}
