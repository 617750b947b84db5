//! Property tests of both parsers: any bytes, and documents built from random values, never
//! make them panic; a bad value drops only itself (the other values of the answer survive);
//! every text keeps its exact text; the document round-trips through its JSON.

use hcloud_metadata::{Document, parse_private_networks, parse_summary};
use proptest::prelude::*;

/// Text YAML would type or choke on, and plain names.
fn scalar() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("08".to_string()),
        Just("3e8".to_string()),
        Just("0o17".to_string()),
        Just("yes".to_string()),
        Just("1e400".to_string()),
        Just(".inf".to_string()),
        Just("0x1F".to_string()),
        "[a-z][a-z0-9-]{0,20}",
        "[0-9]{1,30}",
    ]
}

fn private_entry(i: usize, mac_ok: bool, name: &str) -> String {
    let mac = if mac_ok {
        format!("86:00:00:00:00:{i:02x}")
    } else {
        format!("86:00:00:00:{i:02x}")
    };
    format!(
        "- ip: 10.0.{i}.2\n  interface_num: {i}\n  mac_address: {mac}\n  network_id: {i}\n  network_name: {name}\n  network: 10.0.0.0/8\n  gateway: 10.0.0.1\n"
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = parse_summary(&text);
        let _ = parse_private_networks(&text);
    }

    #[test]
    fn any_yamlish_text_never_panics(text in "[-:\\[\\]{}&*!|>'\"#%@` \n\ta-z0-9.]{0,400}") {
        let _ = parse_summary(&text);
        let _ = parse_private_networks(&text);
    }

    #[test]
    fn names_keep_their_text_and_one_bad_entry_drops_only_itself(
        hostname in scalar(),
        names in proptest::collection::vec(scalar(), 1..6),
        bad in proptest::option::of(0usize..6),
    ) {
        let summary = format!(
            "availability-zone: fsn1-dc14\nhostname: {hostname}\ninstance-id: 42\nnetwork-config:\n  config: []\npublic-keys: []\nregion: eu-central\n"
        );
        let s = parse_summary(&summary).unwrap();
        prop_assert_eq!(s.hostname.as_deref(), Some(hostname.as_str()));
        prop_assert!(s.lacking.is_empty());
        let body: String = names
            .iter()
            .enumerate()
            .map(|(i, n)| private_entry(i + 1, Some(i) != bad, n))
            .collect();
        let p = parse_private_networks(&body).unwrap();
        let kept: Vec<&str> = names
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != bad)
            .map(|(_, n)| n.as_str())
            .collect();
        let got: Vec<&str> = p.networks.iter().map(|n| n.network_name.as_deref().unwrap()).collect();
        prop_assert_eq!(got, kept);
        prop_assert_eq!(p.warnings.len(), usize::from(bad.is_some_and(|b| b < names.len())));
        let doc = Document::from_service(&s, &p.networks);
        prop_assert_eq!(Document::from_json(&doc.to_json()).unwrap(), doc);
    }
}
