//! Shared helpers of the downloader integration tests: a fake server per test, a temp root
//! with DMI files, and running the real binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use hcloud_fake_metadata::{FakeServer, Scenario, Source};

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
