//! `hcloud-image dist`: build the static agents and lay out the staged install tree that the
//! images, the packages and the simulator install from.
//!
//! The tree (stable layout; paths relative to its root, which stands for `/`):
//!
//! ```text
//! usr/bin/<agent>                              every agent binary of the workspace (0755)
//! usr/lib/systemd/system/<unit>                systemd/*.service|socket|timer|path|target|mount
//!                                              and drop-in directories systemd/<unit>.d/*.conf
//! usr/lib/udev/rules.d/<rules>                 systemd/*.rules
//! usr/lib/systemd/system-preset/<preset>       systemd/*.preset
//! usr/lib/systemd/network/<file>               systemd/*.network|link|netdev
//! usr/share/man/man8/<agent>.8.gz              the agent's manual page (gzip -9n)
//! usr/share/bash-completion/completions/<agent>  bash completion
//! usr/share/zsh/site-functions/_<agent>        zsh completion (Debian: vendor-completions)
//! usr/share/fish/vendor_completions.d/<agent>.fish  fish completion
//! usr/share/hcloud-agents/manifest.json        what is in the tree: version, arch, files, hashes
//! usr/share/hcloud-agents/SHA256SUMS           the same hashes for `sha256sum -c` from the root
//! ```

use crate::elf::{self, Machine};
use crate::manual;
use anyhow::{Context, Result, bail};
use hcloud_metadata::{WriteOptions, write_atomic};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;

/// Where the manifest and the checksum list live inside the tree.
pub const MANIFEST_PATH: &str = "usr/share/hcloud-agents/manifest.json";
pub const SUMS_PATH: &str = "usr/share/hcloud-agents/SHA256SUMS";

/// Workspace binaries that are host tools, not agents: they are never staged.
pub const HOST_TOOLS: &[&str] = &[
    "hcloud-image",
    "hcloud-sim",
    "hcloud-fake-metadata",
    "hcloud-fake-cloud",
];

/// The CPU architectures Hetzner Cloud servers have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    X86_64,
    Aarch64,
}

