//! The part of a scenario file (`docs/scenario.md`) the simulator builds hardware and network
//! from. The file itself is passed unchanged to `hcloud-fake-metadata`, which renders the
//! metadata from it; this module only reads `server` and checks what the simulator relies on.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;

use anyhow::{Context, Result, bail};
use ipnetwork::{Ipv4Network, Ipv6Network};
use serde::Deserialize;

/// The whole scenario file as a generic value, so tests and the CLI can change it (add a key,
/// attach a network, add faults) and write it back for the fake metadata service.
pub type ScenarioValue = serde_json::Value;

#[derive(Debug, Clone, Deserialize)]
struct File {
    server: Server,
}

/// One simulated server, as far as the simulator needs it.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Server {
    pub id: u64,
    pub name: String,
    #[serde(default)]
    pub public_mac: Option<String>,
    #[serde(default)]
    pub public_ipv4: Option<Ipv4Addr>,
    /// The server's /64, e.g. `2001:db8:1234:5678::/64`; the server uses `::1` of it.
    #[serde(default)]
    pub public_ipv6: Option<String>,
    #[serde(default)]
    pub public_keys: Vec<String>,
    #[serde(default)]
    pub private_networks: Vec<PrivateNetwork>,
}

/// One attached private network (one NIC).
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct PrivateNetwork {
    pub ip: Ipv4Addr,
    #[serde(default)]
    pub alias_ips: Vec<Ipv4Addr>,
    pub interface_num: u32,
    pub mac_address: String,
    #[serde(default)]
    pub network_id: Option<u64>,
    #[serde(default)]
    pub network_name: Option<String>,
    pub network: String,
    #[serde(default)]
    pub subnet: Option<String>,
    pub gateway: Ipv4Addr,
}

impl Server {
    /// The IPv6 /64 of the server, parsed.
    pub fn ipv6_net(&self) -> Result<Option<Ipv6Network>> {
        match &self.public_ipv6 {
            None => Ok(None),
            Some(s) => {
                let net: Ipv6Network = s
                    .parse()
                    .with_context(|| format!("server.public_ipv6 {s:?} is not an IPv6 CIDR"))?;
                let net = Ipv6Network::new(net.network(), net.prefix())
                    .with_context(|| format!("server.public_ipv6 {s:?}"))?;
                Ok(Some(net))
            }
        }
    }

    /// The address the server configures from its /64 (`<prefix>::1`).
    pub fn ipv6_address(&self) -> Result<Option<Ipv6Addr>> {
        Ok(self
            .ipv6_net()?
            .map(|n| Ipv6Addr::from(u128::from(n.network()) + 1)))
    }

    pub fn has_public_nic(&self) -> bool {
        self.public_ipv4.is_some() || self.public_ipv6.is_some()
    }

    /// The address a user would SSH to: public IPv4, else public IPv6, else the first private IP.
    pub fn ssh_address(&self) -> Result<String> {
        if let Some(v4) = self.public_ipv4 {
            return Ok(v4.to_string());
        }
        if let Some(v6) = self.ipv6_address()? {
            return Ok(v6.to_string());
        }
        match self.private_networks.iter().min_by_key(|p| p.interface_num) {
            Some(p) => Ok(p.ip.to_string()),
            None => bail!(
                "server {} has neither a public IP nor a private network: nothing to SSH to",
                self.id
            ),
        }
    }

    /// Checks what the simulator needs to build the server.
    pub fn validate(&self) -> Result<()> {
        if self.has_public_nic() {
            let mac = self
                .public_mac
                .as_deref()
                .context("server.public_mac is required when there is a public IP")?;
            check_mac("server.public_mac", mac, "96:00:")?;
        }
        self.ipv6_net()?;
        let mut nums = std::collections::BTreeSet::new();
        for p in &self.private_networks {
            let what = format!("private network with mac {}", p.mac_address);
            check_mac(&what, &p.mac_address, "86:00:00:")?;
            if !nums.insert(p.interface_num) {
                bail!("{what}: interface_num {} is used twice", p.interface_num);
            }
            if !(1..=20).contains(&p.interface_num) {
                bail!(
                    "{what}: interface_num {} is outside 1..=20",
                    p.interface_num
                );
            }
            let net = p.network_v4()?;
            if !net.contains(p.ip) || !net.contains(p.gateway) {
                bail!(
                    "{what}: ip {} and gateway {} must lie in network {net}",
                    p.ip,
                    p.gateway
                );
            }
        }
        Ok(())
    }
}

impl PrivateNetwork {
    pub fn network_v4(&self) -> Result<Ipv4Network> {
        let net: Ipv4Network = self.network.parse().with_context(|| {
            format!(
                "private network {}: network {:?} is not an IPv4 CIDR",
                self.mac_address, self.network
            )
        })?;
        Ipv4Network::new(net.network(), net.prefix())
            .with_context(|| format!("network {}", self.network))
    }

