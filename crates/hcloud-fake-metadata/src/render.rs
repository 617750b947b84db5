//! What the real service serves, rendered from a scenario the way a YAML 1.1 emitter with
//! sorted keys (PyYAML's defaults) writes it: alphabetical keys in the summary, block style,
//! indentless sequences, `instance-id` as an integer, `local-ipv4: ''`, and scalars quoted only
//! where a YAML 1.1 parser would misread them (an all-digit MAC is a base-60 integer there).

use std::fmt::Write;

use crate::scenario::{MissingIpv4, Scenario};

/// Hetzner's resolvers, in the order the 2022 dumps show them.
const NS4: [&str; 2] = ["185.12.64.1", "185.12.64.2"];
const NS6: [&str; 2] = ["2a01:4ff:ff00::add:2", "2a01:4ff:ff00::add:1"];

fn is_digits(s: &str, allow_underscore: bool) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (allow_underscore && b == b'_'))
}

/// YAML 1.1 sexagesimal int or float: `[-+]?[0-9][0-9_]*(:[0-5]?[0-9])+(\.[0-9_]*)?`.
fn is_sexagesimal(s: &str) -> bool {
    let s = s.strip_prefix(['-', '+']).unwrap_or(s);
    let mut parts = s.split(':');
    let Some(first) = parts.next() else {
        return false;
    };
    if !first.starts_with(|c: char| c.is_ascii_digit()) || !is_digits(first, true) {
        return false;
    }
    let rest: Vec<&str> = parts.collect();
    if rest.is_empty() {
        return false;
    }
    rest.iter().enumerate().all(|(i, p)| {
        let p = if i == rest.len() - 1 {
            match p.split_once('.') {
                Some((a, frac)) if is_digits(frac, true) || frac.is_empty() => a,
                Some(_) => return false,
                None => p,
            }
        } else {
            p
        };
        match p.as_bytes() {
            [d] => d.is_ascii_digit(),
            [a, b] => (b'0'..=b'5').contains(a) && b.is_ascii_digit(),
            _ => false,
        }
    })
}

fn is_special_word(s: &str) -> bool {
    matches!(
        s.to_ascii_lowercase().as_str(),
        "y" | "n"
            | "yes"
            | "no"
            | "on"
            | "off"
            | "true"
            | "false"
            | "null"
            | "~"
            | ".inf"
            | "-.inf"
            | "+.inf"
            | ".nan"
    )
}

fn looks_numeric(s: &str) -> bool {
    let t = s.replace('_', "");
    t.parse::<i64>().is_ok()
        || t.parse::<f64>()
            .is_ok_and(|_| !t.contains(|c: char| c.is_ascii_alphabetic()) || t.contains('e'))
        || t.strip_prefix("0x")
            .is_some_and(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_hexdigit()))
        || t.strip_prefix("0b")
            .is_some_and(|b| !b.is_empty() && b.bytes().all(|c| c == b'0' || c == b'1'))
}

fn needs_quotes(s: &str) -> bool {
    s.is_empty()
        || s.trim() != s
        || is_special_word(s)
        || looks_numeric(s)
        || is_sexagesimal(s)
        || s.starts_with([
            '-', '?', ':', ',', '[', ']', '{', '}', '#', '&', '*', '!', '|', '>', '\'', '"', '%',
            '@', '`',
        ])
        || s.contains(": ")
        || s.contains(" #")
        || s.ends_with(':')
}

/// A scalar as a YAML 1.1 emitter would write it.
pub fn scalar(s: &str) -> String {
    if s.chars().any(|c| c.is_control()) {
        // Double-quoted with escapes, like PyYAML for text with newlines.
        serde_json::to_string(s).unwrap_or_default()
    } else if needs_quotes(s) {
        format!("'{}'", s.replace('\'', "''"))
    } else {
        s.to_string()
    }
}

fn flow_list(items: &[String]) -> String {
    let inner: Vec<String> = items.iter().map(|s| scalar(s)).collect();
    format!("[{}]", inner.join(", "))
}

