//! Parsing of what the metadata service serves: the `metadata` summary (YAML mapping) and the
//! `metadata/private-networks` list (YAML sequence).
//!
//! The service's shapes vary between server generations and samples (see
//! `hetzner-guest-spec.md` §1.3–1.5), so parsing is done on a YAML tree with tolerant accessors
//! rather than a strict derive: keys in any order, `instance-id` as integer or string, MACs
//! quoted or not, `public-ipv4` absent or empty, unknown keys ignored. Every scalar keeps its
//! exact text ([`crate::yaml`]): a hostname `08` stays `08`.
//!
//! Only a body that is not YAML, the wrong overall shape (not a mapping, not a list) and a
//! missing or bad `instance-id` are errors. Any other bad value drops that value or that entry
//! with a warning naming it, and the rest is kept (docs/metadata-document.md#bad-values).
//! A key that is absent is told apart from an empty one: `public-keys` and `network-config`
//! are `None` when the summary leaves them out, which the downloader treats as a broken answer.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::yaml::{self, Node};

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
    /// `None`: the key is absent (or unusable), a broken answer; `Some(vec![])`: no keys.
    pub public_keys: Option<Vec<String>>,
    /// `None`: `network-config` is absent (or unusable); `Some` with no MAC: no public network.
    pub public_network: Option<PublicNetwork>,
    /// Keys the service always sends (see [`ALWAYS_SENT`]) that are absent or null: a body cut
    /// short, or broken on the way. The downloader does not use such an answer.
    pub lacking: Vec<&'static str>,
    /// Every value that was dropped, and why.
    pub warnings: Vec<String>,
}

/// The keys every summary has: the service sends `[]` or `config: []` when there is nothing,
/// so an absent one means the answer is broken (the keys come in alphabetical order, so a body
/// cut at a line boundary always lacks one of them, up to the last, `region`).
pub const ALWAYS_SENT: [&str; 6] = [
    "availability-zone",
    "hostname",
    "instance-id",
    "network-config",
    "public-keys",
    "region",
];

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

/// What `metadata/private-networks` listed that can be used, and what was dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrivateNetworks {
    pub networks: Vec<PrivateNetwork>,
    pub warnings: Vec<String>,
}

const SUMMARY: &str = "metadata";
const PRIVATE: &str = "metadata/private-networks";

fn parse_yaml(what: &'static str, text: &str) -> Result<Node, ParseError> {
    yaml::parse(text).map_err(|reason| ParseError::Yaml { what, reason })
}

/// Collects what was dropped; each warning names the value and the place.
#[derive(Default)]
struct Warn(Vec<String>);

impl Warn {
    fn drop(&mut self, what: &str, why: impl std::fmt::Display) {
        self.0.push(format!("{what}: {why}; left out"));
    }
}

/// A text value; `None` when absent, null or empty. A list or mapping is dropped with a warning.
fn opt_text(node: &Node, key: &str, what: &str, w: &mut Warn) -> Option<String> {
    match node.get(key) {
        None | Some(Node::Null) => None,
        Some(Node::Text(s)) => Some(s.trim().to_string()).filter(|s| !s.is_empty()),
        Some(other) => {
            w.drop(
                &format!("{what}: key `{key}`"),
                format!("expected a text value, got {}", other.describe()),
            );
            None
        }
    }
}

/// A non-negative integer; `Err` names the value.
fn opt_u64(node: &Node, key: &str, what: &str) -> Result<Option<u64>, ParseError> {
    match node.get(key) {
        None | Some(Node::Null) => Ok(None),
        Some(Node::Text(s)) if s.trim().parse::<u64>().is_ok() => Ok(s.trim().parse().ok()),
        Some(v) => Err(ParseError::Shape {
            what: format!("{what}: key `{key}`"),
            expected: "a non-negative integer",
            got: v.describe(),
        }),
    }
}

/// A list of text values (a single text counts as a one-item list, null as empty); items that
/// are not text are dropped. `None` when the value is a mapping.
fn text_list(v: Option<&Node>, what: &str, w: &mut Warn) -> Option<Vec<String>> {
    match v {
        None | Some(Node::Null) => Some(Vec::new()),
        Some(Node::List(items)) => Some(
            items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| match item {
                    Node::Null => None,
                    Node::Text(s) => Some(s.trim().to_string()),
                    other => {
                        w.drop(
                            &format!("{what}[{i}]"),
                            format!("{} is not text", other.describe()),
                        );
                        None
                    }
                })
                .collect(),
        ),
        Some(Node::Text(s)) => Some(vec![s.trim().to_string()]),
        Some(other) => {
            w.drop(what, format!("expected a list, got {}", other.describe()));
            None
        }
    }
}