impl Arch {
    pub fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        }
    }
    /// The static (musl) Rust target.
    pub fn target(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64-unknown-linux-musl",
            Arch::Aarch64 => "aarch64-unknown-linux-musl",
        }
    }
    fn machine(self) -> Machine {
        match self {
            Arch::X86_64 => Machine::X86_64,
            Arch::Aarch64 => Machine::Aarch64,
        }
    }
    /// The architecture of the machine running this program.
    pub fn host() -> Arch {
        if cfg!(target_arch = "aarch64") {
            Arch::Aarch64
        } else {
            Arch::X86_64
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Arch {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Arch> {
        match s {
            "x86_64" | "amd64" => Ok(Arch::X86_64),
            "aarch64" | "arm64" => Ok(Arch::Aarch64),
            other => bail!("unknown architecture {other:?}: expected x86_64 or aarch64"),
        }
    }
}

/// A binary target of a workspace package.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct BinTarget {
    pub package: String,
    pub name: String,
}

/// What `cargo metadata` says about the workspace.
#[derive(Debug, Clone)]
pub struct Workspace {
    pub root: PathBuf,
    pub target_dir: PathBuf,
    pub version: String,
    /// Every binary target of every workspace member, with the packages that opted out of
    /// staging (`[package.metadata.hcloud-image] stage = false`) already left out.
    pub bins: Vec<BinTarget>,
}

#[derive(Deserialize)]
struct MetaRoot {
    packages: Vec<MetaPackage>,
    workspace_members: Vec<String>,
    workspace_root: PathBuf,
    target_directory: PathBuf,
}

#[derive(Deserialize)]
struct MetaPackage {
    id: String,
    name: String,
    version: String,
    targets: Vec<MetaTarget>,
    #[serde(default)]
    metadata: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct MetaTarget {
    name: String,
    kind: Vec<String>,
}

/// The cargo program: the one that runs us under `cargo run`, else `cargo` from `PATH`.
pub fn cargo_program() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// Parse the JSON of `cargo metadata --format-version 1 --no-deps`.
pub fn parse_metadata(json: &str) -> Result<Workspace> {
    let meta: MetaRoot =
        serde_json::from_str(json).context("parsing the output of cargo metadata")?;
    let members: BTreeSet<&str> = meta.workspace_members.iter().map(String::as_str).collect();
    let mut bins = Vec::new();
    let mut version = None;
    for p in meta
        .packages
        .iter()
        .filter(|p| members.contains(p.id.as_str()))
    {
        if p.name == "hcloud-metadata" {
            version = Some(p.version.clone());
        }
        let opted_out = p
            .metadata
            .as_ref()
            .and_then(|m| m.get("hcloud-image"))
            .and_then(|m| m.get("stage"))
            .and_then(serde_json::Value::as_bool)
            == Some(false);
        if opted_out {
            continue;
        }
        for t in p
            .targets
            .iter()
            .filter(|t| t.kind.iter().any(|k| k == "bin"))
        {
            bins.push(BinTarget {
                package: p.name.clone(),
                name: t.name.clone(),
            });
        }
    }
    bins.sort();
    let version = version
        .or_else(|| {
            meta.packages
                .iter()
                .find(|p| members.contains(p.id.as_str()))
                .map(|p| p.version.clone())
        })
        .context("cargo metadata lists no workspace member")?;
    Ok(Workspace {
        root: meta.workspace_root,
        target_dir: meta.target_directory,
        version,
        bins,
    })
}

/// Run `cargo metadata` for the workspace at (or above) `dir`.
pub fn load_workspace(dir: &Path) -> Result<Workspace> {
    let out = Command::new(cargo_program())
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(dir)
        .output()
        .with_context(|| format!("running cargo metadata in {}", dir.display()))?;
    if !out.status.success() {
        bail!(
            "cargo metadata failed in {}: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    parse_metadata(&String::from_utf8_lossy(&out.stdout))
}

/// The binaries that go into the image: every `hcloud-*` binary that is not a host tool.
pub fn select_agents(bins: &[BinTarget]) -> Vec<BinTarget> {
    bins.iter()
        .filter(|b| b.name.starts_with("hcloud-") && !HOST_TOOLS.contains(&b.name.as_str()))
        .cloned()
        .collect()
}

/// The `cargo build` command line (without the program) for the agents of `arch`.
pub fn build_args(arch: Arch, agents: &[BinTarget]) -> Vec<String> {
    let mut args: Vec<String> = ["build", "--release", "--locked", "--target", arch.target()]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let packages: BTreeSet<&str> = agents.iter().map(|b| b.package.as_str()).collect();
    for p in packages {
        args.push("-p".into());
        args.push(p.into());
    }
    for b in agents {
        args.push("--bin".into());
        args.push(b.name.clone());
    }
    args
}

/// Environment for the build: aarch64 links with the toolchain's own `rust-lld`, so no cross C
/// toolchain is needed. A linker the user set already wins.
pub fn build_env(arch: Arch) -> Vec<(String, String)> {
    let var = "CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER";
    if arch == Arch::Aarch64 && arch != Arch::host() && std::env::var_os(var).is_none() {
        vec![(var.into(), "rust-lld".into())]
    } else {
        vec![]
    }
}

/// Build the static agents with cargo; cargo's progress goes to our stderr.
pub fn build_agents(ws: &Workspace, arch: Arch, agents: &[BinTarget]) -> Result<()> {
    if agents.is_empty() {
        bail!("the workspace has no agent binaries (hcloud-* binaries other than {HOST_TOOLS:?})");
    }
    let args = build_args(arch, agents);
    let status = Command::new(cargo_program())
        .args(&args)
        .envs(build_env(arch))
        .current_dir(&ws.root)
        .status()
        .with_context(|| format!("running cargo {}", args.join(" ")))?;
    if !status.success() {
        bail!(
            "cargo {} failed ({status}); for {arch} the Rust target must be installed: rustup target add {}",
            args.join(" "),
            arch.target()
        );
    }
    Ok(())
}

/// One file of the tree: where it comes from, where it goes (relative), its mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub source: PathBuf,
    pub dest: String,
    pub mode: u32,
}

/// The destination directory of a file from `systemd/`, by its extension.
pub fn unit_destination(file_name: &str) -> Option<&'static str> {
    let ext = file_name.rsplit_once('.').map(|(_, e)| e)?;
    match ext {
        "service" | "socket" | "timer" | "path" | "target" | "mount" | "automount" | "slice" => {
            Some("usr/lib/systemd/system")
        }
        "rules" => Some("usr/lib/udev/rules.d"),
        "preset" => Some("usr/lib/systemd/system-preset"),
        "network" | "link" | "netdev" => Some("usr/lib/systemd/network"),
        _ => None,
    }
}

fn ignored(name: &str) -> bool {
    name.starts_with('.') || name.ends_with(".md") || name.ends_with('~')
}

/// Map every file of the `systemd/` directory to its place in the tree. A file of an unknown
/// kind is an error (it would otherwise silently miss from every image).
pub fn plan_units(systemd_dir: &Path) -> Result<Vec<Entry>> {
    let mut out = Vec::new();
    if !systemd_dir.exists() {
        return Ok(out);
    }
    let mut names: Vec<_> = fs::read_dir(systemd_dir)
        .with_context(|| format!("reading {}", systemd_dir.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("reading {}", systemd_dir.display()))?;
    names.sort_by_key(|e| e.file_name());
    for e in names {
        let name = e.file_name().to_string_lossy().into_owned();
        let path = e.path();
        if ignored(&name) {
            continue;
        }
        let kind = e
            .file_type()
            .with_context(|| format!("reading {}", path.display()))?;
        if kind.is_dir() {
            // A drop-in directory such as `systemd-networkd.service.d/`.
            let unit = name.strip_suffix(".d").unwrap_or("");
            if unit_destination(unit) != Some("usr/lib/systemd/system") {
                bail!(
                    "{}: a directory in systemd/ must be a unit drop-in directory (<unit>.d)",
                    path.display()
                );
            }
            let mut confs: Vec<_> = fs::read_dir(&path)
                .with_context(|| format!("reading {}", path.display()))?
                .collect::<Result<_, _>>()
                .with_context(|| format!("reading {}", path.display()))?;
            confs.sort_by_key(|c| c.file_name());
            for c in confs {
                let cname = c.file_name().to_string_lossy().into_owned();
                if ignored(&cname) {
                    continue;
                }
                if !cname.ends_with(".conf") {
                    bail!("{}: drop-ins must end in .conf", c.path().display());
                }
                out.push(Entry {
                    source: c.path(),
                    dest: format!("usr/lib/systemd/system/{name}/{cname}"),
                    mode: 0o644,
                });
            }
            continue;
        }
        let Some(dir) = unit_destination(&name) else {
            bail!(
                "{}: unknown kind of file in systemd/ (expected units, .rules, .preset, .network, .link, .netdev or <unit>.d/)",
                path.display()
            );
        };
        out.push(Entry {
            source: path,
            dest: format!("{dir}/{name}"),
            mode: 0o644,
        });
    }
    Ok(out)
}

/// Every `/usr/bin/hcloud-*` program a unit, rule or drop-in refers to.
pub fn referenced_binaries(text: &str) -> BTreeSet<String> {
    let needle = "/usr/bin/hcloud-";
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find(needle) {
        let tail = &rest[i + "/usr/bin/".len()..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
            .unwrap_or(tail.len());
        out.insert(tail[..end].to_string());
        rest = &tail[end..];
    }
    out
}

/// Fail when a unit refers to a binary that the tree does not have.
pub fn check_references(units: &[Entry], binaries: &BTreeSet<String>) -> Result<()> {
    let mut missing = Vec::new();
    for u in units {
        let text = fs::read_to_string(&u.source)
            .with_context(|| format!("reading {}", u.source.display()))?;
        for b in referenced_binaries(&text) {
            if !binaries.contains(&b) {
                missing.push(format!("{} runs /usr/bin/{b}", u.source.display()));
            }
        }
    }
    if !missing.is_empty() {
        bail!(
            "units refer to binaries the workspace does not build: {}",
            missing.join("; ")
        );
    }
    Ok(())
}

/// One file in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    pub path: String,
    pub sha256: String,
    pub size: u64,
    /// Octal, e.g. `"0755"`.
    pub mode: String,
}

/// `usr/share/hcloud-agents/manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    /// The workspace version.
    pub version: String,
    /// `git describe --always --dirty` of the checkout, when it is a git checkout.
    pub git: Option<String>,
    pub arch: Arch,
    pub target: String,
    /// The agents version as a Hetzner label value (see [`Manifest::label_version`]); images
    /// put it in their `agents-version` label.
    pub label: String,
    /// The agent binaries (names in `/usr/bin`).
    pub binaries: Vec<String>,
    /// The unit names in `/usr/lib/systemd/system` (not drop-ins): what an image enables.
    pub units: Vec<String>,
    pub files: Vec<FileRecord>,
}

impl Manifest {
    /// A label-safe agents version (`[A-Za-z0-9._-]`, at most 63 characters).
    pub fn label_version(&self) -> String {
        label_version(&self.version, self.git.as_deref())
    }
}

/// `<version>-<git describe>` reduced to what a Hetzner label value may hold.
pub fn label_version(version: &str, git: Option<&str>) -> String {
    let v = match git {
        Some(g) => format!("{version}-{g}"),
        None => version.to_string(),
    };
    let v: String = v
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(63)
        .collect();
    // Label values start and end with an alphanumeric character.
    v.trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    let d = Sha256::digest(bytes);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// Read the manifest of a staged tree.
pub fn read_manifest(tree: &Path) -> Result<Manifest> {
    let p = tree.join(MANIFEST_PATH);
    let text = fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", p.display()))
}

/// Empty `out` if it is a tree made by [`stage`] (it has our manifest) or empty; refuse any
/// other existing directory rather than delete someone's files.
fn prepare_out(out: &Path) -> Result<()> {
    if !out.exists() {
        return fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()));
    }
    let empty = fs::read_dir(out)
        .with_context(|| format!("reading {}", out.display()))?
        .next()
        .is_none();
    if empty {
        return Ok(());
    }
    if !out.join(MANIFEST_PATH).is_file() {
        bail!(
            "{} exists and is not a tree made by hcloud-image dist (no {MANIFEST_PATH}); choose another --out",
            out.display()
        );
    }
    fs::remove_dir_all(out).with_context(|| format!("removing the old tree {}", out.display()))?;
    fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))
}

