//! The guest: a Debian root filesystem (bookworm or sid, see [`Release`]) built by
//! `image/recipe.sh` (debootstrap), cached under the cache directory keyed by the recipe's hash
//! and the release, and per simulated server a raw ext4 disk
//! made from it with the agents installed as a package would install them (or, for the peer,
//! cloud-init enabled instead). The kernel and initrd come from the root filesystem's `/boot`
//! and are booted directly by QEMU.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

pub const RECIPE: &str = include_str!("../image/recipe.sh");
pub const DEFAULT_CACHE: &str = "/var/cache/hcloud-sim";
pub const DISK_SIZE: &str = "3G";

/// The binaries the agent packages install (every one must exist in the static build).
pub const AGENTS: &[&str] = &[
    "hcloud-dl-metadata",
    "hcloud-dl-userdata",
    "hcloud-hostname",
    "hcloud-ssh-keys",
    "hcloud-network",
];

/// The Debian release the guest is built from: which systemd the agents meet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Release {
    /// Debian 12: systemd 252, the oldest systemd the agents support (and Debian's cloud-init).
    Bookworm,
    /// Debian sid: current systemd (262) with `systemd-imds`, standing for Arch and current NixOS.
    Sid,
}

impl Release {
    pub fn suite(self) -> &'static str {
        match self {
            Release::Bookworm => "bookworm",
            Release::Sid => "sid",
        }
    }

    /// The release named by HCLOUD_SIM_RELEASE (the tests' switch); bookworm when unset.
    pub fn from_env() -> Result<Release> {
        match std::env::var("HCLOUD_SIM_RELEASE") {
            Err(_) => Ok(Release::Bookworm),
            Ok(v) => <Release as clap::ValueEnum>::from_str(&v, true)
                .map_err(|_| anyhow::anyhow!("HCLOUD_SIM_RELEASE={v:?}: use bookworm or sid")),
        }
    }
}

/// What runs in the guest to configure it from the metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guest {
    /// The hcloud agents from the static build and `systemd/`.
    Agents,
    /// Debian's cloud-init with the Hetzner datasource and the networkd renderer (no agents).
    CloudInit,
    /// The baseline: nothing provisioned at boot, the server's keys baked into root's
    /// `authorized_keys` and DHCP on every ethernet NIC ([`BARE_NETWORK`]).
    Bare,
}

/// The only network configuration of the bare baseline image.
pub const BARE_NETWORK: &str = "\
# Written by hcloud-sim: the bare baseline image, DHCP on every ethernet NIC.
[Match]
Type=ether

[Network]
DHCP=ipv4
";

/// cloud-init's configuration for the peer runs.
pub const CLOUD_INIT_CFG: &str = "\
# Written by hcloud-sim: the Hetzner datasource only, rendered for systemd-networkd.
datasource_list: [Hetzner]
disable_root: false
# The image has no generated locales; C.UTF-8 always exists (otherwise cc_locale fails).
locale: C.UTF-8
system_info:
  network:
    renderers: [networkd]
";

/// The cache key of a release's root filesystem: the recipe's hash and the suite.
pub fn recipe_hash(release: Release) -> String {
    short_hash(&[RECIPE.as_bytes(), release.suite().as_bytes()])
}

/// The cached root filesystem of this recipe and release.
pub fn rootfs_dir(cache: &Path, release: Release) -> PathBuf {
    cache.join(format!(
        "rootfs-{}-{}",
        release.suite(),
        recipe_hash(release)
    ))
}

/// Creates the cache and takes its build lock: concurrent builders of any cached image wait for
/// one another.
pub fn lock_cache(cache: &Path) -> Result<nix::fcntl::Flock<fs::File>> {
    fs::create_dir_all(cache).with_context(|| format!("creating cache {}", cache.display()))?;
    let lock_path = cache.join("build.lock");
    let lock = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("opening {}", lock_path.display()))?;
    nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .with_context(|| format!("locking {}", lock_path.display()))
}

/// The first 8 bytes of the SHA-256 of `parts`, in hex: the cache key of a recipe's result.
pub fn short_hash(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    let digest = h.finalize();
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn run(cmd: &mut Command, what: &str) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("{what}: cannot start {:?}", cmd.get_program()))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