/// Parse the body of `GET /hetzner/v1/metadata`.
pub fn parse_summary(text: &str) -> Result<Summary, ParseError> {
    let map = parse_yaml(SUMMARY, text)?;
    if !matches!(map, Node::Map(_)) {
        return Err(ParseError::Shape {
            what: SUMMARY.into(),
            expected: "a YAML mapping",
            got: map.describe(),
        });
    }
    let instance_id = opt_u64(&map, "instance-id", SUMMARY)?.ok_or(ParseError::Missing {
        what: SUMMARY,
        key: "instance-id",
    })?;
    let mut w = Warn::default();
    let public_ipv4 = opt_text(&map, "public-ipv4", SUMMARY, &mut w).and_then(|s| {
        s.parse::<Ipv4Addr>()
            .map_err(|_| {
                w.drop(
                    "metadata: key `public-ipv4`",
                    format!("{s:?} is not an IPv4 address"),
                )
            })
            .ok()
    });
    let public_keys = match map.get("public-keys") {
        None | Some(Node::Null) => None,
        v => text_list(v, "metadata: key `public-keys`", &mut w)
            .map(|keys| keys.into_iter().filter(|k| !k.is_empty()).collect()),
    };
    let public_network = match map.get("network-config") {
        None | Some(Node::Null) => None,
        Some(v) => parse_network_config(v, &mut w),
    };
    // Absent, null, or of a shape that cannot be used (`public-keys: {..}`): all the same.
    let lacking = ALWAYS_SENT
        .into_iter()
        .filter(|k| match *k {
            "public-keys" => public_keys.is_none(),
            "network-config" => public_network.is_none(),
            k => map.get(k).is_none_or(Node::is_null),
        })
        .collect();
    let hostname = opt_text(&map, "hostname", SUMMARY, &mut w);
    let region = opt_text(&map, "region", SUMMARY, &mut w);
    let availability_zone = opt_text(&map, "availability-zone", SUMMARY, &mut w);
    Ok(Summary {
        instance_id,
        hostname,
        region,
        availability_zone,
        public_ipv4,
        public_keys,
        public_network,
        lacking,
        warnings: w.0,
    })
}

/// Parse the `network-config` value (cloud-init network config v1) of the summary. Accepts the
/// current shape, the historical `eth0:0` second entry with an IPv6 route, separate
/// `type: nameserver` entries and IPv6 subnets without `type`. `None` when its shape is not
/// usable at all (no `config` list): a broken answer, like an absent key.
fn parse_network_config(v: &Node, w: &mut Warn) -> Option<PublicNetwork> {
    const WHAT: &str = "metadata: network-config";
    let config = match v {
        Node::Map(_) => v.get("config").unwrap_or(&Node::Null),
        // Some dumps give the list directly.
        Node::List(_) => v,
        other => {
            w.drop(
                WHAT,
                format!("expected a mapping with `config`, got {}", other.describe()),
            );
            return None;
        }
    };
    let Node::List(entries) = config else {
        w.drop(
            &format!("{WHAT}.config"),
            format!("expected a list, got {}", config.describe()),
        );
        return None;
    };
    let mut net = PublicNetwork::default();
    for (i, entry) in entries.iter().enumerate() {
        let what = format!("{WHAT}.config[{i}]");
        if !matches!(entry, Node::Map(_)) {
            w.drop(
                &what,
                format!("expected a mapping, got {}", entry.describe()),
            );
            continue;
        }
        let kind = opt_text(entry, "type", &what, w).unwrap_or_default();
        match kind.as_str() {
            "nameserver" => {
                let what = format!("{what}.address");
                for a in text_list(entry.get("address"), &what, w).unwrap_or_default() {
                    push_ip(&mut net.nameservers, &a, &what, w);
                }
            }
            "physical" | "" => {
                if net.mac_address.is_none()
                    && let Some(mac) = opt_text(entry, "mac_address", &what, w)
                {
                    match normalize_mac(&mac, &what) {
                        Ok(mac) => net.mac_address = Some(mac),
                        Err(e) => w.0.push(format!("{e}; left out")),
                    }
                }
                parse_physical(entry, &what, &mut net, w);
            }
            // Bonds, VLANs and the like never appear on Hetzner; ignore rather than fail.
            _ => {}
        }
    }
    Some(net)
}

fn push_ip(list: &mut Vec<IpAddr>, s: &str, what: &str, w: &mut Warn) {
    match s.parse() {
        Ok(ip) => list.push(ip),
        Err(_) => w.drop(what, format!("{s:?} is not an IP address")),
    }
}

