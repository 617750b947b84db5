//! Bad answers from the service get an error that names what was wrong.

use hcloud_metadata::{ParseError, parse_private_networks, parse_summary};

fn err(text: &str) -> String {
    parse_summary(text).expect_err("should fail").to_string()
}

#[test]
fn garbage_is_not_yaml() {
    let e = err("\u{0}\u{ff}{{{ not: [yaml\n\t- :\n");
    assert!(e.starts_with("metadata: not valid YAML"), "{e}");
}

#[test]
fn missing_instance_id_is_named() {
    assert_eq!(
        parse_summary("hostname: x\n"),
        Err(ParseError::Missing {
            what: "metadata",
            key: "instance-id"
        })
    );
}

#[test]
fn a_truncated_summary_fails_instead_of_yielding_half_a_document() {
    // The first bytes of a real summary: valid YAML, but no instance id.
    let e = err("availability-zone: nbg1-dc3\nhostname: app-7\ninst");
    assert!(e.contains("instance-id") || e.contains("YAML"), "{e}");
}

#[test]
fn a_list_is_not_a_summary() {
    assert!(err("- a\n- b\n").contains("expected a YAML mapping, got a list"));
}

#[test]
fn bad_values_name_their_key() {
    assert!(err("instance-id: -5\n").contains("`instance-id`"));
    let warnings = |text: &str| parse_summary(text).expect("parses").warnings.join("\n");
    assert!(warnings("instance-id: 1\npublic-ipv4: 999.1.1.1\n").contains("`public-ipv4`"));
    let w = warnings(
        "instance-id: 1\nnetwork-config:\n  config:\n  - type: physical\n    mac_address: zz:00\n",
    );
    assert!(w.contains("mac_address") && w.contains("zz:00"), "{w}");
    let w = warnings(
        "instance-id: 1\nnetwork-config:\n  config:\n  - type: physical\n    mac_address: 96:00:00:00:00:01\n    subnets:\n    - address: nope/64\n",
    );
    assert!(w.contains("subnets[0].address"), "{w}");
}

#[test]
fn private_networks_errors_name_the_entry() {
    let p = parse_private_networks("- ip: 10.0.0.2\n  interface_num: one\n").unwrap();
    assert!(p.networks.is_empty());
    let w = p.warnings.join("\n");
    assert!(
        w.contains("metadata/private-networks[0]") && w.contains("interface_num"),
        "{w}"
    );
    let e = parse_private_networks("ip: 10.0.0.2\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("expected a YAML list"), "{e}");
    assert_eq!(parse_private_networks("").unwrap().networks, vec![]);
    assert_eq!(parse_private_networks("[]\n").unwrap().networks, vec![]);
}

#[test]
fn an_unquoted_all_digit_mac_stays_a_mac() {
    // YAML 1.1 would read this as a base-60 integer; the service may send it either way.
    let s = parse_summary(
        "instance-id: 1\nnetwork-config:\n  config:\n  - type: physical\n    mac_address: 96:00:00:11:22:33\n",
    )
    .unwrap();
    assert_eq!(
        s.public_network.and_then(|n| n.mac_address).as_deref(),
        Some("96:00:00:11:22:33")
    );
    let p =
        parse_private_networks("- mac_address: 86:00:00:00:00:01\n  interface_num: 1\n").unwrap();
    assert_eq!(
        p.networks[0].mac_address.as_deref(),
        Some("86:00:00:00:00:01")
    );
}
