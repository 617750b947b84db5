//! `hcloud-image arch-release`: which Arch Linux bootstrap release to install. Asks the Arch
//! release API over HTTPS (or takes the release from an offline override) and derives the
//! bootstrap tarball's file name and URLs, so a build pins a dated release instead of guessing
//! the date.

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The release API (JSON with `latest_version` and a list of releases).
pub const DEFAULT_API_URL: &str = "https://archlinux.org/api/v1/releng/releases/";
/// Its deprecated predecessor, asked when the successor does not answer usefully.
pub const LEGACY_API_URL: &str = "https://archlinux.org/releng/releases/json/";
/// The pinned release key, relative to the workspace.
pub const RELEASE_KEY_FILE: &str = "packer/keys/archlinux-release.asc";
/// Where the bootstrap tarballs are downloaded from (`iso/<version>/...`).
pub const DEFAULT_MIRROR: &str = "https://geo.mirror.pkgbuild.com";
/// The key that signs the release files, pinned in `packer/keys/archlinux-release.asc`.
pub const RELEASE_KEY_FINGERPRINT: &str = "3E80CA1A8B89F69CBA57D98A76A5EF9054449A5C";

#[derive(Debug, Deserialize)]
struct ApiAnswer {
    latest_version: Option<String>,
    #[serde(default)]
    releases: Vec<ApiRelease>,
}

#[derive(Debug, Deserialize)]
struct ApiRelease {
    version: String,
    #[serde(default)]
    available: Option<bool>,
    #[serde(default)]
    kernel_version: Option<String>,
    #[serde(default)]
    release_date: Option<String>,
    #[serde(default)]
    pgp_fingerprint: Option<String>,
}

/// An Arch Linux release and the bootstrap files that belong to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Release {
    /// `YYYY.MM.DD`.
    pub version: String,
    pub release_date: Option<String>,
    pub kernel_version: Option<String>,
    /// The fingerprint the API names for the release signature, if it names one.
    pub pgp_fingerprint: Option<String>,
    /// `archlinux-bootstrap-<version>-x86_64.tar.zst`.
    pub file: String,
    pub url: String,
    pub signature_url: String,
}

/// A release version must look like `YYYY.MM.DD`.
pub fn check_version(v: &str) -> Result<()> {
    let parts: Vec<&str> = v.split('.').collect();
    let ok = parts.len() == 3
        && parts[0].len() == 4
        && parts[1].len() == 2
        && parts[2].len() == 2
        && parts.iter().all(|p| p.chars().all(|c| c.is_ascii_digit()));
    if !ok {
        bail!("invalid Arch Linux release {v:?}: expected YYYY.MM.DD, e.g. 2026.11.01");
    }
    Ok(())
}

/// The release files for `version` on `mirror` (its base URL, without `/iso`).
pub fn release_files(version: &str, mirror: &str) -> Result<Release> {
    check_version(version)?;
    let file = format!("archlinux-bootstrap-{version}-x86_64.tar.zst");
    let url = format!("{}/iso/{version}/{file}", mirror.trim_end_matches('/'));
    Ok(Release {
        version: version.to_string(),
        release_date: None,
        kernel_version: None,
        pgp_fingerprint: None,
        signature_url: format!("{url}.sig"),
        file,
        url,
    })
}

/// Pick the latest available release from the API's JSON answer.
pub fn parse_api(json: &str, mirror: &str) -> Result<Release> {
    let answer: ApiAnswer =
        serde_json::from_str(json).context("parsing the Arch Linux release API answer")?;
    let latest = match answer.latest_version {
        Some(v) if !v.is_empty() => v,
        _ => answer
            .releases
            .iter()
            .filter(|r| r.available != Some(false))
            .map(|r| r.version.clone())
            .max()
            .context("the Arch Linux release API answer names no release (no latest_version, no available release)")?,
    };
    let mut rel = release_files(&latest, mirror).context("latest_version of the release API")?;
    if let Some(r) = answer.releases.iter().find(|r| r.version == latest) {
        rel.release_date = r.release_date.clone();
        rel.kernel_version = r.kernel_version.clone();
        rel.pgp_fingerprint = r
            .pgp_fingerprint
            .as_ref()
            .map(|f| f.replace(' ', "").to_uppercase());
    }
    Ok(rel)
}

