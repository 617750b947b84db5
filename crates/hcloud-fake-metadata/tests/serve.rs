//! The fake answers like the service: paths, status codes, formats, live scenario changes and
//! faults. Plain HTTP requests over a TcpStream, so nothing here depends on the agents' client.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use hcloud_fake_metadata::{FakeServer, Scenario, Source};

const SCENARIO: &str = r##"
server:
  id: 42
  name: app-7
  public_mac: "96:00:00:11:22:33"
  public_ipv4: 203.0.113.10
  public_ipv6: "2001:db8:1:2::/64"
  public_keys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGhjbG91ZC1hZ2VudHMtZXhhbXBsZS1rZXktMDAwMDAw alice@laptop"]
  private_networks:
    - {ip: 10.0.0.2, alias_ips: [10.0.0.3, 10.0.0.4], interface_num: 1, mac_address: "86:00:00:00:00:01", network_id: 1001, network_name: backend, network: 10.0.0.0/16, subnet: 10.0.0.0/24, gateway: 10.0.0.1}
  volumes:
    - {id: 100001, automount: true}
    - {id: 100002, automount: false}
"##;

/// (status, body) of a GET, or None when the connection closed without an answer.
fn get(server: &FakeServer, path: &str) -> Option<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect(server.addr()).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n").ok()?;
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, raw[split + 4..].to_vec()))
}

fn text(server: &FakeServer, path: &str) -> (u16, String) {
    let (s, b) = get(server, path).expect("an answer");
    (s, String::from_utf8(b).expect("utf-8"))
}

fn start(extra: &str) -> FakeServer {
    let sc = Scenario::from_yaml(&format!("{SCENARIO}{extra}")).expect("scenario");
    FakeServer::start("127.0.0.1:0", Source::Fixed(sc)).expect("start")
}

#[test]
fn summary_is_alphabetical_block_yaml_with_an_integer_instance_id() {
    let f = start("");
    let (status, body) = text(&f, "/hetzner/v1/metadata");
    assert_eq!(status, 200);
    let keys: Vec<&str> = body
        .lines()
        .filter(|l| !l.starts_with([' ', '-']))
        .map(|l| l.split(':').next().unwrap())
        .collect();
    assert_eq!(
        keys,
        [
            "availability-zone",
            "hostname",
            "instance-id",
            "local-ipv4",
            "network-config",
            "public-ipv4",
            "public-keys",
            "region"
        ]
    );
    assert!(
        body.contains("\ninstance-id: 42\n") && body.contains("\nlocal-ipv4: ''\n"),
        "{body}"
    );
    // An all-digit MAC is quoted, as a YAML 1.1 emitter must (base-60 integer otherwise).
    assert!(
        body.contains("- mac_address: '96:00:00:11:22:33'\n"),
        "{body}"
    );
    assert!(
        body.contains("    - address: 2001:db8:1:2::1/64\n"),
        "{body}"
    );
}

#[test]
fn private_networks_keep_the_services_key_order() {
    let f = start("");
    let (status, body) = text(&f, "/hetzner/v1/metadata/private-networks");
    assert_eq!(status, 200);
    assert_eq!(
        body,
        "- ip: 10.0.0.2\n  alias_ips: [10.0.0.3, 10.0.0.4]\n  interface_num: 1\n  mac_address: '86:00:00:00:00:01'\n  network_id: 1001\n  network_name: backend\n  network: 10.0.0.0/16\n  subnet: 10.0.0.0/24\n  gateway: 10.0.0.1\n"
    );
    assert!(body.contains("network_id: 1001\n"));
}

#[test]
fn leaves_userdata_and_unknown_paths() {
    let f = start("options:\n  leaf_trailing_newline: true\n");
    assert_eq!(
        text(&f, "/hetzner/v1/metadata/hostname"),
        (200, "app-7\n".into())
    );
    assert_eq!(
        text(&f, "/hetzner/v1/metadata/instance-id"),
        (200, "42\n".into())
    );
    assert_eq!(
        text(&f, "/hetzner/v1/metadata/public-ipv4"),
        (200, "203.0.113.10\n".into())
    );
    let (s, keys) = text(&f, "/hetzner/v1/metadata/public-keys");
    assert_eq!(s, 200);
    assert!(
        keys.starts_with("[\"ssh-ed25519 ") && keys.ends_with("\"]"),
        "{keys}"
    );
    assert_eq!(get(&f, "/hetzner/v1/userdata").unwrap().0, 204);
    assert_eq!(get(&f, "/latest/meta-data/hostname").unwrap().0, 404);
    assert_eq!(get(&f, "/hetzner/v1/nothing").unwrap().0, 404);
}

