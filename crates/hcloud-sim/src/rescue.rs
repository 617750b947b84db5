//! The simulated rescue system and the local Debian mirror the build servers install from, both
//! cached like the guest images: the rescue root file system from `image/rescue.sh`
//! (debootstrap of Debian trixie with what Hetzner's rescue offers), turned into an ext4 image
//! with its kernel and initrd beside it; the mirror from `image/mirror.sh` (the packages a
//! debootstrap needs, downloaded by the rescue system's own debootstrap, indexed and signed by a
//! key of the mirror's own: [`mirror_keyring`]).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

use crate::image::{self, run};

pub const RESCUE_RECIPE: &str = include_str!("../image/rescue.sh");
pub const MIRROR_RECIPE: &str = include_str!("../image/mirror.sh");
/// The size of the rescue system's root image (sparse).
const ROOT_SIZE: &str = "3G";

/// A built rescue system.
#[derive(Debug, Clone, PartialEq)]
pub struct RescueImage {
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    /// The ext4 image booted as `/dev/vda` (writes dropped at power-off).
    pub root: PathBuf,
    /// The tree the image was made from (the mirror recipe runs its debootstrap).
    pub tree: PathBuf,
}

fn rescue_dir(cache: &Path) -> PathBuf {
    cache.join(format!(
        "rescue-{}",
        image::short_hash(&[RESCUE_RECIPE.as_bytes()])
    ))
}

fn remove_stale(cache: &Path, prefix: &str, keep: &Path) {
    for e in fs::read_dir(cache).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with(prefix) && e.path() != keep {
            let _ = fs::remove_dir_all(e.path());
        }
    }
}

/// The cached rescue system, built first when its recipe changed.
pub fn ensure_rescue(cache: &Path, mirror: Option<&str>) -> Result<RescueImage> {
    let _guard = image::lock_cache(cache)?;
    let dir = rescue_dir(cache);
    let img = RescueImage {
        kernel: dir.join("vmlinuz"),
        initrd: dir.join("initrd.img"),
        root: dir.join("root.img"),
        tree: dir.join("tree"),
    };
    if img.root.is_file() {
        return Ok(img);
    }
    remove_stale(cache, "rescue-", &dir);
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let script = dir.join("rescue.sh");
    fs::write(&script, RESCUE_RECIPE).with_context(|| format!("writing {}", script.display()))?;
    if img.tree.exists() {
        fs::remove_dir_all(&img.tree)
            .with_context(|| format!("removing stale {}", img.tree.display()))?;
    }
    eprintln!("hcloud-sim: building the rescue system (debootstrap of Debian trixie)");
    let mut cmd = Command::new("bash");
    cmd.arg(&script).arg(&img.tree);
    if let Some(m) = mirror {
        cmd.arg(m);
    }
    run(&mut cmd, "building the rescue system (image/rescue.sh)")?;
    // Its host keys, made here rather than under emulation at every boot.
    run(
        Command::new("ssh-keygen")
            .args(["-q", "-A", "-f"])
            .arg(&img.tree),
        "ssh-keygen -A for the rescue system (package openssh-client)",
    )?;
    let (kernel, initrd) = image::kernel_of(&img.tree)?;
    fs::copy(&kernel, &img.kernel).with_context(|| format!("copying {}", kernel.display()))?;
    fs::copy(&initrd, &img.initrd).with_context(|| format!("copying {}", initrd.display()))?;
    let building = dir.join("root.img.building");
    run(
        Command::new("mkfs.ext4")
            .args(["-q", "-F", "-L", "rescue", "-d"])
            .arg(&img.tree)
            .arg(&building)
            .arg(ROOT_SIZE),
        "mkfs.ext4 -d of the rescue system (package e2fsprogs)",
    )?;
    fs::rename(&building, &img.root)
        .with_context(|| format!("moving {} into place", building.display()))?;
    Ok(img)
}

/// The public key (ASCII-armored) that the Release file of the mirror in `dir` is signed with.
pub fn mirror_keyring(dir: &Path) -> PathBuf {
    dir.join("mirror-keyring.asc")
}

/// The cached local mirror of `suite` with what a debootstrap including the packages of
/// `packages_file` needs (the pool, `dists/<suite>/` with the index of those packages and its
/// signed Release file), built first when the recipes or the list changed.
pub fn ensure_mirror(
    cache: &Path,
    rescue: &RescueImage,
    suite: &str,
    packages_file: &Path,
    mirror: Option<&str>,
) -> Result<PathBuf> {
    let list = fs::read(packages_file)
        .with_context(|| format!("reading the package list {}", packages_file.display()))?;
    let _guard = image::lock_cache(cache)?;
    let key = image::short_hash(&[
        MIRROR_RECIPE.as_bytes(),
        RESCUE_RECIPE.as_bytes(),
        suite.as_bytes(),
        &list,
    ]);
    let prefix = format!("mirror-{suite}-");
    let dir = cache.join(format!("{prefix}{key}"));
    if mirror_keyring(&dir).is_file() {
        return Ok(dir);
    }
    remove_stale(cache, &prefix, &dir);
    let script = cache.join(format!("mirror-{key}.sh"));
    fs::write(&script, MIRROR_RECIPE).with_context(|| format!("writing {}", script.display()))?;
    let building = cache.join(format!("building-mirror-{suite}-{key}"));
    if building.exists() {
        fs::remove_dir_all(&building)
            .with_context(|| format!("removing stale {}", building.display()))?;
    }
    eprintln!("hcloud-sim: building the local Debian {suite} mirror");
    let mut cmd = Command::new("bash");
    cmd.arg(&script)
        .arg(&building)
        .arg(&rescue.tree)
        .arg(suite)
        .arg(packages_file);
    if let Some(m) = mirror {
        cmd.arg(m);
    }
    let result = run(
        &mut cmd,
        "building the local Debian mirror (image/mirror.sh)",
    );
    let _ = fs::remove_file(&script);
    result?;
    fs::rename(&building, &dir)
        .with_context(|| format!("moving {} into place", building.display()))?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rescue_image_is_keyed_by_its_recipe() {
        let d = rescue_dir(Path::new("/c"));
        assert!(d.starts_with("/c"));
        assert_eq!(
            d.file_name().unwrap().to_string_lossy().len(),
            "rescue-".len() + 16
        );
    }
}
