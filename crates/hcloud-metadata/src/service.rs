//! Parsing of what the metadata service serves: the `metadata` summary (YAML mapping) and the
//! `metadata/private-networks` list (YAML sequence).
//!
//! The service's shapes vary between server generations and samples (see
//! `hetzner-guest-spec.md` §1.3–1.5), so parsing is done on a generic YAML value with tolerant
//! accessors rather than a strict derive: keys in any order, `instance-id` as integer or string,
//! MACs quoted or not, `public-ipv4` absent or empty, unknown keys ignored.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde_json::{Map, Value};

/// What went wrong while reading a body from the metadata service. The message names the
/// endpoint and the key, so a person can see which part of the answer was bad.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("{what}: not valid YAML: {reason}")]
    Yaml { what: &'static str, reason: String },
    #[error("{what}: expected {expected}, got {got}")]
    Shape {
        what: String,
        expected: &'static str,
        got: String,
    },
    #[error("{what}: required key `{key}` is missing")]
    Missing {
        what: &'static str,
        key: &'static str,
    },
    #[error("{what}: {reason}")]
    Invalid { what: String, reason: String },
}

/// The parts of the `metadata` summary the agents use. Vendor data is deliberately not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub instance_id: u64,
    pub hostname: Option<String>,
    pub region: Option<String>,
    pub availability_zone: Option<String>,
    pub public_ipv4: Option<Ipv4Addr>,
    pub public_keys: Vec<String>,
    pub public_network: PublicNetwork,
}

/// The public interface as described by `network-config` (cloud-init network config v1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublicNetwork {
    /// MAC of the first physical entry; `None` when `config` is empty (no public network).
    pub mac_address: Option<String>,
    /// The static IPv6 address with its prefix length.
    pub ipv6: Option<(Ipv6Addr, u8)>,
    /// The IPv6 gateway without any `%iface` scope.
    pub ipv6_gateway: Option<Ipv6Addr>,
    /// Resolvers in the order served (deduplicated later).
    pub nameservers: Vec<IpAddr>,
}

/// One item of `metadata/private-networks`, every key kept with its type; `None` where the
/// service left a key out.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PrivateNetwork {
    pub ip: Option<String>,
    pub alias_ips: Vec<String>,
    pub interface_num: Option<u64>,
    pub mac_address: Option<String>,
    pub network_id: Option<u64>,
    pub network_name: Option<String>,
    pub network: Option<String>,
    pub subnet: Option<String>,
    pub gateway: Option<String>,
}

const SUMMARY: &str = "metadata";
const PRIVATE: &str = "metadata/private-networks";

fn parse_yaml(what: &'static str, text: &str) -> Result<Value, ParseError> {
    // An empty document is YAML null; callers decide whether that is acceptable.
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_saphyr::from_str::<Value>(text).map_err(|e| ParseError::Yaml {
        what,
        reason: first_line(&e.to_string()),
    })
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").trim().to_string()
}

fn describe(v: &Value) -> String {
    match v {
        Value::Null => "nothing".into(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("the string {s:?}"),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "a mapping".into(),
    }
}

/// A scalar as text: YAML may have typed a hostname like `123` or a MAC as a number.
fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn opt_text(map: &Map<String, Value>, key: &str, what: &str) -> Result<Option<String>, ParseError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match scalar_text(v) {
            Some(s) if s.is_empty() => Ok(None),
            Some(s) => Ok(Some(s)),
            None => Err(ParseError::Shape {
                what: format!("{what}: key `{key}`"),
                expected: "a text value",
                got: describe(v),
            }),
        },
    }
}

fn opt_u64(map: &Map<String, Value>, key: &str, what: &str) -> Result<Option<u64>, ParseError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) if n.as_u64().is_some() => Ok(n.as_u64()),
        Some(Value::String(s)) if s.trim().parse::<u64>().is_ok() => Ok(s.trim().parse().ok()),
        Some(v) => Err(ParseError::Shape {
            what: format!("{what}: key `{key}`"),
            expected: "a non-negative integer",
            got: describe(v),
        }),
    }
}

/// A list of text values; a single scalar counts as a one-item list, null as empty.
fn text_list(v: Option<&Value>, what: &str) -> Result<Vec<String>, ParseError> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .filter(|(_, item)| !item.is_null())
            .map(|(i, item)| {
                scalar_text(item).ok_or_else(|| ParseError::Shape {
                    what: format!("{what}[{i}]"),
                    expected: "a text value",
                    got: describe(item),
                })
            })
            .collect(),
        Some(v) => scalar_text(v)
            .map(|s| vec![s])
            .ok_or_else(|| ParseError::Shape {
                what: what.to_string(),
                expected: "a list",
                got: describe(v),
            }),
    }
}

