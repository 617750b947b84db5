//! The few Hetzner Cloud API calls `hcloud-image` makes itself, as packer-plugin-hcloud makes
//! them: the server type with its per-location availability and architecture (the check before
//! a build), snapshots, servers and SSH keys by label selector (what a failed or interrupted build
//! left behind), and deleting servers and keys. Blocking, over `ureq`; the base URL is
//! `HCLOUD_ENDPOINT` (default [`DEFAULT_ENDPOINT`]) and the token `HCLOUD_TOKEN`, as for packer.
//! Datacenters are never asked for: that endpoint is gone since 2026-10-01; server types carry
//! their locations instead.

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use serde_json::Value;
use std::fmt;
use std::time::Duration;

use crate::dist::Arch;

pub const DEFAULT_ENDPOINT: &str = "https://api.hetzner.cloud/v1";
/// The page size the plugin asks for (and the API's maximum).
pub const DEFAULT_PER_PAGE: usize = 50;
/// A safety stop for a server that keeps naming a next page.
const MAX_PAGES: usize = 1000;

/// An error answer of the API: `{"error": {"code", "message", "details"}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub code: String,
    pub message: String,
    /// `X-Correlation-Id`, which Hetzner's support asks for.
    pub correlation_id: Option<String>,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}, HTTP {}", self.message, self.code, self.status)?;
        if let Some(id) = &self.correlation_id {
            write!(f, ", correlation id {id}")?;
        }
        f.write_str(")")
    }
}

impl std::error::Error for ApiError {}

/// The API's answer to a failed request, from its status and body.
pub fn parse_error(status: u16, body: &str, correlation_id: Option<String>) -> ApiError {
    #[derive(Deserialize)]
    struct Envelope {
        error: Inner,
    }
    #[derive(Deserialize)]
    struct Inner {
        code: String,
        message: String,
    }
    match serde_json::from_str::<Envelope>(body) {
        Ok(e) => ApiError {
            status,
            code: e.error.code,
            message: e.error.message,
            correlation_id,
        },
        Err(_) => ApiError {
            status,
            code: "unknown".into(),
            message: format!(
                "the API answered without an error object: {:?}",
                body.chars().take(200).collect::<String>()
            ),
            correlation_id,
        },
    }
}

/// Hetzner's name for an architecture (`x86`, `arm`).
pub fn api_arch(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "x86",
        Arch::Aarch64 => "arm",
    }
}

/// A label value as Hetzner accepts it (empty, or 1–63 alphanumerics with `-_.` inside). Build
/// ids go into label selectors, so anything else (a comma, `!`, spaces) is refused here rather
/// than widening the selector.
pub fn check_label_value(what: &str, v: &str) -> Result<()> {
    let ok = !v.is_empty()
        && v.len() <= 63
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && v.starts_with(|c: char| c.is_ascii_alphanumeric())
        && v.ends_with(|c: char| c.is_ascii_alphanumeric());
    if !ok {
        bail!(
            "invalid {what} {v:?}: a label value of 1-63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
        );
    }
    Ok(())
}

