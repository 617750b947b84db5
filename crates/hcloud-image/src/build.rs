//! `hcloud-image build archlinux|nixos|debian [-- PACKER ARGS]`: check what a build needs, stage the
//! agents (`dist`), then `packer init` and `packer build` the template with the right
//! variables, packer's progress streaming through.

use crate::dist::Arch;
use anyhow::{Context, Result, bail};
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;

/// The oldest packer that loads the hcloud plugin the templates pin.
pub const MIN_PACKER: (u32, u32, u32) = (1, 11, 0);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Archlinux,
    Nixos,
    Debian,
}

impl Flavor {
    pub fn name(self) -> &'static str {
        match self {
            Flavor::Archlinux => "archlinux",
            Flavor::Nixos => "nixos",
            Flavor::Debian => "debian",
        }
    }
    /// The template, relative to the workspace root.
    pub fn template(self) -> PathBuf {
        PathBuf::from("packer").join(format!("{}.pkr.hcl", self.name()))
    }
    pub fn supports(self, arch: Arch) -> bool {
        match self {
            // Arch Linux proper is x86_64 only.
            Flavor::Archlinux => arch == Arch::X86_64,
            Flavor::Nixos | Flavor::Debian => true,
        }
    }
}

impl fmt::Display for Flavor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Flavor {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Flavor> {
        match s {
            "archlinux" | "arch" => Ok(Flavor::Archlinux),
            "nixos" => Ok(Flavor::Nixos),
            "debian" => Ok(Flavor::Debian),
            other => bail!("unknown image {other:?}: expected archlinux, nixos or debian"),
        }
    }
}

/// Parse `packer version` output (`Packer v1.11.2`, possibly followed by more lines).
pub fn parse_packer_version(out: &str) -> Result<(u32, u32, u32)> {
    let word = out
        .split_whitespace()
        .find(|w| {
            w.trim_start_matches('v')
                .starts_with(|c: char| c.is_ascii_digit())
        })
        .with_context(|| {
            format!(
                "cannot read a version from `packer version`: {:?}",
                out.trim()
            )
        })?;
    let core = word.trim_start_matches('v');
    let core = core.split(['-', '+']).next().unwrap_or(core);
    let nums: Vec<u32> = core
        .split('.')
        .map(|p| p.parse::<u32>())
        .collect::<Result<_, _>>()
        .with_context(|| {
            format!(
                "cannot read a version from `packer version`: {:?}",
                out.trim()
            )
        })?;
    match nums.as_slice() {
        [a, b, c, ..] => Ok((*a, *b, *c)),
        [a, b] => Ok((*a, *b, 0)),
        _ => bail!(
            "cannot read a version from `packer version`: {:?}",
            out.trim()
        ),
    }
}

/// Everything a build needs before it starts, as one error listing every problem.
pub fn check_prerequisites(packer_version: Result<String>, token: Option<&str>) -> Result<()> {
    let mut problems = Vec::new();
    match packer_version.and_then(|out| parse_packer_version(&out)) {
        Ok(v) if v < MIN_PACKER => problems.push(format!(
            "packer {}.{}.{} is too old: the templates need packer >= {}.{}.{} (required_plugins and the hcloud plugin); install it from HashiCorp's releases",
            v.0, v.1, v.2, MIN_PACKER.0, MIN_PACKER.1, MIN_PACKER.2
        )),
        Ok(_) => {}
        Err(e) => problems.push(format!("packer is not usable: {e:#}; install packer >= 1.11")),
    }
    match token {
        Some(t) if !t.trim().is_empty() => {}
        _ => problems.push(
            "HCLOUD_TOKEN is not set: create an API token (read & write) in the Hetzner Cloud console and export HCLOUD_TOKEN"
                .into(),
        ),
    }
    if problems.is_empty() {
        Ok(())
    } else {
        bail!("cannot build: {}", problems.join("; "))
    }
}

/// The `-var` arguments the wrapper passes to the template. The agents version for the labels
/// is read by the template itself from the tree's manifest.
pub fn packer_vars(
    flavor: Flavor,
    arch: Arch,
    dist_dir: &Path,
    arch_release: Option<&str>,
) -> Vec<String> {
    let mut vars = vec![format!("dist-dir={}", dist_dir.display())];
    match flavor {
        Flavor::Archlinux => {
            if let Some(r) = arch_release {
                vars.push(format!("arch-image={r}"));
            }
        }
        Flavor::Nixos | Flavor::Debian => vars.push(format!("arch={arch}")),
    }
    vars.into_iter()
        .flat_map(|v| ["-var".to_string(), v])
        .collect()
}