/// Parse the body of `GET /hetzner/v1/metadata`.
pub fn parse_summary(text: &str) -> Result<Summary, ParseError> {
    let value = parse_yaml(SUMMARY, text)?;
    let Value::Object(map) = value else {
        return Err(ParseError::Shape {
            what: SUMMARY.into(),
            expected: "a YAML mapping",
            got: describe(&value),
        });
    };
    let instance_id = opt_u64(&map, "instance-id", SUMMARY)?.ok_or(ParseError::Missing {
        what: SUMMARY,
        key: "instance-id",
    })?;
    let public_ipv4 = match opt_text(&map, "public-ipv4", SUMMARY)? {
        None => None,
        Some(s) => Some(s.parse::<Ipv4Addr>().map_err(|_| ParseError::Invalid {
            what: format!("{SUMMARY}: key `public-ipv4`"),
            reason: format!("{s:?} is not an IPv4 address"),
        })?),
    };
    let public_keys = text_list(map.get("public-keys"), "metadata: key `public-keys`")?
        .into_iter()
        .filter(|k| !k.is_empty())
        .collect();
    let public_network = match map.get("network-config") {
        None | Some(Value::Null) => PublicNetwork::default(),
        Some(v) => parse_network_config(v)?,
    };
    Ok(Summary {
        instance_id,
        hostname: opt_text(&map, "hostname", SUMMARY)?,
        region: opt_text(&map, "region", SUMMARY)?,
        availability_zone: opt_text(&map, "availability-zone", SUMMARY)?,
        public_ipv4,
        public_keys,
        public_network,
    })
}

/// Parse the `network-config` value (cloud-init network config v1) of the summary. Accepts the
/// current shape, the historical `eth0:0` second entry with an IPv6 route, separate
/// `type: nameserver` entries and IPv6 subnets without `type`.
pub fn parse_network_config(v: &Value) -> Result<PublicNetwork, ParseError> {
    const WHAT: &str = "metadata: network-config";
    let config = match v {
        Value::Object(m) => m.get("config").cloned().unwrap_or(Value::Null),
        // Some dumps give the list directly.
        Value::Array(_) => v.clone(),
        other => {
            return Err(ParseError::Shape {
                what: WHAT.into(),
                expected: "a mapping with `config`",
                got: describe(other),
            });
        }
    };
    let entries = match config {
        Value::Null => Vec::new(),
        Value::Array(items) => items,
        other => {
            return Err(ParseError::Shape {
                what: format!("{WHAT}.config"),
                expected: "a list",
                got: describe(&other),
            });
        }
    };
    let mut net = PublicNetwork::default();
    for (i, entry) in entries.iter().enumerate() {
        let what = format!("{WHAT}.config[{i}]");
        let Value::Object(entry) = entry else {
            return Err(ParseError::Shape {
                what,
                expected: "a mapping",
                got: describe(entry),
            });
        };
        let kind = opt_text(entry, "type", &what)?.unwrap_or_default();
        match kind.as_str() {
            "nameserver" => {
                for a in text_list(entry.get("address"), &format!("{what}.address"))? {
                    net.nameservers
                        .push(parse_ip(&a, &format!("{what}.address"))?);
                }
            }
            "physical" | "" => {
                if net.mac_address.is_none()
                    && let Some(mac) = opt_text(entry, "mac_address", &what)?
                {
                    net.mac_address = Some(normalize_mac(&mac, &what)?);
                }
                parse_physical(entry, &what, &mut net)?;
            }
            // Bonds, VLANs and the like never appear on Hetzner; ignore rather than fail.
            _ => {}
        }
    }
    Ok(net)
}

