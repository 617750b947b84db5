//! Shared by the `--root` tests: a document in a temp tree and a run of the real binary.
#![allow(dead_code)]

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use hcloud_metadata::{Document, Network};

pub const BIN: &str = env!("CARGO_BIN_EXE_hcloud-hostname");

pub fn write_doc(root: &Path, instance_id: u64, hostname: Option<&str>) {
    let doc = Document {
        instance_id,
        hostname: hostname.map(Into::into),
        region: Some("eu-central".into()),
        availability_zone: None,
        ssh_keys: vec![],
        network: Network::default(),
    };
    fs::create_dir_all(root.join("etc")).unwrap();
    fs::write(root.join("etc/hcloud-metadata.json"), doc.to_json()).unwrap();
}

/// `hcloud-hostname --root ROOT EXTRA...`; its stderr is echoed for the test's output.
pub fn run_with(root: &Path, extra: &[&str]) -> Output {
    let out = Command::new(BIN)
        .arg("--root")
        .arg(root)
        .args(extra)
        .env_remove("JOURNAL_STREAM")
        // Must never be used with a root other than /.
        .env("HCLOUD_HOSTNAME_DBUS_ADDRESS", "unix:path=/nonexistent/bus")
        .output()
        .unwrap();
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    out
}

pub fn run(root: &Path) -> Output {
    run_with(root, &[])
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