/// The build server a `packer build` with `packer_args` creates, for the check before it:
/// server type, optional upgrade server type and location, from `-var name=value` (or
/// `-var=name=value`) and otherwise the template's defaults. `None` with a `-var-file`, whose
/// values the wrapper does not read.
pub fn build_server(
    flavor: Flavor,
    arch: Arch,
    packer_args: &[String],
) -> Option<(String, Option<String>, String)> {
    let mut vars: Vec<(&str, &str)> = Vec::new();
    let mut args = packer_args.iter();
    while let Some(a) = args.next() {
        if a.starts_with("-var-file") || a.starts_with("--var-file") {
            return None;
        }
        let kv = match a.as_str() {
            "-var" | "--var" => args.next().map(String::as_str),
            _ => a.strip_prefix("-var=").or_else(|| a.strip_prefix("--var=")),
        };
        if let Some((k, v)) = kv.and_then(|kv| kv.split_once('=')) {
            vars.push((k, v));
        }
    }
    let var = |name: &str| {
        vars.iter()
            .rev()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
            .filter(|v| !v.is_empty())
    };
    let default_type = match (flavor, arch) {
        (Flavor::Nixos | Flavor::Debian, Arch::Aarch64) => "cax11",
        _ => "cx23",
    };
    Some((
        var("server-type").unwrap_or_else(|| default_type.to_string()),
        var("upgrade-server-type"),
        var("location").unwrap_or_else(|| "fsn1".to_string()),
    ))
}

fn run(cmd: &mut Command, what: &str) -> Result<()> {
    let status = cmd.status().with_context(|| format!("starting {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

/// `packer version`, as text.
pub fn packer_version(packer: &str) -> Result<String> {
    let out = Command::new(packer)
        .arg("version")
        .output()
        .with_context(|| format!("running {packer} version (is packer installed and on PATH?)"))?;
    if !out.status.success() {
        bail!(
            "{packer} version failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Run `packer init` and `packer build` in the workspace root.
pub fn run_packer(
    packer: &str,
    workspace: &Path,
    flavor: Flavor,
    vars: &[String],
    extra: &[String],
) -> Result<()> {
    let template = flavor.template();
    if !workspace.join(&template).is_file() {
        bail!("{} is missing", workspace.join(&template).display());
    }
    run(
        Command::new(packer)
            .arg("init")
            .arg(&template)
            .current_dir(workspace),
        "packer init (downloads the hcloud plugin)",
    )?;
    run(
        Command::new(packer)
            .arg("build")
            .args(vars)
            .args(extra)
            .arg(&template)
            .current_dir(workspace),
        "packer build",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packer_versions_are_read_and_compared() {
        assert_eq!(
            parse_packer_version("Packer v1.11.2\n").unwrap(),
            (1, 11, 2)
        );
        assert_eq!(parse_packer_version("1.6.6\n").unwrap(), (1, 6, 6));
        assert_eq!(
            parse_packer_version("Packer v1.15.4\n\nYour version of Packer is out of date!")
                .unwrap(),
            (1, 15, 4)
        );
        assert!(parse_packer_version("command not found").is_err());
    }

    #[test]
    fn every_missing_prerequisite_is_named() {
        let e = check_prerequisites(Ok("Packer v1.6.6".into()), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("packer 1.6.6 is too old"), "{e}");
        assert!(e.contains("HCLOUD_TOKEN is not set"), "{e}");
        let e = check_prerequisites(Err(anyhow::anyhow!("no such file")), Some("t"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("packer is not usable") && !e.contains("HCLOUD_TOKEN"),
            "{e}"
        );
        check_prerequisites(Ok("Packer v1.11.0".into()), Some("secret")).unwrap();
    }

    #[test]
    fn the_build_server_comes_from_the_vars_or_the_template_defaults() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            build_server(Flavor::Archlinux, Arch::X86_64, &[]),
            Some(("cx23".into(), None, "fsn1".into()))
        );
        assert_eq!(
            build_server(Flavor::Nixos, Arch::Aarch64, &args(&["-debug"])),
            Some(("cax11".into(), None, "fsn1".into()))
        );
        assert_eq!(
            build_server(
                Flavor::Nixos,
                Arch::X86_64,
                &args(&[
                    "-var",
                    "location=hel1",
                    "-var=server-type=cpx22",
                    "-var",
                    "upgrade-server-type=cpx42"
                ])
            ),
            Some(("cpx22".into(), Some("cpx42".into()), "hel1".into()))
        );
        assert_eq!(
            build_server(
                Flavor::Archlinux,
                Arch::X86_64,
                &args(&["-var-file=my.pkrvars.hcl"])
            ),
            None
        );
    }

    #[test]
    fn arch_linux_is_x86_64_only() {
        assert!(Flavor::Archlinux.supports(Arch::X86_64));
        assert!(!Flavor::Archlinux.supports(Arch::Aarch64));
        assert!(Flavor::Nixos.supports(Arch::Aarch64));
        assert!(Flavor::Debian.supports(Arch::Aarch64));
        assert!(Flavor::Debian.supports(Arch::X86_64));
        assert_eq!("debian".parse::<Flavor>().unwrap(), Flavor::Debian);
        assert_eq!(
            Flavor::Debian.template(),
            PathBuf::from("packer/debian.pkr.hcl")
        );
    }
}