/// Returns the cached root filesystem of `release`, building it first when the recipe changed.
/// Concurrent callers wait for one build (lock file in the cache).
pub fn ensure_rootfs(cache: &Path, release: Release, mirror: Option<&str>) -> Result<PathBuf> {
    let _guard = lock_cache(cache)?;
    let dir = rootfs_dir(cache, release);
    if dir.join("boot").is_dir() {
        return Ok(dir);
    }
    let key = recipe_hash(release);
    let suite = release.suite();
    let tmp = cache.join(format!("rootfs-{suite}-{key}.building"));
    if tmp.exists() {
        fs::remove_dir_all(&tmp).with_context(|| format!("removing stale {}", tmp.display()))?;
    }
    let script = cache.join(format!("recipe-{key}.sh"));
    fs::write(&script, RECIPE).with_context(|| format!("writing {}", script.display()))?;
    eprintln!(
        "hcloud-sim: building the Debian {suite} guest image (debootstrap, about 1-3 minutes)"
    );
    let mut cmd = Command::new("bash");
    cmd.arg(&script).arg(&tmp).arg(suite);
    if let Some(m) = mirror {
        cmd.arg(m);
    }
    run(&mut cmd, "building the guest image (image/recipe.sh)")?;
    fs::rename(&tmp, &dir).with_context(|| format!("moving {} into place", tmp.display()))?;
    // Old recipes' trees of this release are not needed any more (the other release's stay).
    let current = [Release::Bookworm, Release::Sid].map(|r| rootfs_dir(cache, r));
    if let Ok(entries) = fs::read_dir(cache) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            // Other recipes' trees; disks being made right now (`.work-<pid>`) stay.
            if name.starts_with("rootfs-")
                && !name.contains(".work-")
                && !name.ends_with(".building")
                && !current.contains(&e.path())
            {
                let _ = fs::remove_dir_all(e.path());
            }
        }
    }
    Ok(dir)
}

/// The kernel and initrd of a root filesystem (`/boot/vmlinuz-*`, `/boot/initrd.img-*`).
pub fn kernel_of(rootfs: &Path) -> Result<(PathBuf, PathBuf)> {
    let boot = rootfs.join("boot");
    let mut kernel = None;
    let mut initrd = None;
    for e in fs::read_dir(&boot).with_context(|| format!("reading {}", boot.display()))? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("vmlinuz-") {
            kernel = Some(e.path());
        } else if name.starts_with("initrd.img-") {
            initrd = Some(e.path());
        }
    }
    match (kernel, initrd) {
        (Some(k), Some(i)) => Ok((k, i)),
        _ => bail!(
            "{} has no vmlinuz-*/initrd.img-*: rebuild the image",
            boot.display()
        ),
    }
}

/// Where the static agents are: `<target dir>/x86_64-unknown-linux-musl/release`.
pub fn musl_bin_dir(workspace: &Path) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"));
    target.join("x86_64-unknown-linux-musl").join("release")
}

/// The instruction to build what is missing.
pub const BUILD_HINT: &str =
    "cargo build --release --target x86_64-unknown-linux-musl --workspace --bins";

/// Lays out the staged install tree (binaries under usr/bin, unit files as a package installs
/// them) in `out`: with `hcloud-image dist --no-build` when that tool was built, otherwise with
/// the same mapping done here. This is the one place that decides what gets installed.
pub fn stage_install_tree(workspace: &Path, bin_dir: &Path, out: &Path) -> Result<()> {
    for a in AGENTS {
        if !bin_dir.join(a).is_file() {
            bail!(
                "the static agent {} is missing: build the agents first ({BUILD_HINT})",
                bin_dir.join(a).display()
            );
        }
    }
    let tool = bin_dir.join("hcloud-image");
    if tool.is_file() {
        let status = Command::new(&tool)
            .arg("--workspace")
            .arg(workspace)
            .args(["dist", "--no-build", "--out"])
            .arg(out)
            .status()
            .with_context(|| format!("running {}", tool.display()))?;
        if !status.success() {
            bail!(
                "{} dist --no-build --out {} failed ({status})",
                tool.display(),
                out.display()
            );
        }
        return Ok(());
    }
    stage_by_hand(workspace, bin_dir, out)
}

/// Where a file of `systemd/` installs (relative to `/`), as a package would put it.
pub fn unit_destination(name: &str) -> Option<&'static str> {
    let ext = name.rsplit_once('.').map(|(_, e)| e)?;
    match ext {
        "service" | "timer" | "path" | "target" | "socket" | "mount" => {
            Some("usr/lib/systemd/system")
        }
        "rules" => Some("usr/lib/udev/rules.d"),
        "preset" => Some("usr/lib/systemd/system-preset"),
        "network" | "link" | "netdev" => Some("usr/lib/systemd/network"),
        _ => None,
    }
}