/// A server type's offer in one location (`server_type.locations[]`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct TypeLocation {
    pub name: String,
    #[serde(default)]
    pub available: bool,
    #[serde(default)]
    pub deprecation: Option<Value>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct ServerType {
    pub id: u64,
    pub name: String,
    /// `x86` or `arm`.
    pub architecture: String,
    #[serde(default)]
    pub disk: u64,
    #[serde(default)]
    pub locations: Vec<TypeLocation>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Image {
    pub id: u64,
    #[serde(rename = "type")]
    pub kind: String,
    pub status: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub created: Option<String>,
    #[serde(default)]
    pub architecture: Option<String>,
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Server {
    pub id: u64,
    pub name: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct SshKey {
    pub id: u64,
    pub name: String,
    #[serde(default)]
    pub created: Option<String>,
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
}

/// A blocking client of the Cloud API.
pub struct Client {
    agent: ureq::Agent,
    endpoint: String,
    token: String,
    per_page: usize,
}

impl Client {
    /// A client of `endpoint` (e.g. `https://api.hetzner.cloud/v1`) with `token`.
    pub fn new(endpoint: &str, token: &str) -> Result<Client> {
        let token = token.trim();
        if token.is_empty() {
            bail!(
                "HCLOUD_TOKEN is not set: create an API token in the Hetzner Cloud console and export HCLOUD_TOKEN"
            );
        }
        // As hcloud-go v2: a token that cannot be a header value is refused before sending.
        if !token.chars().all(|c| c.is_ascii_graphic()) {
            bail!("the API token contains invalid characters");
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(60)))
            .http_status_as_error(false)
            .user_agent(concat!("hcloud-image/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Ok(Client {
            agent,
            endpoint: endpoint.trim_end_matches('/').to_string(),
            token: token.to_string(),
            per_page: DEFAULT_PER_PAGE,
        })
    }

    /// `HCLOUD_ENDPOINT` (default [`DEFAULT_ENDPOINT`]) and `HCLOUD_TOKEN`.
    pub fn from_env() -> Result<Client> {
        let endpoint = std::env::var("HCLOUD_ENDPOINT")
            .ok()
            .filter(|e| !e.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string());
        let token = std::env::var("HCLOUD_TOKEN").unwrap_or_default();
        Client::new(&endpoint, &token)
    }

    /// Ask for `n` entries per page of a list (1–50).
    pub fn with_per_page(mut self, n: usize) -> Client {
        self.per_page = n.clamp(1, 50);
        self
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.endpoint)
    }

    /// The JSON of a successful answer, or the API's error.
    fn answer(
        &self,
        what: &str,
        resp: std::result::Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Option<Value>> {
        let mut resp = resp.with_context(|| format!("{what}: no answer from {}", self.endpoint))?;
        let status = resp.status().as_u16();
        let correlation_id = resp
            .headers()
            .get("x-correlation-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = resp
            .body_mut()
            .read_to_string()
            .with_context(|| format!("{what}: reading the answer"))?;
        if !(200..300).contains(&status) {
            return Err(
                anyhow::Error::new(parse_error(status, &body, correlation_id))
                    .context(what.to_string()),
            );
        }
        if body.trim().is_empty() {
            return Ok(None);
        }
        let json = serde_json::from_str(&body)
            .with_context(|| format!("{what}: the answer is not JSON"))?;
        Ok(Some(json))
    }

    fn get(&self, what: &str, path: &str, query: &[(&str, String)]) -> Result<Value> {
        let resp = self
            .agent
            .get(self.url(path))
            .header("Authorization", format!("Bearer {}", self.token))
            .query_pairs(query.iter().map(|(k, v)| (*k, v.as_str())))
            .call();
        self.answer(what, resp)?
            .with_context(|| format!("{what}: the answer is empty"))
    }

    fn delete(&self, what: &str, path: &str) -> Result<()> {
        let resp = self
            .agent
            .delete(self.url(path))
            .header("Authorization", format!("Bearer {}", self.token))
            .call();
        self.answer(what, resp)?;
        Ok(())
    }

    /// Every entry of the list `path` answers under `key`, following
    /// `meta.pagination.next_page` until it is null or 0.
    fn list<T: serde::de::DeserializeOwned>(
        &self,
        what: &str,
        path: &str,
        key: &str,
        query: &[(&str, String)],
    ) -> Result<Vec<T>> {
        let mut out = Vec::new();
        let mut page = 1u64;
        for _ in 0..MAX_PAGES {
            let mut q = query.to_vec();
            q.push(("page", page.to_string()));
            q.push(("per_page", self.per_page.to_string()));
            let json = self.get(what, path, &q)?;
            let items = json
                .get(key)
                .and_then(Value::as_array)
                .with_context(|| format!("{what}: the answer has no {key} list"))?;
            for item in items {
                out.push(
                    serde_json::from_value(item.clone())
                        .with_context(|| format!("{what}: reading an entry of {key}"))?,
                );
            }
            match json["meta"]["pagination"]["next_page"].as_u64() {
                Some(n) if n > page => page = n,
                _ => return Ok(out),
            }
        }
        bail!("{what}: more than {MAX_PAGES} pages")
    }

    /// The server type `name`, with its locations; `None` if the project has no such type.
    pub fn server_type(&self, name: &str) -> Result<Option<ServerType>> {
        let what = format!("looking up server type {name}");
        let types: Vec<ServerType> = self.list(
            &what,
            "/server_types",
            "server_types",
            &[("name", name.into())],
        )?;
        Ok(types.into_iter().find(|t| t.name == name))
    }

    /// Whether a location of that name exists.
    pub fn location_exists(&self, name: &str) -> Result<bool> {
        #[derive(Deserialize)]
        struct Location {
            name: String,
        }
        let what = format!("looking up location {name}");
        let locs: Vec<Location> =
            self.list(&what, "/locations", "locations", &[("name", name.into())])?;
        Ok(locs.iter().any(|l| l.name == name))
    }

    /// The snapshots matching `label_selector`, whatever their status.
    pub fn snapshots(&self, label_selector: &str) -> Result<Vec<Image>> {
        self.list(
            &format!("listing snapshots with {label_selector}"),
            "/images",
            "images",
            &[
                ("type", "snapshot".into()),
                ("label_selector", label_selector.into()),
            ],
        )
    }

    pub fn servers(&self, label_selector: &str) -> Result<Vec<Server>> {
        self.list(
            &format!("listing servers with {label_selector}"),
            "/servers",
            "servers",
            &[("label_selector", label_selector.into())],
        )
    }

    /// The SSH keys matching `label_selector`, or all of them.
    pub fn ssh_keys(&self, label_selector: Option<&str>) -> Result<Vec<SshKey>> {
        let query: Vec<(&str, String)> = label_selector
            .map(|s| vec![("label_selector", s.to_string())])
            .unwrap_or_default();
        self.list(
            &format!(
                "listing SSH keys{}",
                label_selector
                    .map(|s| format!(" with {s}"))
                    .unwrap_or_default()
            ),
            "/ssh_keys",
            "ssh_keys",
            &query,
        )
    }

    /// Delete a server (its `delete_server` action runs on without being awaited, as packer does).
    pub fn delete_server(&self, id: u64) -> Result<()> {
        self.delete(&format!("deleting server {id}"), &format!("/servers/{id}"))
    }

    pub fn delete_ssh_key(&self, id: u64) -> Result<()> {
        self.delete(
            &format!("deleting SSH key {id}"),
            &format!("/ssh_keys/{id}"),
        )
    }
}

/// Why `server_type` cannot build in `location` for `arch`, or `Ok`. Pure: the check of
/// [`preflight`] on an answer already fetched.
pub fn check_server_type(st: &ServerType, location: &str, arch: Arch) -> Result<()> {
    let want = api_arch(arch);
    if st.architecture != want {
        bail!(
            "server type {} is {} ({}), not {} ({want}): pick a {} type",
            st.name,
            st.architecture,
            arch_name(&st.architecture),
            arch.name(),
            match arch {
                Arch::X86_64 => "cx*, cpx* or ccx*",
                Arch::Aarch64 => "cax*",
            }
        );
    }
    let available: Vec<&str> = st
        .locations
        .iter()
        .filter(|l| l.available)
        .map(|l| l.name.as_str())
        .collect();
    let elsewhere = if available.is_empty() {
        "it is available in no location now".to_string()
    } else {
        format!("it is available in {}", available.join(", "))
    };
    match st.locations.iter().find(|l| l.name == location) {
        None => bail!(
            "server type {} is not offered in {location}; {elsewhere}",
            st.name
        ),
        Some(l) if !l.available => bail!(
            "server type {} is offered in {location} but not available there now (no capacity); {elsewhere}",
            st.name
        ),
        Some(_) => Ok(()),
    }
}

fn arch_name(api: &str) -> &str {
    match api {
        "x86" => "x86_64",
        "arm" => "aarch64",
        other => other,
    }
}

/// Before a build: the server type exists, is offered and available in `location`, and is of
/// `arch`. Returns the type as the API describes it.
pub fn preflight(
    client: &Client,
    server_type: &str,
    location: &str,
    arch: Arch,
) -> Result<ServerType> {
    let Some(st) = client.server_type(server_type)? else {
        bail!("server type {server_type} does not exist (the API knows no type of that name)");
    };
    if !st.locations.iter().any(|l| l.name == location) && !client.location_exists(location)? {
        bail!("location {location} does not exist");
    }
    check_server_type(&st, location, arch)?;
    Ok(st)
}

/// The snapshots of build `build_id` (label `build-id`, as the templates set it), whatever
/// packer reported: a snapshot can exist although the build failed (packer-plugin-hcloud#400).
pub fn find_snapshots(client: &Client, build_id: &str) -> Result<Vec<Image>> {
    check_label_value("build id", build_id)?;
    client.snapshots(&format!("build-id={build_id}"))
}

/// Whether `name` is the name packer gives its temporary key: `packer-` and a UUID
/// (8-4-4-4-12 hex digits).
pub fn is_packer_key_name(name: &str) -> bool {
    let Some(uuid) = name.strip_prefix("packer-") else {
        return false;
    };
    let groups: Vec<&str> = uuid.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.chars().all(|c| c.is_ascii_hexdigit()))
}

/// What [`cleanup`] removed (or, dry, would remove) and what it left alone.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Cleanup {
    pub servers: Vec<Server>,
    pub ssh_keys: Vec<SshKey>,
    /// Keys named as packer names its temporary keys, without a build label: not tied to this
    /// build, so kept unless asked for.
    pub unlabelled_packer_keys: Vec<SshKey>,
}

/// Delete what build `build_id` left behind: servers labelled `packer-build-id=<id>` (the
/// templates' `server_labels`), SSH keys with that label, and with `packer_keys` also the
/// unlabelled keys named `packer-<uuid>`. With `dry_run` nothing is deleted.
pub fn cleanup(
    client: &Client,
    build_id: &str,
    packer_keys: bool,
    dry_run: bool,
) -> Result<Cleanup> {
    check_label_value("build id", build_id)?;
    let selector = format!("packer-build-id={build_id}");
    let servers = client.servers(&selector)?;
    let mut ssh_keys = client.ssh_keys(Some(&selector))?;
    let mut unlabelled: Vec<SshKey> = client
        .ssh_keys(None)?
        .into_iter()
        .filter(|k| k.labels.is_empty() && is_packer_key_name(&k.name))
        .collect();
    if packer_keys {
        ssh_keys.append(&mut unlabelled);
    }
    if !dry_run {
        for s in &servers {
            client.delete_server(s.id)?;
        }
        for k in &ssh_keys {
            client.delete_ssh_key(k.id)?;
        }
    }
    Ok(Cleanup {
        servers,
        ssh_keys,
        unlabelled_packer_keys: unlabelled,
    })
}

/// One line per snapshot: id, status, architecture, created, description.
pub fn snapshot_table(snaps: &[Image]) -> String {
    let mut out = String::new();
    for s in snaps {
        out.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\n",
            s.id,
            s.status,
            s.architecture.as_deref().unwrap_or("-"),
            s.created.as_deref().unwrap_or("-"),
            s.description.as_deref().unwrap_or("-"),
        ));
    }
    out
}