/// Ask the release API at `api_url` (HTTPS with rustls; plain HTTP for test servers).
pub fn fetch_latest(api_url: &str, mirror: &str, timeout: Duration) -> Result<Release> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .user_agent(concat!("hcloud-image/", env!("CARGO_PKG_VERSION")))
        .build()
        .into();
    let mut resp = agent
        .get(api_url)
        .call()
        .with_context(|| format!("asking the Arch Linux release API {api_url}"))?;
    let body = resp
        .body_mut()
        .with_config()
        .limit(16 * 1024 * 1024)
        .read_to_string()
        .with_context(|| format!("reading the answer of {api_url}"))?;
    parse_api(&body, mirror).with_context(|| format!("answer of {api_url}"))
}

/// [`fetch_latest`] from each of `api_urls` in turn until one answers with a release; the error
/// names what each said.
pub fn fetch_latest_of(api_urls: &[&str], mirror: &str, timeout: Duration) -> Result<Release> {
    let mut errors = Vec::new();
    for url in api_urls {
        match fetch_latest(url, mirror, timeout) {
            Ok(r) => return Ok(r),
            Err(e) => errors.push(format!("{e:#}")),
        }
    }
    bail!("no Arch Linux release API answered: {}", errors.join("; "))
}

/// The v4 fingerprint (40 hex digits, upper case) of the first public key in an ASCII-armored
/// OpenPGP key block.
pub fn armored_key_fingerprint(armored: &str) -> Result<String> {
    use base64::Engine;
    use sha1::{Digest, Sha1};
    let mut lines = armored.lines().map(str::trim);
    lines
        .by_ref()
        .find(|l| *l == "-----BEGIN PGP PUBLIC KEY BLOCK-----")
        .context("no -----BEGIN PGP PUBLIC KEY BLOCK----- line")?;
    // Armor headers end at the first empty line; the checksum line starts with `=`.
    let body: String = lines
        .skip_while(|l| l.contains(": "))
        .take_while(|l| !l.starts_with("-----END"))
        .filter(|l| !l.is_empty() && !l.starts_with('='))
        .collect();
    let data = base64::engine::general_purpose::STANDARD
        .decode(body)
        .context("the key block is not base64")?;
    let first = *data.first().context("the key block is empty")?;
    if first & 0x80 == 0 {
        bail!("the key block does not start with an OpenPGP packet");
    }
    let (tag, header, len) = if first & 0x40 != 0 {
        let tag = first & 0x3f;
        match data.get(1).copied() {
            Some(l @ 0..=191) => (tag, 2, l as usize),
            Some(l @ 192..=223) => {
                let l2 = *data.get(2).context("truncated packet length")? as usize;
                (tag, 3, ((l as usize - 192) << 8) + l2 + 192)
            }
            Some(255) => {
                let b = data.get(2..6).context("truncated packet length")?;
                (
                    tag,
                    6,
                    u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize,
                )
            }
            _ => bail!("unsupported packet length in the key block"),
        }
    } else {
        let tag = (first >> 2) & 0x0f;
        match first & 3 {
            0 => (tag, 2, *data.get(1).context("truncated packet")? as usize),
            1 => {
                let b = data.get(1..3).context("truncated packet")?;
                (tag, 3, u16::from_be_bytes([b[0], b[1]]) as usize)
            }
            2 => {
                let b = data.get(1..5).context("truncated packet")?;
                (
                    tag,
                    5,
                    u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize,
                )
            }
            _ => bail!("indeterminate packet length in the key block"),
        }
    };
    if tag != 6 {
        bail!("the first packet is not a public key (tag {tag})");
    }
    let key = data
        .get(header..header + len)
        .context("the public key packet is truncated")?;
    if key.first() != Some(&4) {
        bail!("the public key is not a version 4 key");
    }
    let len16 = u16::try_from(len).context("the public key packet is too long")?;
    let mut h = Sha1::new();
    h.update([0x99]);
    h.update(len16.to_be_bytes());
    h.update(key);
    Ok(h.finalize().iter().map(|b| format!("{b:02X}")).collect())
}