fn copy_mode(from: &Path, to: &Path, mode: u32) -> Result<()> {
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    fs::copy(from, to)
        .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    fs::set_permissions(to, fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting the mode of {}", to.display()))?;
    Ok(())
}

fn stage_by_hand(workspace: &Path, bin_dir: &Path, out: &Path) -> Result<()> {
    if out.exists() {
        fs::remove_dir_all(out).with_context(|| format!("removing {}", out.display()))?;
    }
    for a in AGENTS {
        copy_mode(&bin_dir.join(a), &out.join("usr/bin").join(a), 0o755)?;
    }
    let systemd = workspace.join("systemd");
    for e in fs::read_dir(&systemd).with_context(|| format!("reading {}", systemd.display()))? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        let path = e.path();
        if path.is_dir() && name.ends_with(".d") {
            // Drop-in directories of units.
            for d in fs::read_dir(&path).with_context(|| format!("reading {}", path.display()))? {
                let d = d?;
                let dest = out
                    .join("usr/lib/systemd/system")
                    .join(&name)
                    .join(d.file_name());
                copy_mode(&d.path(), &dest, 0o644)?;
            }
        } else if let Some(dir) = unit_destination(&name) {
            copy_mode(&path, &out.join(dir).join(&name), 0o644)?;
        }
    }
    Ok(())
}

/// Copies a staged tree into a root filesystem (replacing files, never writing through
/// hard links) and returns the unit names it installed.
fn install_tree(tree: &Path, root: &Path) -> Result<Vec<String>> {
    let mut units = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let src = tree.join(&rel);
        for e in fs::read_dir(&src).with_context(|| format!("reading {}", src.display()))? {
            let e = e?;
            let r = rel.join(e.file_name());
            let ft = e.file_type()?;
            let dest = root.join(&r);
            if ft.is_dir() {
                fs::create_dir_all(&dest)
                    .with_context(|| format!("creating {}", dest.display()))?;
                stack.push(r);
            } else {
                if dest.symlink_metadata().is_ok() {
                    fs::remove_file(&dest)
                        .with_context(|| format!("replacing {}", dest.display()))?;
                }
                let mode = e.metadata()?.permissions().mode() & 0o7777;
                copy_mode(&e.path(), &dest, mode)?;
                if r.starts_with("usr/lib/systemd/system")
                    && r.parent() == Some(Path::new("usr/lib/systemd/system"))
                {
                    units.push(e.file_name().to_string_lossy().into_owned());
                }
            }
        }
    }
    units.sort();
    Ok(units)
}

/// Writes root's `authorized_keys` (0600 in a 0700 `.ssh`) with these keys: the bare image.
fn bake_keys(root: &Path, keys: &[String]) -> Result<()> {
    let dir = root.join("root/.ssh");
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))?;
    let file = dir.join("authorized_keys");
    let text: String = keys.iter().map(|k| format!("{k}\n")).collect();
    fs::write(&file, text).with_context(|| format!("writing {}", file.display()))?;
    fs::set_permissions(&file, fs::Permissions::from_mode(0o600))?;
    Ok(())
}