#[test]
fn ipv6_only_and_no_public_network_shapes() {
    let mut sc = Scenario::from_yaml(SCENARIO).unwrap();
    sc.server.public_ipv4 = None;
    let f = FakeServer::start("127.0.0.1:0", Source::Fixed(sc.clone())).unwrap();
    let (_, body) = text(&f, "/hetzner/v1/metadata");
    assert!(
        !body.contains("public-ipv4") && !body.contains("type: dhcp"),
        "{body}"
    );
    assert_eq!(get(&f, "/hetzner/v1/metadata/public-ipv4").unwrap().0, 404);
    sc.options.missing_ipv4 = hcloud_fake_metadata::scenario::MissingIpv4::Empty;
    f.set_scenario(sc.clone());
    assert!(
        text(&f, "/hetzner/v1/metadata")
            .1
            .contains("\npublic-ipv4: ''\n")
    );
    assert_eq!(
        text(&f, "/hetzner/v1/metadata/public-ipv4"),
        (200, String::new())
    );
    sc.server.public_ipv6 = None;
    f.set_scenario(sc);
    assert!(
        text(&f, "/hetzner/v1/metadata")
            .1
            .contains("network-config:\n  config: []\n  version: 1\n")
    );
}

#[test]
fn faults_apply_in_order_and_run_out() {
    let f = start(
        "faults:\n  - {path: /hetzner/v1/metadata, count: 2, status: 503}\n  - {path: /hetzner/v1/metadata/hostname, truncate_to: 2}\n  - {path: /hetzner/v1/userdata, drop: true}\n",
    );
    assert_eq!(get(&f, "/hetzner/v1/metadata").unwrap().0, 503);
    assert_eq!(get(&f, "/hetzner/v1/metadata").unwrap().0, 503);
    assert_eq!(get(&f, "/hetzner/v1/metadata").unwrap().0, 200);
    assert_eq!(
        get(&f, "/hetzner/v1/metadata/hostname"),
        Some((200, b"ap".to_vec()))
    );
    assert_eq!(get(&f, "/hetzner/v1/userdata"), None);
    let statuses: Vec<_> = f.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [Some(503), Some(503), Some(200), Some(200), None]);
}

#[test]
fn for_secs_limits_a_fault_in_time() {
    let f = start("faults:\n  - {path: \"*\", for_secs: 0.5, status: 503}\n");
    assert_eq!(get(&f, "/hetzner/v1/metadata").unwrap().0, 503);
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(get(&f, "/hetzner/v1/metadata").unwrap().0, 200);
}

#[test]
fn volume_automount_endpoint_answers_only_for_automount_within_the_window() {
    let f = start("options:\n  automount_window_secs: 1\n");
    assert_eq!(get(&f, "/_internal/v1/volumes/100001").unwrap().0, 200);
    assert_eq!(get(&f, "/_internal/v1/volumes/100002").unwrap().0, 404);
    assert_eq!(get(&f, "/_internal/v1/volumes/999").unwrap().0, 404);
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(get(&f, "/_internal/v1/volumes/100001").unwrap().0, 404);
}

#[test]
fn a_scenario_file_is_reloaded_when_it_changes_and_a_broken_one_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.yaml");
    std::fs::write(&path, SCENARIO).unwrap();
    let f = FakeServer::start("127.0.0.1:0", Source::File(path.clone())).unwrap();
    assert_eq!(text(&f, "/hetzner/v1/metadata/hostname").1, "app-7");
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(
        &path,
        SCENARIO.replace("name: app-7", "name: renamed-server"),
    )
    .unwrap();
    assert_eq!(
        text(&f, "/hetzner/v1/metadata/hostname").1,
        "renamed-server"
    );
    std::fs::write(&path, "server: [not, a, server]\n").unwrap();
    assert_eq!(
        text(&f, "/hetzner/v1/metadata/hostname").1,
        "renamed-server"
    );
}

#[test]
fn bad_scenarios_are_refused_with_a_reason() {
    let e = Scenario::from_yaml("server:\n  id: 1\n  name: x\n  public_ipv4: 203.0.113.1\n")
        .unwrap_err();
    assert!(format!("{e:#}").contains("public_mac is required"), "{e:#}");
    let e = Scenario::from_yaml("server:\n  id: 1\n  name: x\n  colour: red\n").unwrap_err();
    assert!(format!("{e:#}").contains("colour"), "{e:#}");
}

#[test]
fn a_yaml_1_1_parser_reads_the_summary_as_intended() {
    // PyYAML (YAML 1.1, what cloud-init uses) must see the all-digit MAC as text and the
    // instance id as an integer: the quoting bug that broke cloud-init 22.4 stays fixed.
    let f = start("");
    let (_, body) = text(&f, "/hetzner/v1/metadata");
    let check = "import sys, yaml, json; d = yaml.safe_load(sys.stdin); \
                 print(json.dumps([d['network-config']['config'][0]['mac_address'], d['instance-id'], d['public-ipv4']]))";
    let mut child = std::process::Command::new("/usr/bin/python3")
        .args(["-c", check])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("/usr/bin/python3 with python3-yaml (scripts/install-deps installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "PyYAML failed on:\n{body}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        r#"["96:00:00:11:22:33", 42, "203.0.113.10"]"#
    );
}