/// What to stage.
#[derive(Debug, Clone)]
pub struct StageInput {
    pub version: String,
    pub git: Option<String>,
    pub arch: Arch,
    /// Agent name → built binary.
    pub binaries: BTreeMap<String, PathBuf>,
    pub systemd_dir: PathBuf,
}

/// Lay out the tree in `out` and write its manifest. Binaries must be static executables of
/// `arch`; every binary a unit refers to must be among them.
pub fn stage(input: &StageInput, out: &Path) -> Result<Manifest> {
    let units = plan_units(&input.systemd_dir)?;
    let names: BTreeSet<String> = input.binaries.keys().cloned().collect();
    check_references(&units, &names)?;
    let mut entries = Vec::new();
    for (name, path) in &input.binaries {
        let info = elf::inspect(path)
            .with_context(|| format!("agent {name}: the build did not produce a usable binary"))?;
        if info.machine != input.arch.machine() {
            bail!(
                "{}: built for {:?}, not {}",
                path.display(),
                info.machine,
                input.arch
            );
        }
        if let Some(interp) = &info.interpreter {
            bail!(
                "{}: dynamically linked (interpreter {interp}); agents must be static musl binaries",
                path.display()
            );
        }
        entries.push(Entry {
            source: path.clone(),
            dest: format!("usr/bin/{name}"),
            mode: 0o755,
        });
    }
    entries.extend(units);
    write_tree(input, &entries, out)
}