/// Makes the raw ext4 disk of one server from the cached root filesystem. `keys` are baked in
/// for [`Guest::Bare`] only.
pub fn build_disk(
    rootfs: &Path,
    guest: Guest,
    tree: Option<&Path>,
    keys: &[String],
    disk: &Path,
) -> Result<()> {
    let parent = disk.parent().context("disk path has no directory")?;
    fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    // A hard-linked copy on the cache's filesystem: new files are added, existing ones replaced,
    // never written through, so the cached tree stays pristine.
    let work = rootfs.with_extension(format!("work-{}", std::process::id()));
    if work.exists() {
        fs::remove_dir_all(&work).with_context(|| format!("removing {}", work.display()))?;
    }
    let linked = Command::new("cp")
        .arg("-al")
        .arg(rootfs)
        .arg(&work)
        .status();
    if !matches!(linked, Ok(s) if s.success()) {
        let _ = fs::remove_dir_all(&work);
        run(
            Command::new("cp").arg("-a").arg(rootfs).arg(&work),
            "copying the guest root filesystem",
        )?;
    }
    let result = (|| -> Result<()> {
        match guest {
            Guest::Agents => {
                let tree = tree.context("the agents guest needs a staged install tree")?;
                let units = install_tree(tree, &work)?;
                if !units.is_empty() {
                    // As the package's maintainer scripts do: enable per the presets.
                    run(
                        Command::new("chroot")
                            .arg(&work)
                            .args(["systemctl", "preset"])
                            .args(&units),
                        "systemctl preset of the hcloud units",
                    )?;
                }
            }
            Guest::CloudInit => {
                let disabled = work.join("etc/cloud/cloud-init.disabled");
                if disabled.exists() {
                    fs::remove_file(&disabled)
                        .with_context(|| format!("removing {}", disabled.display()))?;
                }
                let cfg = work.join("etc/cloud/cloud.cfg.d/99-hcloud-sim.cfg");
                fs::write(&cfg, CLOUD_INIT_CFG)
                    .with_context(|| format!("writing {}", cfg.display()))?;
            }
            Guest::Bare => {
                bake_keys(&work, keys)?;
                let net = work.join("etc/systemd/network/99-bare.network");
                fs::create_dir_all(net.parent().context("network file has a directory")?)?;
                fs::write(&net, BARE_NETWORK)
                    .with_context(|| format!("writing {}", net.display()))?;
            }
        }
        // This disk's own SSH host keys, made on the host: under TCG the guest spends 10-30 s of
        // its first boot on them (ssh-host-keys.service), the same for every image, and no part
        // of what is compared. cloud-init still makes its own (ssh_deletekeys).
        if !work.join("etc/ssh/ssh_host_ed25519_key").exists() {
            run(
                Command::new("ssh-keygen")
                    .arg("-q")
                    .arg("-A")
                    .arg("-f")
                    .arg(&work),
                "ssh-keygen -A (package openssh-client)",
            )?;
        }
        if disk.exists() {
            fs::remove_file(disk).with_context(|| format!("removing {}", disk.display()))?;
        }
        run(
            Command::new("mkfs.ext4")
                .args(["-q", "-F", "-L", "root", "-d"])
                .arg(&work)
                .arg(disk)
                .arg(DISK_SIZE),
            "mkfs.ext4 -d (package e2fsprogs)",
        )
    })();
    let _ = fs::remove_dir_all(&work);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipe_hash_is_stable_short_and_per_release() {
        assert_eq!(recipe_hash(Release::Sid).len(), 16);
        assert_eq!(recipe_hash(Release::Sid), recipe_hash(Release::Sid));
        assert_ne!(recipe_hash(Release::Sid), recipe_hash(Release::Bookworm));
        let cache = Path::new("/c");
        assert_ne!(
            rootfs_dir(cache, Release::Sid),
            rootfs_dir(cache, Release::Bookworm)
        );
    }

    #[test]
    fn files_install_where_a_package_puts_them() {
        assert_eq!(
            unit_destination("hcloud-network.service"),
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
            unit_destination("99-hcloud-fallback.network"),
            Some("usr/lib/systemd/network")
        );
        assert_eq!(unit_destination("README.md"), None);
    }

    #[test]
    fn installing_a_tree_replaces_files_without_writing_through_links() {
        let t = tempfile::tempdir().unwrap();
        let tree = t.path().join("tree");
        let root = t.path().join("root");
        fs::create_dir_all(tree.join("usr/lib/systemd/system")).unwrap();
        fs::create_dir_all(tree.join("usr/bin")).unwrap();
        fs::write(tree.join("usr/lib/systemd/system/a.service"), "new").unwrap();
        fs::write(tree.join("usr/bin/x"), "bin").unwrap();
        fs::set_permissions(tree.join("usr/bin/x"), fs::Permissions::from_mode(0o755)).unwrap();
        fs::create_dir_all(root.join("usr/lib/systemd/system")).unwrap();
        let pristine = t.path().join("pristine");
        fs::write(&pristine, "old").unwrap();
        fs::hard_link(&pristine, root.join("usr/lib/systemd/system/a.service")).unwrap();
        let units = install_tree(&tree, &root).unwrap();
        assert_eq!(units, vec!["a.service".to_string()]);
        assert_eq!(
            fs::read_to_string(root.join("usr/lib/systemd/system/a.service")).unwrap(),
            "new"
        );
        assert_eq!(fs::read_to_string(&pristine).unwrap(), "old");
        let mode = fs::metadata(root.join("usr/bin/x"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o755);
    }
}
