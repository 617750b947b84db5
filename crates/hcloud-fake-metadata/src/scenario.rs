//! The scenario file: one simulated server at the API level (see `docs/scenario.md`).

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub server: Server,
    #[serde(default)]
    pub options: Options,
    #[serde(default)]
    pub faults: Vec<Fault>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Server {
    pub id: u64,
    pub name: String,
    #[serde(default = "default_region")]
    pub region: String,
    #[serde(default = "default_zone")]
    pub availability_zone: String,
    #[serde(default)]
    pub public_mac: Option<String>,
    #[serde(default)]
    pub public_ipv4: Option<Ipv4Addr>,
    /// The server's /64, e.g. `2001:db8:1:2::/64`; the server uses `::1` in it.
    #[serde(default)]
    pub public_ipv6: Option<String>,
    #[serde(default)]
    pub public_keys: Vec<String>,
    #[serde(default)]
    pub private_networks: Vec<PrivateNet>,
    #[serde(default)]
    pub userdata: Option<String>,
    #[serde(default)]
    pub userdata_base64: Option<String>,
    #[serde(default)]
    pub vendor_data: Option<String>,
    #[serde(default)]
    pub volumes: Vec<Volume>,
}

fn default_region() -> String {
    "eu-central".into()
}
fn default_zone() -> String {
    "fsn1-dc14".into()
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrivateNet {
    pub ip: String,
    #[serde(default)]
    pub alias_ips: Vec<String>,
    pub interface_num: u64,
    pub mac_address: String,
    pub network_id: u64,
    pub network_name: String,
    pub network: String,
    pub subnet: String,
    pub gateway: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Volume {
    pub id: u64,
    #[serde(default)]
    pub automount: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MissingIpv4 {
    /// The `public-ipv4` key is left out of the summary; the leaf answers 404.
    #[default]
    Absent,
    /// `public-ipv4: ''` in the summary; the leaf answers 200 with an empty body.
    Empty,
    /// The key is left out and the leaf answers 404.
    NotFound,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmptyUserdata {
    #[default]
    NoContent,
    EmptyOk,
    NotFound,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Options {
    pub leaf_trailing_newline: bool,
    pub missing_ipv4: MissingIpv4,
    pub dhcp_subnet_without_ipv4: bool,
    pub ipv4_nameservers_in_config: bool,
    pub empty_userdata: EmptyUserdata,
    pub automount_window_secs: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            leaf_trailing_newline: false,
            missing_ipv4: MissingIpv4::Absent,
            dhcp_subnet_without_ipv4: false,
            ipv4_nameservers_in_config: false,
            empty_userdata: EmptyUserdata::NoContent,
            automount_window_secs: 300,
        }
    }
}

/// A fault rule; see `docs/scenario.md`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Fault {
    pub path: String,
    pub for_secs: Option<f64>,
    pub count: Option<u64>,
    pub status: Option<u16>,
    pub delay_ms: Option<u64>,
    pub truncate_to: Option<usize>,
    pub garbage: bool,
    pub oversize: Option<usize>,
    pub drop: bool,
    /// Send the normal answer 16 bytes at a time with this pause (ms) between them.
    pub trickle_ms: Option<u64>,
    /// Answer with exactly this body (and `status`, default 200): a hand-made broken answer.
    pub body: Option<String>,
}

impl Scenario {
    pub fn from_yaml(text: &str) -> anyhow::Result<Scenario> {
        let s: Scenario = serde_saphyr::from_str(text).map_err(|e| anyhow::anyhow!("{e}"))?;
        s.validate()?;
        Ok(s)
    }

    pub fn load(path: &Path) -> anyhow::Result<Scenario> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read scenario {}", path.display()))?;
        Scenario::from_yaml(&text)
            .with_context(|| format!("scenario {} is invalid", path.display()))
    }

    /// Serialize back to YAML (for tests and the simulator writing scenario files).
    pub fn to_yaml(&self) -> String {
        // Plain data of strings, numbers and lists: serialization cannot fail.
        serde_saphyr::to_string(self).unwrap_or_default()
    }

    fn validate(&self) -> anyhow::Result<()> {
        let s = &self.server;
        if (s.public_ipv4.is_some() || s.public_ipv6.is_some()) && s.public_mac.is_none() {
            bail!("server.public_mac is required when the server has a public IP");
        }
        if let Some(v6) = &s.public_ipv6 {
            s.ipv6_host()
                .with_context(|| format!("server.public_ipv6 {v6:?}"))?;
        }
        if s.userdata.is_some() && s.userdata_base64.is_some() {
            bail!("server.userdata and server.userdata_base64 are exclusive");
        }
        s.userdata_bytes()?;
        for f in &self.faults {
            if f.path.is_empty() {
                bail!("every fault needs a `path` (an exact path or \"*\")");
            }
        }
        Ok(())
    }
}

impl Server {
    /// The address the server uses in its /64 (`<prefix>::1`) and the prefix length.
    pub fn ipv6_host(&self) -> anyhow::Result<Option<(Ipv6Addr, u8)>> {
        let Some(net) = &self.public_ipv6 else {
            return Ok(None);
        };
        let (addr, len) = net.split_once('/').unwrap_or((net.as_str(), "64"));
        let addr: Ipv6Addr = addr.parse().context("not an IPv6 network")?;
        let len: u8 = len
            .parse()
            .ok()
            .filter(|l| *l <= 128)
            .context("bad prefix length")?;
        let mask = if len == 0 {
            0
        } else {
            u128::MAX << (128 - len)
        };
        Ok(Some((Ipv6Addr::from((u128::from(addr) & mask) | 1), len)))
    }

    pub fn userdata_bytes(&self) -> anyhow::Result<Vec<u8>> {
        use base64::Engine;
        match (&self.userdata, &self.userdata_base64) {
            (Some(t), _) => Ok(t.as_bytes().to_vec()),
            (None, Some(b)) => base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .context("server.userdata_base64 is not valid base64"),
            (None, None) => Ok(Vec::new()),
        }
    }
}
