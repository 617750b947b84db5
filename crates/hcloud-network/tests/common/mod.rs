//! Helpers shared by the integration tests: temp roots and the real binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const BIN: &str = env!("CARGO_BIN_EXE_hcloud-network");

/// A temporary root with the document at /etc/hcloud-metadata.json.
pub struct TestRoot {
    pub dir: tempfile::TempDir,
}

impl TestRoot {
    pub fn new() -> TestRoot {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        TestRoot { dir }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel.trim_start_matches('/'))
    }

    pub fn write(&self, rel: &str, text: &str) {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    pub fn set_document(&self, text: &str) {
        self.write("/etc/hcloud-metadata.json", text);
    }

    pub fn network_dir(&self) -> PathBuf {
        self.path("/run/systemd/network")
    }

    /// Run the binary with `--root` plus `args`; logs go to stderr (no journal in tests).
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .arg("--root")
            .arg(self.dir.path())
            .args(args)
            .env_remove("JOURNAL_STREAM")
            .env_remove("HCLOUD_NETWORK_PRIVATE_DHCP")
            .output()
            .expect("run hcloud-network")
    }

    /// Names of the files in the output directory, sorted.
    pub fn files(&self) -> Vec<String> {
        list(&self.network_dir())
    }
}

pub fn list(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
