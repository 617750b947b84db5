//! The simulator's reading of a scenario file (`docs/scenario.md`). The types are the fake
//! metadata service's own (`hcloud_fake_metadata::Scenario`), so the simulator refuses up front
//! whatever the fake would refuse; this module adds what the simulator needs on top: the checks
//! for hardware Hetzner would build, the server's IPv6 address and the address to SSH to.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;

use anyhow::{Context, Result, bail};
use ipnetwork::{Ipv4Network, Ipv6Network};

pub use hcloud_fake_metadata::{PrivateNet as PrivateNetwork, Scenario, Server};

/// The whole scenario file as a generic value, so tests and the CLI can change it (add a key,
/// attach a network, add faults) and write it back for the fake metadata service.
pub type ScenarioValue = serde_json::Value;

/// What the simulator reads of a server beyond the scenario's fields.
pub trait ServerExt {
    /// The IPv6 /64 of the server, parsed.
    fn ipv6_net(&self) -> Result<Option<Ipv6Network>>;
    /// The address the server configures from its /64 (`<prefix>::1`).
    fn ipv6_address(&self) -> Result<Option<Ipv6Addr>>;
    fn has_public_nic(&self) -> bool;
    /// The private network (its `interface_num`) the metadata service answers on: on a server
    /// without public NIC, the one with the lowest `interface_num`; otherwise none.
    fn metadata_network(&self) -> Option<u64>;
    /// The address a user would SSH to: public IPv4, else public IPv6, else the first private IP.
    fn ssh_address(&self) -> Result<String>;
    /// Checks what the simulator needs to build the server.
    fn validate(&self) -> Result<()>;
}

impl ServerExt for Server {
    fn ipv6_net(&self) -> Result<Option<Ipv6Network>> {
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

    fn ipv6_address(&self) -> Result<Option<Ipv6Addr>> {
        Ok(self
            .ipv6_net()?
            .map(|n| Ipv6Addr::from(u128::from(n.network()) + 1)))
    }

    fn has_public_nic(&self) -> bool {
        self.public_ipv4.is_some() || self.public_ipv6.is_some()
    }

    fn metadata_network(&self) -> Option<u64> {
        if self.has_public_nic() {
            return None;
        }
        self.private_networks.iter().map(|p| p.interface_num).min()
    }

    fn ssh_address(&self) -> Result<String> {
        if let Some(v4) = self.public_ipv4 {
            return Ok(v4.to_string());
        }
        if let Some(v6) = self.ipv6_address()? {
            return Ok(v6.to_string());
        }
        match self.private_networks.iter().min_by_key(|p| p.interface_num) {
            Some(p) => Ok(p.ipv4()?.to_string()),
            None => bail!(
                "server {} has neither a public IP nor a private network: nothing to SSH to",
                self.id
            ),
        }
    }

    fn validate(&self) -> Result<()> {
        if let Some(mac) = self.public_mac.as_deref() {
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
            let (ip, gateway) = (p.ipv4()?, v4(p, "gateway", &p.gateway)?);
            if !net.contains(ip) || !net.contains(gateway) {
                bail!("{what}: ip {ip} and gateway {gateway} must lie in network {net}");
            }
            for alias in &p.alias_ips {
                let a = v4(p, "alias ip", alias)?;
                if !net.contains(a) {
                    bail!("{what}: alias ip {a} must lie in network {net}");
                }
            }
        }
        Ok(())
    }
}

/// What the simulator reads of a private network beyond the scenario's fields.
pub trait PrivateNetworkExt {
    fn ipv4(&self) -> Result<Ipv4Addr>;
    fn network_v4(&self) -> Result<Ipv4Network>;
    /// A second host in the network's range that the server must reach through the gateway:
    /// the last usable address of the range.
    fn peer_host(&self) -> Result<Ipv4Addr>;
}

impl PrivateNetworkExt for PrivateNetwork {
    fn ipv4(&self) -> Result<Ipv4Addr> {
        v4(self, "ip", &self.ip)
    }

    fn network_v4(&self) -> Result<Ipv4Network> {
        let net: Ipv4Network = self.network.parse().with_context(|| {
            format!(
                "private network {}: network {:?} is not an IPv4 CIDR",
                self.mac_address, self.network
            )
        })?;
        Ipv4Network::new(net.network(), net.prefix())
            .with_context(|| format!("network {}", self.network))
    }

    fn peer_host(&self) -> Result<Ipv4Addr> {
        let net = self.network_v4()?;
        Ok(Ipv4Addr::from(u32::from(net.broadcast()) - 1))
    }
}

/// One address field of a private network, parsed; the error names the network and the field.
fn v4(p: &PrivateNetwork, field: &str, value: &str) -> Result<Ipv4Addr> {
    value.parse().with_context(|| {
        format!(
            "private network {}: {field} {value:?} is not an IPv4 address",
            p.mac_address
        )
    })
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
    // The text itself goes through the fake's parser first, so an error quotes the user's line.
    let scenario = Scenario::from_yaml(text)?;
    scenario.server.validate()?;
    let value: ScenarioValue =
        serde_saphyr::from_str(text).context("scenario is not valid YAML")?;
    Ok((value, scenario.server))
}

/// The typed server of a scenario value, checked as the fake metadata service checks it and
/// for what the simulator builds from it.
pub fn server_of(value: &ScenarioValue) -> Result<Server> {
    let text = serde_json::to_string(value).context("scenario cannot be written as JSON")?;
    // JSON is YAML: the fake's own parser and checks, so both refuse the same files.
    let scenario = Scenario::from_yaml(&text)?;
    scenario.server.validate()?;
    Ok(scenario.server)
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

    #[test]
    fn refuses_what_the_fake_metadata_service_would_refuse() {
        // A misspelt key would otherwise build a server without the IPv4 the user meant.
        let typo = DUAL.replace("public_ipv4:", "publc_ipv4:");
        let err = format!("{:#}", parse(&typo).unwrap_err());
        assert!(err.contains("publc_ipv4"), "{err}");
        let no_name = DUAL.replace("      network_name: backend\n", "");
        let err = format!("{:#}", parse(&no_name).unwrap_err());
        assert!(err.contains("network_name"), "{err}");
        let alias = DUAL.replace("alias_ips: [10.0.0.3]", "alias_ips: [192.168.7.3]");
        let err = format!("{:#}", parse(&alias).unwrap_err());
        assert!(
            err.contains("alias ip 192.168.7.3 must lie in network 10.0.0.0/16"),
            "{err}"
        );
        let bad_ip = DUAL.replace("ip: 10.0.0.2", "ip: 10.0.0.300");
        let err = format!("{:#}", parse(&bad_ip).unwrap_err());
        assert!(
            err.contains("\"10.0.0.300\" is not an IPv4 address"),
            "{err}"
        );
    }
}
