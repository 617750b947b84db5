//! `hcloud-image images`: the snapshots recorded in `packer-manifest.json` (written by the
//! templates' `manifest` post-processor) as a readable table, newest first.

use anyhow::{Context, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Deserialize)]
struct PackerManifest {
    #[serde(default)]
    builds: Vec<PackerBuild>,
}

#[derive(Debug, Deserialize)]
struct PackerBuild {
    #[serde(default)]
    name: String,
    #[serde(default)]
    build_time: i64,
    #[serde(default)]
    artifact_id: String,
    #[serde(default)]
    custom_data: BTreeMap<String, String>,
}

/// One snapshot a build produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub snapshot_id: String,
    pub name: String,
    pub build: String,
    pub build_time: i64,
    /// The snapshot labels (the manifest's custom data carries the same keys).
    pub labels: BTreeMap<String, String>,
}

/// Parse a `packer-manifest.json`; newest build first.
pub fn parse(json: &str) -> Result<Vec<Image>> {
    let m: PackerManifest = serde_json::from_str(json).context("parsing the packer manifest")?;
    let mut out: Vec<Image> = m
        .builds
        .into_iter()
        .map(|b| {
            let mut labels = b.custom_data;
            let name = labels.remove("snapshot-name").unwrap_or_default();
            Image {
                snapshot_id: b.artifact_id,
                name,
                build: b.name,
                build_time: b.build_time,
                labels,
            }
        })
        .collect();
    out.sort_by(|a, b| {
        b.build_time
            .cmp(&a.build_time)
            .then(b.snapshot_id.cmp(&a.snapshot_id))
    });
    Ok(out)
}

pub fn load(path: &Path) -> Result<Vec<Image>> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "reading {} (it is written by a successful packer build)",
            path.display()
        )
    })?;
    parse(&text).with_context(|| format!("{}", path.display()))
}

/// UTC `YYYY-MM-DD hh:mm` of a Unix time (civil-from-days, no time zone database needed).
pub fn format_time(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        secs / 3600,
        secs % 3600 / 60
    )
}

/// The table: one line per snapshot, columns padded to their widest cell.
pub fn table(images: &[Image]) -> String {
    let header = [
        "SNAPSHOT",
        "NAME",
        "FLAVOR",
        "ARCH",
        "RELEASE",
        "AGENTS",
        "BUILT (UTC)",
    ];
    let mut rows = vec![header.map(str::to_string).to_vec()];
    for i in images {
        let l = |k: &str| i.labels.get(k).cloned().unwrap_or_else(|| "-".into());
        rows.push(vec![
            i.snapshot_id.clone(),
            if i.name.is_empty() {
                "-".into()
            } else {
                i.name.clone()
            },
            l("os-flavor"),
            l("arch"),
            l("distro-release"),
            l("agents-version"),
            format_time(i.build_time),
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = r#"{
      "builds": [
        {"name": "archlinux", "builder_type": "hcloud", "build_time": 1795000000, "files": null,
         "artifact_id": "111", "packer_run_uuid": "a",
         "custom_data": {"snapshot-name": "archlinux-20261115", "os-flavor": "archlinux", "arch": "x86_64",
                         "distro-release": "2026.11.01", "agents-version": "0.1.0-abc"}},
        {"name": "nixos", "builder_type": "hcloud", "build_time": 1796000000, "files": null,
         "artifact_id": "222", "packer_run_uuid": "b",
         "custom_data": {"snapshot-name": "nixos-26.05", "os-flavor": "nixos", "arch": "aarch64"}}
      ],
      "last_run_uuid": "b"
    }"#;

    #[test]
    fn builds_are_listed_newest_first_with_their_labels() {
        let imgs = parse(MANIFEST).unwrap();
        assert_eq!(imgs[0].snapshot_id, "222");
        assert_eq!(imgs[1].labels["distro-release"], "2026.11.01");
        let t = table(&imgs);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("SNAPSHOT  NAME"), "{t}");
        assert!(lines[1].starts_with("222       nixos-26.05"), "{t}");
        assert!(
            lines[2].contains("archlinux-20261115  archlinux  x86_64   2026.11.01"),
            "{t}"
        );
        assert!(lines[2].ends_with("2026-11-18 11:06"), "{t}");
    }

    #[test]
    fn civil_dates() {
        assert_eq!(format_time(0), "1970-01-01 00:00");
        assert_eq!(format_time(951_782_400), "2000-02-29 00:00");
        assert_eq!(format_time(1_795_000_000), "2026-11-18 11:06");
    }

    #[test]
    fn a_broken_manifest_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("packer-manifest.json");
        std::fs::write(&p, "{").unwrap();
        let e = format!("{:#}", load(&p).unwrap_err());
        assert!(e.contains("packer-manifest.json"), "{e}");
    }
}
