//! Property test of the renderer: random documents (valid and broken values mixed) never make
//! it panic; every entry is either rendered or named in a problem; no file ever routes every
//! address through a private network.

use hcloud_metadata::{Document, Network, PrivateNetwork};
use hcloud_network::render::{RenderOptions, render};
use proptest::prelude::*;

fn value() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(prop_oneof![
        "10\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}",
        "10\\.0\\.0\\.0/(0|8|16|24|33)",
        "0\\.0\\.0\\.0/0",
        "86:00:00:[0-9a-f]{2}:[0-9a-f]{2}:[0-9a-g]{2}",
        "[ -~]{0,20}",
    ])
}

fn private() -> impl Strategy<Value = PrivateNetwork> {
    (
        value(),
        value(),
        value(),
        value(),
        proptest::collection::vec("[ -~]{0,16}", 0..3),
    )
        .prop_map(|(ip, mac, network, gateway, alias_ips)| PrivateNetwork {
            ip,
            alias_ips,
            interface_num: Some(1),
            mac_address: mac,
            network_id: Some(1),
            network_name: Some("n".into()),
            network,
            subnet: None,
            gateway,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_documents_render_or_name_their_problems(
        private in proptest::collection::vec(private(), 0..5),
        mac in value(),
        v4 in value(),
        v6 in proptest::option::of("(2001:db8::1|::|fe80::1%eth0|zz)/(0|64|129)"),
        dns in proptest::collection::vec("[ -~]{0,20}", 0..3),
    ) {
        let doc = Document {
            instance_id: 1,
            hostname: None,
            region: None,
            availability_zone: None,
            ssh_keys: vec![],
            network: Network {
                mac_address: mac,
                ipv4_address: v4,
                ipv6_subnet: v6.clone(),
                ipv6_address: v6,
                nameservers: dns,
                private: private.clone(),
                ..Network::default()
            },
        };
        let r = render(&doc, &RenderOptions::default());
        for text in r.files.values() {
            prop_assert!(!text.contains("Destination=0.0.0.0/0"), "{}", text);
            prop_assert!(!text.contains("/0\n"), "{}", text);
        }
        let private_files = r.files.keys().filter(|k| k.contains("private")).count();
        let private_skipped = r
            .problems
            .iter()
            .filter(|p| p.entry.contains("private") && p.effect == hcloud_network::render::Effect::Skipped)
            .count();
        prop_assert_eq!(private_files + private_skipped, private.len());
    }
}