fn parse_physical(entry: &Node, what: &str, net: &mut PublicNetwork, w: &mut Warn) {
    let subnets: &[Node] = match entry.get("subnets") {
        None | Some(Node::Null) => &[],
        Some(Node::List(s)) => s,
        Some(other) => {
            w.drop(
                &format!("{what}.subnets"),
                format!("expected a list, got {}", other.describe()),
            );
            &[]
        }
    };
    for (j, subnet) in subnets.iter().enumerate() {
        let what = format!("{what}.subnets[{j}]");
        if !matches!(subnet, Node::Map(_)) {
            w.drop(
                &what,
                format!("expected a mapping, got {}", subnet.describe()),
            );
            continue;
        }
        let ns_what = format!("{what}.dns_nameservers");
        for ns in text_list(subnet.get("dns_nameservers"), &ns_what, w).unwrap_or_default() {
            push_ip(&mut net.nameservers, &ns, &ns_what, w);
        }
        let Some(address) = opt_text(subnet, "address", &what, w) else {
            continue; // a DHCP subnet: its address comes from `public-ipv4`.
        };
        let (addr, prefix) = match address.split_once('/') {
            Some((a, p)) => (a.to_string(), Some(p.to_string())),
            None => (address.clone(), opt_text(subnet, "prefix", &what, w)),
        };
        let Ok(ip) = addr.parse::<Ipv6Addr>() else {
            // A static IPv4 subnet is not something Hetzner serves; the public IPv4 comes from
            // `public-ipv4` and DHCP. Text that is no address at all (or an address with a
            // zone id, which a static address never has) is dropped.
            if addr.parse::<Ipv4Addr>().is_err() {
                w.drop(
                    &format!("{what}.address"),
                    format!("{address:?} is not an IP address"),
                );
            }
            continue;
        };
        let prefix = match prefix {
            None => Some(64),
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= 128),
        };
        let Some(prefix) = prefix else {
            w.drop(
                &format!("{what}.address"),
                format!("{address:?} has an invalid IPv6 prefix length"),
            );
            continue;
        };
        if net.ipv6.is_none() {
            net.ipv6 = Some((ip, prefix));
        }
        if net.ipv6_gateway.is_none()
            && let Some(gw) = opt_text(subnet, "gateway", &what, w)
        {
            net.ipv6_gateway = parse_v6_gateway(&gw, &format!("{what}.gateway"), w);
        }
    }
    // Historical shape: the gateway as a default route on the `eth0:0` entry.
    if net.ipv6_gateway.is_none()
        && let Some(Node::List(routes)) = entry.get("routes")
    {
        for (k, route) in routes.iter().enumerate() {
            let what = format!("{what}.routes[{k}]");
            if !matches!(route, Node::Map(_)) {
                continue;
            }
            let network = opt_text(route, "network", &what, w).unwrap_or_default();
            let netmask = opt_text(route, "netmask", &what, w).unwrap_or_default();
            let default =
                (network == "::" || network == "::/0") && (netmask == "0" || netmask.is_empty());
            if let (true, Some(gw)) = (default, opt_text(route, "gateway", &what, w)) {
                net.ipv6_gateway = parse_v6_gateway(&gw, &format!("{what}.gateway"), w);
                break;
            }
        }
    }
}

/// The IPv6 gateway; a `%iface` scope (cloud-init's link-local notation) is stripped.
fn parse_v6_gateway(s: &str, what: &str, w: &mut Warn) -> Option<Ipv6Addr> {
    let bare = s.split_once('%').map_or(s, |(a, _)| a);
    bare.parse()
        .map_err(|_| w.drop(what, format!("{s:?} is not an IPv6 address")))
        .ok()
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
/// no private networks. An entry whose MAC or `interface_num` is bad (it cannot be matched to
/// a NIC) is dropped whole; any other bad value is dropped alone.
pub fn parse_private_networks(text: &str) -> Result<PrivateNetworks, ParseError> {
    let items = match parse_yaml(PRIVATE, text)? {
        Node::Null => return Ok(PrivateNetworks::default()),
        Node::List(items) => items,
        other => {
            return Err(ParseError::Shape {
                what: PRIVATE.into(),
                expected: "a YAML list",
                got: other.describe(),
            });
        }
    };
    let mut w = Warn::default();
    let mut networks = Vec::new();
    for (i, m) in items.iter().enumerate() {
        let what = format!("{PRIVATE}[{i}]");
        match private_entry(m, &what, &mut w) {
            Ok(p) => networks.push(p),
            Err(e) => w.0.push(format!("{e}; this private network is left out")),
        }
    }
    Ok(PrivateNetworks {
        networks,
        warnings: w.0,
    })
}

fn private_entry(m: &Node, what: &str, w: &mut Warn) -> Result<PrivateNetwork, ParseError> {
    if !matches!(m, Node::Map(_)) {
        return Err(ParseError::Shape {
            what: what.to_string(),
            expected: "a mapping",
            got: m.describe(),
        });
    }
    let mac_address = match opt_text(m, "mac_address", what, w) {
        Some(mac) => Some(normalize_mac(&mac, what)?),
        None => None,
    };
    let interface_num = opt_u64(m, "interface_num", what)?;
    let network_id = opt_u64(m, "network_id", what).unwrap_or_else(|e| {
        w.0.push(format!("{e}; left out"));
        None
    });
    Ok(PrivateNetwork {
        ip: opt_text(m, "ip", what, w),
        alias_ips: text_list(m.get("alias_ips"), &format!("{what}.alias_ips"), w)
            .unwrap_or_default()
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect(),
        interface_num,
        mac_address,
        network_id,
        network_name: opt_text(m, "network_name", what, w),
        network: opt_text(m, "network", what, w),
        subnet: opt_text(m, "subnet", what, w),
        gateway: opt_text(m, "gateway", what, w),
    })
}