fn parse_physical(
    entry: &Map<String, Value>,
    what: &str,
    net: &mut PublicNetwork,
) -> Result<(), ParseError> {
    let subnets = match entry.get("subnets") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(s)) => s.clone(),
        Some(other) => {
            return Err(ParseError::Shape {
                what: format!("{what}.subnets"),
                expected: "a list",
                got: describe(other),
            });
        }
    };
    for (j, subnet) in subnets.iter().enumerate() {
        let what = format!("{what}.subnets[{j}]");
        let Value::Object(subnet) = subnet else {
            return Err(ParseError::Shape {
                what,
                expected: "a mapping",
                got: describe(subnet),
            });
        };
        for ns in text_list(
            subnet.get("dns_nameservers"),
            &format!("{what}.dns_nameservers"),
        )? {
            net.nameservers
                .push(parse_ip(&ns, &format!("{what}.dns_nameservers"))?);
        }
        let Some(address) = opt_text(subnet, "address", &what)? else {
            continue; // a DHCP subnet: its address comes from `public-ipv4`.
        };
        let (addr, prefix) = match address.split_once('/') {
            Some((a, p)) => (a.to_string(), Some(p.to_string())),
            None => (address.clone(), opt_text(subnet, "prefix", &what)?),
        };
        let Ok(ip) = addr.parse::<Ipv6Addr>() else {
            // A static IPv4 subnet is not something Hetzner serves; the public IPv4 comes from
            // `public-ipv4` and DHCP. Reject text that is no address at all.
            if addr.parse::<Ipv4Addr>().is_ok() {
                continue;
            }
            return Err(ParseError::Invalid {
                what: format!("{what}.address"),
                reason: format!("{address:?} is not an IP address"),
            });
        };
        let prefix =
            match prefix {
                None => 64,
                Some(p) => p.parse::<u8>().ok().filter(|p| *p <= 128).ok_or_else(|| {
                    ParseError::Invalid {
                        what: format!("{what}.address"),
                        reason: format!("{address:?} has an invalid IPv6 prefix length"),
                    }
                })?,
            };
        if net.ipv6.is_none() {
            net.ipv6 = Some((ip, prefix));
        }
        if net.ipv6_gateway.is_none()
            && let Some(gw) = opt_text(subnet, "gateway", &what)?
        {
            net.ipv6_gateway = Some(parse_v6_gateway(&gw, &format!("{what}.gateway"))?);
        }
    }
    // Historical shape: the gateway as a default route on the `eth0:0` entry.
    if net.ipv6_gateway.is_none()
        && let Some(Value::Array(routes)) = entry.get("routes")
    {
        for (k, route) in routes.iter().enumerate() {
            let what = format!("{what}.routes[{k}]");
            let Value::Object(route) = route else {
                continue;
            };
            let network = opt_text(route, "network", &what)?.unwrap_or_default();
            let netmask = opt_text(route, "netmask", &what)?.unwrap_or_default();
            let default =
                (network == "::" || network == "::/0") && (netmask == "0" || netmask.is_empty());
            if let (true, Some(gw)) = (default, opt_text(route, "gateway", &what)?) {
                net.ipv6_gateway = Some(parse_v6_gateway(&gw, &format!("{what}.gateway"))?);
                break;
            }
        }
    }
    Ok(())
}

fn parse_ip(s: &str, what: &str) -> Result<IpAddr, ParseError> {
    s.parse().map_err(|_| ParseError::Invalid {
        what: what.to_string(),
        reason: format!("{s:?} is not an IP address"),
    })
}

fn parse_v6_gateway(s: &str, what: &str) -> Result<Ipv6Addr, ParseError> {
    let bare = s.split_once('%').map_or(s, |(a, _)| a);
    bare.parse().map_err(|_| ParseError::Invalid {
        what: what.to_string(),
        reason: format!("{s:?} is not an IPv6 address"),
    })
}

/// Lower-case `xx:xx:xx:xx:xx:xx`; anything else is an error naming the value.
pub fn normalize_mac(s: &str, what: &str) -> Result<String, ParseError> {
    let lower = s.trim().to_ascii_lowercase();
    let parts: Vec<&str> = lower.split(':').collect();
    let ok = parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()));
    if ok {
        Ok(lower)
    } else {
        Err(ParseError::Invalid {
            what: format!("{what}: key `mac_address`"),
            reason: format!("{s:?} is not a MAC address"),
        })
    }
}

/// Parse the body of `GET /hetzner/v1/metadata/private-networks`. An empty body or `[]` means
/// no private networks.
pub fn parse_private_networks(text: &str) -> Result<Vec<PrivateNetwork>, ParseError> {
    let value = parse_yaml(PRIVATE, text)?;
    let items = match value {
        Value::Null => return Ok(Vec::new()),
        Value::Array(items) => items,
        other => {
            return Err(ParseError::Shape {
                what: PRIVATE.into(),
                expected: "a YAML list",
                got: describe(&other),
            });
        }
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let what = format!("{PRIVATE}[{i}]");
            let Value::Object(m) = item else {
                return Err(ParseError::Shape {
                    what,
                    expected: "a mapping",
                    got: describe(item),
                });
            };
            let mac_address = match opt_text(m, "mac_address", &what)? {
                Some(mac) => Some(normalize_mac(&mac, &what)?),
                None => None,
            };
            Ok(PrivateNetwork {
                ip: opt_text(m, "ip", &what)?,
                alias_ips: text_list(m.get("alias_ips"), &format!("{what}.alias_ips"))?
                    .into_iter()
                    .filter(|s| !s.is_empty())
                    .collect(),
                interface_num: opt_u64(m, "interface_num", &what)?,
                mac_address,
                network_id: opt_u64(m, "network_id", &what)?,
                network_name: opt_text(m, "network_name", &what)?,
                network: opt_text(m, "network", &what)?,
                subnet: opt_text(m, "subnet", &what)?,
                gateway: opt_text(m, "gateway", &what)?,
            })
        })
        .collect()
}