/// The pinned key of `workspace` must be the release key this program knows
/// ([`RELEASE_KEY_FINGERPRINT`]): a build trusts that file's key for the bootstrap signature.
pub fn check_pinned_key(workspace: &std::path::Path) -> Result<()> {
    let path = workspace.join(RELEASE_KEY_FILE);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let fpr =
        armored_key_fingerprint(&text).with_context(|| format!("reading {}", path.display()))?;
    if fpr != RELEASE_KEY_FINGERPRINT {
        bail!(
            "{} holds the key {fpr}, not the Arch Linux release key {RELEASE_KEY_FINGERPRINT}: restore it from the repository",
            path.display()
        );
    }
    Ok(())
}

/// Warn-worthy: the API names another signing key than the pinned one.
pub fn key_mismatch(rel: &Release) -> Option<String> {
    match &rel.pgp_fingerprint {
        Some(f) if f != RELEASE_KEY_FINGERPRINT => Some(format!(
            "the release API says release {} is signed by {f}, but the pinned key is {RELEASE_KEY_FINGERPRINT}: update packer/keys/archlinux-release.asc after checking the new key",
            rel.version
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pinned_key_file_holds_the_release_key() {
        let ws = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        check_pinned_key(&ws).unwrap();
        let text = std::fs::read_to_string(ws.join(RELEASE_KEY_FILE)).unwrap();
        assert_eq!(
            armored_key_fingerprint(&text).unwrap(),
            RELEASE_KEY_FINGERPRINT
        );
    }

    #[test]
    fn broken_key_blocks_are_refused() {
        assert!(armored_key_fingerprint("hello").is_err());
        let e = armored_key_fingerprint(
            "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n!!!\n-----END PGP PUBLIC KEY BLOCK-----\n",
        )
        .unwrap_err();
        assert!(format!("{e:#}").contains("not base64"), "{e:#}");
    }

    #[test]
    fn versions_must_be_dates() {
        check_version("2026.11.01").unwrap();
        for bad in ["latest", "2026.11.1", "2026-11-01", "../x", ""] {
            assert!(check_version(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn files_follow_the_dated_zstd_naming() {
        let r = release_files("2026.11.01", "https://example.org/arch/").unwrap();
        assert_eq!(r.file, "archlinux-bootstrap-2026.11.01-x86_64.tar.zst");
        assert_eq!(
            r.url,
            "https://example.org/arch/iso/2026.11.01/archlinux-bootstrap-2026.11.01-x86_64.tar.zst"
        );
        assert_eq!(r.signature_url, format!("{}.sig", r.url));
    }

    #[test]
    fn without_latest_version_the_newest_available_release_wins() {
        let json = r#"{"releases": [
            {"version": "2026.10.01", "available": true},
            {"version": "2026.12.01", "available": false},
            {"version": "2026.11.01", "available": true}
        ]}"#;
        assert_eq!(
            parse_api(json, DEFAULT_MIRROR).unwrap().version,
            "2026.11.01"
        );
    }

    #[test]
    fn garbage_and_empty_answers_are_errors() {
        assert!(parse_api("<html>", DEFAULT_MIRROR).is_err());
        let e = parse_api(r#"{"releases": []}"#, DEFAULT_MIRROR).unwrap_err();
        assert!(format!("{e:#}").contains("names no release"), "{e:#}");
        let e = parse_api(
            r#"{"latest_version": "rolling", "releases": []}"#,
            DEFAULT_MIRROR,
        )
        .unwrap_err();
        assert!(format!("{e:#}").contains("YYYY.MM.DD"), "{e:#}");
    }
}