/// Write `entries` as the tree in `out` (replacing an older tree), the manual page and shell
/// completions of each binary (rendered from its clap definition, [`manual`]), the manifest and
/// the checksum list. [`stage`] checks the binaries first; this only copies and records.
pub fn write_tree(input: &StageInput, entries: &[Entry], out: &Path) -> Result<Manifest> {
    let names: BTreeSet<String> = input.binaries.keys().cloned().collect();
    let mut contents = Vec::new();
    for e in entries {
        let bytes =
            fs::read(&e.source).with_context(|| format!("reading {}", e.source.display()))?;
        contents.push((e.dest.clone(), bytes, e.mode));
    }
    for name in &names {
        for (rel, bytes) in manual::files_for(name, &input.version)? {
            contents.push((format!("usr/{rel}"), bytes, 0o644));
        }
    }
    prepare_out(out)?;
    let mut files = Vec::new();
    for (path, bytes, mode) in contents {
        let dest = out.join(&path);
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        write_atomic(&dest, &bytes, WriteOptions::mode(mode))
            .with_context(|| format!("staging {path}"))?;
        files.push(FileRecord {
            path,
            sha256: sha256_hex(&bytes),
            size: bytes.len() as u64,
            mode: format!("{mode:04o}"),
        });
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let unit_names = files
        .iter()
        .filter_map(|f| f.path.strip_prefix("usr/lib/systemd/system/"))
        .filter(|p| !p.contains('/'))
        .map(str::to_string)
        .collect();
    let manifest = Manifest {
        format: 1,
        version: input.version.clone(),
        git: input.git.clone(),
        arch: input.arch,
        target: input.arch.target().into(),
        label: label_version(&input.version, input.git.as_deref()),
        binaries: names.into_iter().collect(),
        units: unit_names,
        files,
    };
    let sums: String = manifest
        .files
        .iter()
        .map(|f| format!("{}  {}\n", f.sha256, f.path))
        .collect();
    let share = out.join(MANIFEST_PATH);
    let share_dir = share.parent().context("manifest path has a parent")?;
    fs::create_dir_all(share_dir).with_context(|| format!("creating {}", share_dir.display()))?;
    let mut json = serde_json::to_string_pretty(&manifest).context("serializing the manifest")?;
    json.push('\n');
    write_atomic(&share, json.as_bytes(), WriteOptions::mode(0o644))
        .with_context(|| format!("writing {}", share.display()))?;
    let sums_path = out.join(SUMS_PATH);
    write_atomic(&sums_path, sums.as_bytes(), WriteOptions::mode(0o644))
        .with_context(|| format!("writing {}", sums_path.display()))?;
    // Directories 0755 whatever the umask.
    for d in [
        "usr",
        "usr/bin",
        "usr/lib",
        "usr/share",
        "usr/share/hcloud-agents",
    ] {
        let p = out.join(d);
        if p.is_dir() {
            fs::set_permissions(&p, fs::Permissions::from_mode(0o755))
                .with_context(|| format!("chmod {}", p.display()))?;
        }
    }
    Ok(manifest)
}

/// `git describe --always --dirty` in `dir`, if git and a checkout are there.
pub fn git_describe(dir: &Path) -> Option<String> {
    let out = Command::new("git")
        .args(["describe", "--always", "--dirty", "--abbrev=12"])
        .current_dir(dir)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
}

/// Options of `hcloud-image dist`.
#[derive(Debug, Clone)]
pub struct DistOptions {
    pub arch: Arch,
    pub out: Option<PathBuf>,
    /// Stage what is already built instead of running cargo.
    pub no_build: bool,
}

/// The default output directory: `<target dir>/dist/<arch>`.
pub fn default_out(ws: &Workspace, arch: Arch) -> PathBuf {
    ws.target_dir.join("dist").join(arch.name())
}

/// The whole `dist` command: build (unless `no_build`), then stage. Returns the tree and its
/// manifest.
pub fn dist(workspace_dir: &Path, opts: &DistOptions) -> Result<(PathBuf, Manifest)> {
    let ws = load_workspace(workspace_dir)?;
    let agents = select_agents(&ws.bins);
    if !opts.no_build {
        build_agents(&ws, opts.arch, &agents)?;
    }
    let bin_dir = ws.target_dir.join(opts.arch.target()).join("release");
    let mut binaries = BTreeMap::new();
    for a in &agents {
        let p = bin_dir.join(&a.name);
        if !p.is_file() {
            bail!(
                "{} is missing: build it first (cargo {}) or run dist without --no-build",
                p.display(),
                build_args(opts.arch, &agents).join(" ")
            );
        }
        binaries.insert(a.name.clone(), p);
    }
    let out = opts
        .out
        .clone()
        .unwrap_or_else(|| default_out(&ws, opts.arch));
    let input = StageInput {
        version: ws.version.clone(),
        git: git_describe(&ws.root),
        arch: opts.arch,
        binaries,
        systemd_dir: ws.root.join("systemd"),
    };
    let manifest = stage(&input, &out)?;
    Ok((out, manifest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(dir: &Path, binaries: &[(&str, PathBuf)]) -> StageInput {
        StageInput {
            version: "0.1.0".into(),
            git: None,
            arch: Arch::host(),
            binaries: binaries
                .iter()
                .map(|(n, p)| (n.to_string(), p.clone()))
                .collect(),
            systemd_dir: dir.join("systemd"),
        }
    }

    #[test]
    fn a_unit_running_a_binary_the_workspace_lacks_fails_naming_both() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("systemd")).unwrap();
        fs::write(
            dir.path().join("systemd/hcloud-volumes.service"),
            "[Service]\nExecStart=/usr/bin/hcloud-volumes\n",
        )
        .unwrap();
        let e = stage(&input(dir.path(), &[]), &dir.path().join("out")).unwrap_err();
        let msg = format!("{e:#}");
        assert!(
            msg.contains("hcloud-volumes.service runs /usr/bin/hcloud-volumes"),
            "{msg}"
        );
        assert!(!dir.path().join("out").exists(), "nothing is staged");
    }

    #[test]
    fn dynamic_binaries_and_unknown_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("systemd")).unwrap();
        // The test binary itself is linked against glibc.
        let me = std::env::current_exe().unwrap();
        let e = stage(
            &input(dir.path(), &[("hcloud-x", me)]),
            &dir.path().join("out"),
        )
        .unwrap_err();
        assert!(format!("{e:#}").contains("dynamically linked"), "{e:#}");

        fs::write(dir.path().join("systemd/notes.txt"), "x").unwrap();
        let e = stage(&input(dir.path(), &[]), &dir.path().join("out")).unwrap_err();
        assert!(
            format!("{e:#}").contains("notes.txt: unknown kind of file"),
            "{e:#}"
        );
    }

    #[test]
    fn units_map_to_the_package_directories() {
        assert_eq!(
            unit_destination("hcloud-network.service"),
            Some("usr/lib/systemd/system")
        );
        assert_eq!(
            unit_destination("hcloud-refresh.timer"),
            Some("usr/lib/systemd/system")
        );
        assert_eq!(
            unit_destination("90-hcloud.rules"),
            Some("usr/lib/udev/rules.d")
        );
        assert_eq!(
            unit_destination("80-hcloud.preset"),
            Some("usr/lib/systemd/system-preset")
        );
        assert_eq!(
            unit_destination("99-fallback.network"),
            Some("usr/lib/systemd/network")
        );
        assert_eq!(unit_destination("README"), None);
        assert_eq!(unit_destination("x.conf"), None);
    }

    #[test]
    fn referenced_binaries_are_found_in_exec_lines_and_udev_runs() {
        let unit = "[Service]\nExecStartPre=-/usr/bin/hcloud-dl-metadata --timeout 5\nExecStart=/usr/bin/hcloud-network\n";
        let rule = r#"ACTION=="add", RUN+="/usr/bin/hcloud-x_y arg""#;
        let got = referenced_binaries(&format!("{unit}{rule}"));
        let want: BTreeSet<String> = ["hcloud-dl-metadata", "hcloud-network", "hcloud-x_y"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(got, want);
        assert!(referenced_binaries("ExecStart=/usr/bin/systemctl restart x").is_empty());
    }

    #[test]
    fn host_tools_are_not_staged() {
        let bins: Vec<BinTarget> = [
            "hcloud-image",
            "hcloud-sim",
            "hcloud-hostname",
            "hcloud-fake-metadata",
            "hcloud-fake-cloud",
            "other",
        ]
        .iter()
        .map(|n| BinTarget {
            package: n.to_string(),
            name: n.to_string(),
        })
        .collect();
        let names: Vec<String> = select_agents(&bins).into_iter().map(|b| b.name).collect();
        assert_eq!(names, vec!["hcloud-hostname"]);
    }

    #[test]
    fn build_args_name_each_package_and_binary() {
        let agents = vec![
            BinTarget {
                package: "hcloud-network".into(),
                name: "hcloud-network".into(),
            },
            BinTarget {
                package: "hcloud-dl-metadata".into(),
                name: "hcloud-dl-metadata".into(),
            },
        ];
        let args = build_args(Arch::Aarch64, &agents).join(" ");
        assert_eq!(
            args,
            "build --release --locked --target aarch64-unknown-linux-musl -p hcloud-dl-metadata -p hcloud-network --bin hcloud-network --bin hcloud-dl-metadata"
        );
    }

    #[test]
    fn label_version_is_a_valid_hetzner_label_value() {
        let m = Manifest {
            format: 1,
            version: "0.1.0".into(),
            git: Some("1e03412abcde-dirty".into()),
            arch: Arch::X86_64,
            target: Arch::X86_64.target().into(),
            label: String::new(),
            binaries: vec![],
            units: vec![],
            files: vec![],
        };
        assert_eq!(m.label_version(), "0.1.0-1e03412abcde-dirty");
    }

    #[test]
    fn metadata_opt_out_and_non_members_are_honoured() {
        let json = r#"{
          "packages": [
            {"id": "a", "name": "hcloud-metadata", "version": "0.3.0", "targets": [{"name": "hcloud_metadata", "kind": ["lib"]}], "metadata": null},
            {"id": "b", "name": "hcloud-hostname", "version": "0.3.0", "targets": [{"name": "hcloud-hostname", "kind": ["bin"]}], "metadata": null},
            {"id": "c", "name": "hcloud-debug", "version": "0.3.0", "targets": [{"name": "hcloud-debug", "kind": ["bin"]}], "metadata": {"hcloud-image": {"stage": false}}}
          ],
          "workspace_members": ["a", "b", "c"],
          "workspace_root": "/w",
          "target_directory": "/w/target"
        }"#;
        let ws = parse_metadata(json).unwrap();
        assert_eq!(ws.version, "0.3.0");
        assert_eq!(ws.bins.len(), 1);
        assert_eq!(ws.bins[0].name, "hcloud-hostname");
    }
}