/// `network-config` as a YAML block, indented by `indent` spaces (its keys start there).
pub fn network_config(sc: &Scenario, indent: usize) -> String {
    let s = &sc.server;
    let o = &sc.options;
    let pad = " ".repeat(indent);
    let mut out = String::new();
    let v6 = s.ipv6_host().ok().flatten();
    let has_v4_subnet = s.public_ipv4.is_some() || (o.dhcp_subnet_without_ipv4 && v6.is_some());
    match (&s.public_mac, has_v4_subnet || v6.is_some()) {
        (Some(mac), true) => {
            let _ = writeln!(out, "{pad}config:");
            let _ = writeln!(out, "{pad}- mac_address: {}", scalar(mac));
            let _ = writeln!(out, "{pad}  name: eth0");
            let _ = writeln!(out, "{pad}  subnets:");
            if has_v4_subnet {
                if o.ipv4_nameservers_in_config {
                    let _ = writeln!(out, "{pad}  - dns_nameservers:");
                    for ns in NS4 {
                        let _ = writeln!(out, "{pad}    - {ns}");
                    }
                    let _ = writeln!(out, "{pad}    ipv4: true");
                } else {
                    let _ = writeln!(out, "{pad}  - ipv4: true");
                }
                let _ = writeln!(out, "{pad}    type: dhcp");
            }
            if let Some((addr, len)) = v6 {
                let _ = writeln!(out, "{pad}  - address: {addr}/{len}");
                let _ = writeln!(out, "{pad}    dns_nameservers:");
                for ns in NS6 {
                    let _ = writeln!(out, "{pad}    - {}", scalar(ns));
                }
                let _ = writeln!(out, "{pad}    gateway: fe80::1");
                let _ = writeln!(out, "{pad}    ipv6: true");
                let _ = writeln!(out, "{pad}    type: static");
            }
            let _ = writeln!(out, "{pad}  type: physical");
        }
        _ => {
            let _ = writeln!(out, "{pad}config: []");
        }
    }
    let _ = writeln!(out, "{pad}version: 1");
    out
}

/// The summary served at `/hetzner/v1/metadata`.
pub fn summary(sc: &Scenario) -> String {
    let s = &sc.server;
    let mut out = String::new();
    let _ = writeln!(out, "availability-zone: {}", scalar(&s.availability_zone));
    let _ = writeln!(out, "hostname: {}", scalar(&s.name));
    let _ = writeln!(out, "instance-id: {}", s.id);
    let _ = writeln!(out, "local-ipv4: ''");
    let _ = writeln!(out, "network-config:");
    out.push_str(&network_config(sc, 2));
    match (s.public_ipv4, sc.options.missing_ipv4) {
        (Some(ip), _) => {
            let _ = writeln!(out, "public-ipv4: {ip}");
        }
        (None, MissingIpv4::Empty) => {
            let _ = writeln!(out, "public-ipv4: ''");
        }
        (None, _) => {}
    }
    if s.public_keys.is_empty() {
        let _ = writeln!(out, "public-keys: []");
    } else {
        let _ = writeln!(out, "public-keys:");
        for k in &s.public_keys {
            let _ = writeln!(out, "- {}", scalar(k));
        }
    }
    let _ = writeln!(out, "region: {}", scalar(&s.region));
    if let Some(v) = &s.vendor_data {
        let _ = writeln!(out, "vendor_data: {}", scalar(v));
    }
    out
}

/// `/hetzner/v1/metadata/private-networks`: block list, keys in the service's fixed order,
/// `network_id: N` followed by a newline (a consumer greps for exactly that).
pub fn private_networks(sc: &Scenario) -> String {
    let nets = &sc.server.private_networks;
    if nets.is_empty() {
        return "[]\n".into();
    }
    let mut out = String::new();
    for n in nets {
        let _ = writeln!(out, "- ip: {}", scalar(&n.ip));
        let _ = writeln!(out, "  alias_ips: {}", flow_list(&n.alias_ips));
        let _ = writeln!(out, "  interface_num: {}", n.interface_num);
        let _ = writeln!(out, "  mac_address: {}", scalar(&n.mac_address));
        let _ = writeln!(out, "  network_id: {}", n.network_id);
        let _ = writeln!(out, "  network_name: {}", scalar(&n.network_name));
        let _ = writeln!(out, "  network: {}", scalar(&n.network));
        let _ = writeln!(out, "  subnet: {}", scalar(&n.subnet));
        let _ = writeln!(out, "  gateway: {}", scalar(&n.gateway));
    }
    out
}

/// `metadata/public-keys`: a JSON array of strings.
pub fn public_keys_json(sc: &Scenario) -> String {
    serde_json::to_string(&sc.server.public_keys).unwrap_or_else(|_| "[]".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_what_yaml_1_1_would_misread() {
        assert_eq!(scalar("96:00:00:11:22:33"), "'96:00:00:11:22:33'");
        assert_eq!(scalar("96:00:00:ab:cd:ef"), "96:00:00:ab:cd:ef");
        assert_eq!(scalar("86:00:00:5e:6f:70"), "86:00:00:5e:6f:70");
        assert_eq!(scalar("10.0.0.2"), "10.0.0.2");
        assert_eq!(scalar("2001:db8::1/64"), "2001:db8::1/64");
        assert_eq!(scalar("2a01:4ff:ff00::add:1"), "2a01:4ff:ff00::add:1");
        assert_eq!(scalar(""), "''");
        assert_eq!(scalar("yes"), "'yes'");
        assert_eq!(scalar("123"), "'123'");
        assert_eq!(scalar("1e3"), "'1e3'");
        assert_eq!(scalar("a#b"), "a#b");
        assert_eq!(scalar("a #b"), "'a #b'");
        assert_eq!(scalar("it's: x"), "'it''s: x'");
        assert_eq!(
            scalar("#cloud-config\nx: 1\n"),
            "\"#cloud-config\\nx: 1\\n\""
        );
    }
}
