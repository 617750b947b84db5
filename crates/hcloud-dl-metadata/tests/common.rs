//! Shared helpers of the downloader integration tests: a fake server per test, a temp root
//! with DMI files, and running the real binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use hcloud_fake_metadata::{FakeServer, Scenario, Source};
use hcloud_metadata::{Document, parse_private_networks, parse_summary};

pub const SCENARIO: &str = r##"
server:
  id: 42
  name: app-7
  public_mac: "96:00:00:11:22:33"
  public_ipv4: 203.0.113.10
  public_ipv6: "2001:db8:1:2::/64"
  public_keys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGhjbG91ZC1hZ2VudHMtZXhhbXBsZS1rZXktMDAwMDAw alice@laptop"]
  private_networks:
    - {ip: 10.0.0.2, alias_ips: [10.0.0.3], interface_num: 1, mac_address: "86:00:00:00:00:01", network_id: 1001, network_name: backend, network: 10.0.0.0/16, subnet: 10.0.0.0/24, gateway: 10.0.0.1}
  userdata: "#cloud-config\nhello: 1\n"
  vendor_data: "#cloud-config\npassword: secret-hash\n"
"##;

pub fn scenario_with(extra: &str) -> Scenario {
    Scenario::from_yaml(&format!("{SCENARIO}{extra}")).expect("test scenario")
}

pub fn fake(sc: Scenario) -> FakeServer {
    FakeServer::start("127.0.0.1:0", Source::Fixed(sc)).expect("start fake")
}

/// A temp root with DMI saying Hetzner and the given serial (None: not a Hetzner machine).
pub fn root_with_serial(serial: Option<&str>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    if let Some(serial) = serial {
        let dmi = dir.path().join("sys/class/dmi/id");
        std::fs::create_dir_all(&dmi).unwrap();
        std::fs::write(dmi.join("sys_vendor"), "Hetzner\n").unwrap();
        std::fs::write(dmi.join("product_serial"), format!("{serial}\n")).unwrap();
    }
    std::fs::create_dir_all(dir.path().join("etc")).unwrap();
    dir
}

pub fn run(bin: &str, url: &str, root: &Path, extra: &[&str]) -> Output {
    Command::new(bin)
        .args(["--metadata-url", url, "--root"])
        .arg(root)
        .args(extra)
        .env_remove("HCLOUD_METADATA_URL")
        .env_remove("JOURNAL_STREAM")
        .output()
        .expect("run binary")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A URL where nothing listens (a port that was just freed).
pub fn dead_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    format!("http://{addr}/hetzner/v1/")
}

pub fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

pub fn path(root: &Path, p: &str) -> PathBuf {
    root.join(p.trim_start_matches('/'))
}

pub fn is_root() -> bool {
    nix_uid() == 0
}

fn nix_uid() -> u32 {
    // Avoid a dependency for one call: /proc/self/status has the real uid.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.to_string())
        })
        .and_then(|l| l.split_whitespace().nth(1).and_then(|u| u.parse().ok()))
        .unwrap_or(u32::MAX)
}

/// The address the route tests point the downloaders at (TEST-NET-2); it exists only inside
/// the network namespace [`run_behind_route`] creates.
pub const ROUTED_ADDRESS: &str = "198.51.100.7";

/// Run `bin --metadata-url http://ROUTED_ADDRESS/hetzner/v1/ --root ROOT EXTRA...` in a network
/// namespace of its own (`unshare --net`) whose only route to [`ROUTED_ADDRESS`] is of `kind`
/// (`prohibit`, as systemd-imds adds in locked mode, or `unreachable`). No packet leaves that
/// namespace. Returns the output and how long the run took.
pub fn run_behind_route(
    bin: &str,
    kind: &str,
    root: &Path,
    extra: &[&str],
) -> (Output, std::time::Duration) {
    assert!(
        is_root(),
        "this test needs root (a network namespace with its own routes); run the suite as root"
    );
    let script = format!(
        r#"set -eu
ip link set lo up
ip route add {kind} {ROUTED_ADDRESS}/32
exec "$@""#
    );
    let start = std::time::Instant::now();
    let out = Command::new("unshare")
        .args(["--net", "sh", "-c", &script, "sh", bin, "--metadata-url"])
        .arg(format!("http://{ROUTED_ADDRESS}/hetzner/v1/"))
        .arg("--root")
        .arg(root)
        .args(extra)
        .env_remove("HCLOUD_METADATA_URL")
        .env_remove("JOURNAL_STREAM")
        .output()
        .expect("run unshare");
    (out, start.elapsed())
}

/// Where the document lives on the server.
pub const DOC: &str = "/etc/hcloud-metadata.json";

/// The document the downloader writes for `sc`.
pub fn expected_document(sc: &hcloud_fake_metadata::Scenario) -> Vec<u8> {
    let summary = parse_summary(&hcloud_fake_metadata::render::summary(sc)).unwrap();
    let private =
        parse_private_networks(&hcloud_fake_metadata::render::private_networks(sc)).unwrap();
    Document::from_service(&summary, &private.networks).to_json()
}

/// A previous document of instance `id` on disk.
pub fn previous(root: &std::path::Path, id: u64) -> Vec<u8> {
    let mut sc = scenario_with("");
    sc.server.id = id;
    sc.server.name = "previous".into();
    let bytes = expected_document(&sc);
    std::fs::write(path(root, DOC), &bytes).unwrap();
    bytes
}