    /// A second host in the network's range that the server must reach through the gateway:
    /// the last usable address of the range.
    pub fn peer_host(&self) -> Result<Ipv4Addr> {
        let net = self.network_v4()?;
        Ok(Ipv4Addr::from(u32::from(net.broadcast()) - 1))
    }
}

fn check_mac(what: &str, mac: &str, prefix: &str) -> Result<()> {
    let ok = mac.len() == 17
        && mac
            .split(':')
            .all(|b| b.len() == 2 && b.chars().all(|c| c.is_ascii_hexdigit()));
    if !ok {
        bail!("{what}: {mac:?} is not a MAC address");
    }
    if !mac.to_ascii_lowercase().starts_with(prefix) {
        bail!("{what}: {mac} does not start with {prefix} as on Hetzner Cloud");
    }
    Ok(())
}

/// Parses a scenario file's text (YAML or JSON).
pub fn parse(text: &str) -> Result<(ScenarioValue, Server)> {
    let value: ScenarioValue =
        serde_saphyr::from_str(text).context("scenario is not valid YAML")?;
    let server = server_of(&value)?;
    Ok((value, server))
}

/// The typed server of a scenario value.
pub fn server_of(value: &ScenarioValue) -> Result<Server> {
    let file: File = serde_json::from_value(value.clone())
        .context("scenario: bad or missing `server` section")?;
    file.server.validate()?;
    Ok(file.server)
}

pub fn load(path: &Path) -> Result<(ScenarioValue, Server)> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading scenario {}", path.display()))?;
    parse(&text).with_context(|| format!("scenario {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DUAL: &str = r##"
server:
  id: 48151623
  name: app-7
  public_mac: "96:00:00:ab:cd:ef"
  public_ipv4: 203.0.113.10
  public_ipv6: "2001:db8:1234:5678::/64"
  public_keys: [ssh-ed25519 AAAA alice]
  private_networks:
    - ip: 10.0.0.2
      alias_ips: [10.0.0.3]
      interface_num: 1
      mac_address: "86:00:00:00:00:01"
      network_id: 1001
      network_name: backend
      network: 10.0.0.0/16
      subnet: 10.0.0.0/24
      gateway: 10.0.0.1
  userdata: "#cloud-config\n"
options:
  leaf_trailing_newline: true
"##;

    #[test]
    fn parses_the_documented_shape() {
        let (value, s) = parse(DUAL).unwrap();
        assert_eq!(s.id, 48151623);
        assert_eq!(
            s.ipv6_address().unwrap().unwrap().to_string(),
            "2001:db8:1234:5678::1"
        );
        assert_eq!(s.ssh_address().unwrap(), "203.0.113.10");
        assert_eq!(
            s.private_networks[0].peer_host().unwrap().to_string(),
            "10.0.255.254"
        );
        // The generic value keeps what the simulator does not read, for the fake service.
        assert_eq!(
            value["options"]["leaf_trailing_newline"],
            serde_json::json!(true)
        );
        assert_eq!(
            value["server"]["userdata"],
            serde_json::json!("#cloud-config\n")
        );
    }

    #[test]
    fn ipv6_only_and_private_only_pick_the_right_ssh_address() {
        let v6 = DUAL.replace("  public_ipv4: 203.0.113.10\n", "");
        let (_, s) = parse(&v6).unwrap();
        assert_eq!(s.ssh_address().unwrap(), "2001:db8:1234:5678::1");
        let private = v6
            .replace("  public_ipv6: \"2001:db8:1234:5678::/64\"\n", "")
            .replace("  public_mac: \"96:00:00:ab:cd:ef\"\n", "");
        let (_, s) = parse(&private).unwrap();
        assert!(!s.has_public_nic());
        assert_eq!(s.ssh_address().unwrap(), "10.0.0.2");
    }

    #[test]
    fn rejects_what_hetzner_would_never_build() {
        let bad_mac = DUAL.replace("86:00:00:00:00:01", "52:54:00:00:00:01");
        let err = format!("{:#}", parse(&bad_mac).unwrap_err());
        assert!(err.contains("does not start with 86:00:00:"), "{err}");
        let no_mac = DUAL.replace("  public_mac: \"96:00:00:ab:cd:ef\"\n", "");
        let err = format!("{:#}", parse(&no_mac).unwrap_err());
        assert!(err.contains("public_mac is required"), "{err}");
        let outside = DUAL
            .replace("ip: 10.0.0.2", "ip: 10.9.0.2")
            .replace("10.0.0.0/16", "10.1.0.0/16");
        let err = format!("{:#}", parse(&outside).unwrap_err());
        assert!(err.contains("must lie in network"), "{err}");
    }
}