/// What `cleanup` prints.
pub fn cleanup_report(c: &Cleanup, dry_run: bool) -> String {
    let verb = if dry_run { "would delete" } else { "deleted" };
    let mut out = String::new();
    for s in &c.servers {
        out.push_str(&format!("{verb} server {} ({})\n", s.id, s.name));
    }
    for k in &c.ssh_keys {
        out.push_str(&format!("{verb} SSH key {} ({})\n", k.id, k.name));
    }
    for k in &c.unlabelled_packer_keys {
        if !c.ssh_keys.iter().any(|d| d.id == k.id) {
            out.push_str(&format!(
                "kept SSH key {} ({}): named as packer's temporary keys but not labelled with a build; --packer-keys deletes it\n",
                k.id, k.name
            ));
        }
    }
    if c.servers.is_empty() && c.ssh_keys.is_empty() {
        out.push_str("nothing to delete\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_answers_name_code_and_message() {
        let e = parse_error(
            401,
            r#"{"error":{"code":"unauthorized","message":"unable to authenticate","details":null}}"#,
            Some("abc".into()),
        );
        assert_eq!(
            e.to_string(),
            "unable to authenticate (unauthorized, HTTP 401, correlation id abc)"
        );
        let e = parse_error(502, "<html>bad gateway</html>", None);
        assert_eq!(e.code, "unknown");
        assert!(e.to_string().contains("HTTP 502"), "{e}");
    }

    #[test]
    fn packer_key_names_are_recognised_exactly() {
        assert!(is_packer_key_name(
            "packer-5f7c1a2b-0c3d-4e5f-8a9b-0123456789ab"
        ));
        assert!(!is_packer_key_name("packer-laptop"));
        assert!(!is_packer_key_name("alice@laptop"));
        assert!(!is_packer_key_name(
            "packer-5f7c1a2b-0c3d-4e5f-8a9b-0123456789ab-x"
        ));
        assert!(!is_packer_key_name(
            "packer-5f7c1a2g-0c3d-4e5f-8a9b-0123456789ab"
        ));
    }

    #[test]
    fn build_ids_that_would_widen_a_selector_are_refused() {
        check_label_value("build id", "0b6c8a3e-1f2d-4c5b-9a8e-7d6c5b4a3f21").unwrap();
        for bad in ["", "a,b", "!x", "a b", "-a", "a/b", &"x".repeat(64)] {
            assert!(check_label_value("build id", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn server_type_checks_name_the_problem() {
        let st = ServerType {
            id: 1,
            name: "cx23".into(),
            architecture: "x86".into(),
            disk: 40,
            locations: vec![
                TypeLocation {
                    name: "fsn1".into(),
                    available: false,
                    deprecation: None,
                },
                TypeLocation {
                    name: "nbg1".into(),
                    available: true,
                    deprecation: None,
                },
            ],
        };
        check_server_type(&st, "nbg1", Arch::X86_64).unwrap();
        let e = check_server_type(&st, "fsn1", Arch::X86_64).unwrap_err();
        assert!(
            e.to_string().contains("not available") && e.to_string().contains("nbg1"),
            "{e}"
        );
        let e = check_server_type(&st, "ash", Arch::X86_64).unwrap_err();
        assert!(e.to_string().contains("not offered in ash"), "{e}");
        let e = check_server_type(&st, "nbg1", Arch::Aarch64).unwrap_err();
        assert!(e.to_string().contains("not aarch64"), "{e}");
    }
}
