//! One bad value drops that value or entry, with a warning naming it; the rest is kept. Only a
//! body that is not YAML, the wrong overall shape, or a missing or bad instance id is fatal.
//! Every text keeps the exact text that was sent (no YAML typing).

use hcloud_metadata::{Document, parse_private_networks, parse_summary};

const GOOD_CONFIG: &str = "network-config:
  config:
  - mac_address: 96:00:00:11:22:33
    name: eth0
    subnets:
    - ipv4: true
      type: dhcp
    - address: 2001:db8:1:2::1/64
      dns_nameservers: [2a01:4ff:ff00::add:1, not-an-ip, 2a01:4ff:ff00::add:2]
      gateway: fe80::1
      ipv6: true
      type: static
    type: physical
  version: 1
";

fn summary_with(extra: &str) -> String {
    format!("instance-id: 42\nhostname: app-7\npublic-keys: [ssh-ed25519 AAAA k]\n{extra}")
}

#[test]
fn a_bad_nameserver_is_dropped_and_the_rest_applied() {
    let s = parse_summary(&summary_with(GOOD_CONFIG)).unwrap();
    let net = s.public_network.as_ref().unwrap();
    assert_eq!(net.mac_address.as_deref(), Some("96:00:00:11:22:33"));
    assert_eq!(net.nameservers.len(), 2);
    assert_eq!(
        net.ipv6.map(|(a, p)| (a.to_string(), p)),
        Some(("2001:db8:1:2::1".into(), 64))
    );
    assert_eq!(s.warnings.len(), 1, "{:?}", s.warnings);
    assert!(s.warnings[0].contains("not-an-ip") && s.warnings[0].contains("dns_nameservers"));
}

#[test]
fn an_ipv6_address_with_a_zone_id_is_dropped_and_ipv4_kept() {
    let cfg = GOOD_CONFIG.replace("2001:db8:1:2::1/64", "2001:db8:1:2::1%eth0/64");
    let s = parse_summary(&summary_with(&format!("public-ipv4: 203.0.113.10\n{cfg}"))).unwrap();
    let doc = Document::from_service(&s, &[]);
    assert_eq!(doc.network.ipv4_address.as_deref(), Some("203.0.113.10"));
    assert_eq!(doc.network.ipv6_subnet, None);
    assert_eq!(doc.ssh_keys, ["ssh-ed25519 AAAA k"]);
    assert!(
        s.warnings.iter().any(|w| w.contains("%eth0")),
        "{:?}",
        s.warnings
    );
}

#[test]
fn a_bad_public_ipv4_is_dropped_not_fatal() {
    let s = parse_summary(&summary_with(&format!(
        "public-ipv4: 999.1.1.1\n{GOOD_CONFIG}"
    )))
    .unwrap();
    assert_eq!(s.public_ipv4, None);
    assert!(
        s.warnings
            .iter()
            .any(|w| w.contains("public-ipv4") && w.contains("999.1.1.1"))
    );
    assert_eq!(s.hostname.as_deref(), Some("app-7"));
}

#[test]
fn only_the_instance_id_and_the_shape_are_fatal() {
    assert!(
        parse_summary("instance-id: -5\n")
            .unwrap_err()
            .to_string()
            .contains("instance-id")
    );
    assert!(parse_summary("hostname: x\n").is_err());
    assert!(parse_summary("- a\n").is_err());
    assert!(parse_summary("a: [\n").is_err());
}

#[test]
fn one_bad_private_network_is_dropped_and_the_others_kept() {
    let body = "- ip: 10.0.0.2
  interface_num: 1
  mac_address: 86:00:00:00:00:01
  network_id: 1001
  network_name: backend
  network: 10.0.0.0/16
  subnet: 10.0.0.0/24
  gateway: 10.0.0.1
- ip: 10.1.0.2
  interface_num: 2
  mac_address: zz:00
  network: 10.1.0.0/16
- ip: 10.2.0.2
  interface_num: two
  mac_address: 86:00:00:00:00:03
- just a string
- ip: 10.3.0.2
  interface_num: 4
  mac_address: 86:00:00:00:00:04
  network_id: [1]
";
    let p = parse_private_networks(body).unwrap();
    let macs: Vec<_> = p
        .networks
        .iter()
        .map(|n| n.mac_address.clone().unwrap())
        .collect();
    assert_eq!(macs, ["86:00:00:00:00:01", "86:00:00:00:00:04"]);
    assert_eq!(p.networks[1].network_id, None);
    assert_eq!(p.warnings.len(), 4, "{:?}", p.warnings);
    assert!(p.warnings[0].contains("[1]") && p.warnings[0].contains("zz:00"));
    assert!(p.warnings[1].contains("[2]") && p.warnings[1].contains("interface_num"));
    assert!(p.warnings[2].contains("[3]"));
    assert!(p.warnings[3].contains("[4]") && p.warnings[3].contains("network_id"));
}

#[test]
fn names_keep_their_exact_text() {
    for name in [
        "08", "3e8", "0o17", "yes", "1e400", "0x1F", "true", "null-ish", ".inf",
    ] {
        let s = parse_summary(&format!(
            "instance-id: 42\nhostname: {name}\npublic-keys: []\nnetwork-config: {{config: []}}\n"
        ))
        .unwrap();
        assert_eq!(s.hostname.as_deref(), Some(name), "hostname {name}");
        let p = parse_private_networks(&format!(
            "- {{ip: 10.0.0.2, interface_num: 1, mac_address: 86:00:00:00:00:01, network_name: {name}}}\n"
        ))
        .unwrap();
        assert_eq!(
            p.networks[0].network_name.as_deref(),
            Some(name),
            "network {name}"
        );
    }
}

#[test]
fn an_absent_key_is_not_an_empty_one() {
    let s = parse_summary("instance-id: 42\nhostname: x\n").unwrap();
    assert_eq!(s.public_keys, None);
    assert_eq!(s.public_network, None);
    let s =
        parse_summary("instance-id: 42\npublic-keys: []\nnetwork-config:\n  config: []\n").unwrap();
    assert_eq!(s.public_keys, Some(vec![]));
    assert_eq!(s.public_network.map(|n| n.mac_address), Some(None));
}

#[test]
fn an_unusable_keys_or_network_value_counts_as_lacking() {
    let full = "availability-zone: a\nhostname: h\ninstance-id: 42\nregion: r\n";
    let s = parse_summary(&format!("{full}public-keys: {{a: b}}\nnetwork-config: 5\n")).unwrap();
    assert_eq!(s.lacking, ["network-config", "public-keys"]);
    let s = parse_summary(&format!(
        "{full}public-keys: []\nnetwork-config: {{config: []}}\n"
    ))
    .unwrap();
    assert!(s.lacking.is_empty(), "{:?}", s.lacking);
}
