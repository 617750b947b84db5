//! The provisioning scripts that need no disk: install-agents.sh installs a staged tree into a
//! root as a package would and enables the units; cleanup.sh removes what must not be shared by
//! every server made from a snapshot. Both run for real against temporary roots.

use hcloud_image::dist::{self, Arch, Entry, StageInput};
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn script(name: &str) -> PathBuf {
    repo().join("packer/scripts").join(name)
}

/// Runs `cmd`; panics with its output unless it succeeds.
fn run_ok(cmd: &mut Command, what: &str) -> std::process::Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs packer/scripts/`name` with bash and `args`; panics with its output unless it succeeds.
fn script_ok<S: AsRef<std::ffi::OsStr>>(name: &str, args: &[S]) -> std::process::Output {
    run_ok(Command::new("bash").arg(script(name)).args(args), name)
}

fn mode(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

/// A tree with the repository's real unit files and stand-in binaries for every agent they run.
fn staged_tree(dir: &Path) -> (PathBuf, dist::Manifest) {
    let units = dist::plan_units(&repo().join("systemd")).unwrap();
    let mut names = std::collections::BTreeSet::new();
    for u in &units {
        names.extend(dist::referenced_binaries(
            &fs::read_to_string(&u.source).unwrap(),
        ));
    }
    names.insert("hcloud-hostname".into());
    let bin_dir = dir.join("bins");
    fs::create_dir_all(&bin_dir).unwrap();
    let mut binaries = BTreeMap::new();
    let mut entries: Vec<Entry> = Vec::new();
    for n in &names {
        let p = bin_dir.join(n);
        fs::write(&p, format!("#!/bin/sh\necho {n}\n")).unwrap();
        entries.push(Entry {
            source: p.clone(),
            dest: format!("usr/bin/{n}"),
            mode: 0o755,
        });
        binaries.insert(n.clone(), p);
    }
    entries.extend(units);
    let input = StageInput {
        version: "0.1.0".into(),
        git: None,
        arch: Arch::X86_64,
        binaries,
        systemd_dir: repo().join("systemd"),
    };
    let tree = dir.join("tree");
    let manifest = dist::write_tree(&input, &entries, &tree).unwrap();
    (tree, manifest)
}

/// `WantedBy=` targets of a unit file's [Install] section.
fn wanted_by(unit: &str) -> Vec<String> {
    let mut in_install = false;
    let mut out = Vec::new();
    for line in unit.lines().map(str::trim) {
        if line.starts_with('[') {
            in_install = line == "[Install]";
        } else if in_install && let Some(v) = line.strip_prefix("WantedBy=") {
            out.extend(v.split_whitespace().map(str::to_string));
        }
    }
    out
}

#[test]
fn install_agents_installs_every_file_with_its_mode_and_enables_the_units() {
    let dir = tempfile::tempdir().unwrap();
    let (tree, manifest) = staged_tree(dir.path());
    let root = dir.path().join("root");
    fs::create_dir_all(root.join("etc")).unwrap();
    script_ok("install-agents.sh", &[&tree, &root]);
    for f in &manifest.files {
        let p = root.join(&f.path);
        assert_eq!(
            fs::read(&p).unwrap(),
            fs::read(tree.join(&f.path)).unwrap(),
            "{}",
            f.path
        );
        let want = if f.path.starts_with("usr/bin/") {
            0o755
        } else {
            0o644
        };
        assert_eq!(mode(&p), want, "{}", f.path);
    }
    assert!(root.join(dist::MANIFEST_PATH).is_file());
    assert!(root.join(dist::SUMS_PATH).is_file());

    // Every unit that says WantedBy= is enabled there, as `systemctl enable` would on the server.
    let mut enabled = 0;
    for u in manifest.units.iter().filter(|u| !u.contains("@.")) {
        let text = fs::read_to_string(tree.join("usr/lib/systemd/system").join(u)).unwrap();
        for target in wanted_by(&text) {
            let link = root
                .join("etc/systemd/system")
                .join(format!("{target}.wants"))
                .join(u);
            let dest =
                fs::read_link(&link).unwrap_or_else(|_| panic!("{u} is not enabled for {target}"));
            assert_eq!(dest, Path::new("/usr/lib/systemd/system").join(u));
            enabled += 1;
        }
    }
    assert!(
        enabled > 0 || manifest.units.is_empty(),
        "no unit was enabled"
    );
}

#[test]
fn install_agents_refuses_a_tree_that_does_not_match_its_checksums() {
    let dir = tempfile::tempdir().unwrap();
    let (tree, _) = staged_tree(dir.path());
    fs::write(tree.join("usr/bin/hcloud-hostname"), "truncated").unwrap();
    let root = dir.path().join("root");
    fs::create_dir_all(&root).unwrap();
    let out = Command::new("bash")
        .arg(script("install-agents.sh"))
        .arg(&tree)
        .arg(&root)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not match its SHA256SUMS"));
    assert!(
        !root.join("usr").exists(),
        "nothing may be installed from a damaged tree"
    );

    let out = Command::new("bash")
        .arg(script("install-agents.sh"))
        .arg(dir.path())
        .arg(&root)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("a tree made by hcloud-image dist"));
}

#[test]
fn cleanup_removes_per_server_state_and_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let write = |p: &str, c: &str| {
        let p = root.join(p);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, c).unwrap();
    };
    let gone = [
        "etc/ssh/ssh_host_ed25519_key",
        "etc/ssh/ssh_host_ed25519_key.pub",
        "etc/ssh/ssh_host_rsa_key",
        "var/lib/dbus/machine-id",
        "var/lib/systemd/random-seed",
        "var/lib/systemd/credential.secret",
        "var/lib/dhcpcd/eth0.lease",
        "var/lib/systemd/network/lease",
        "root/.bash_history",
        "home/alice/.bash_history",
        "var/cache/pacman/pkg/linux-6.17-1-x86_64.pkg.tar.zst",
        "var/log/journal/0123/system.journal",
        "var/log/pacman.log",
        "tmp/build-leftover",
        "var/tmp/x",
        "var/lib/hcloud-dl-metadata/hcloud-metadata.json",
        "var/lib/hcloud-dl-userdata/hcloud-userdata",
        "var/lib/hcloud-dl-userdata/hcloud-userdata.instance-id",
    ];
    let kept = [
        "etc/ssh/sshd_config",
        "etc/hostname",
        "etc/fstab",
        "home/alice/.bashrc",
        "var/lib/pacman/local/ALPM_DB_VERSION",
        "usr/bin/hcloud-hostname",
    ];
    for p in gone.iter().chain(kept.iter()) {
        write(p, "x\n");
    }
    write("etc/machine-id", "0123456789abcdef0123456789abcdef\n");

    script_ok("cleanup.sh", &["--no-trim".as_ref(), root.as_os_str()]);
    for p in gone {
        assert!(!root.join(p).exists(), "{p} survived the cleanup");
    }
    for p in kept {
        assert!(root.join(p).exists(), "{p} was removed");
    }
    // machine-id: present and empty, so systemd makes a new one and runs first-boot units.
    assert_eq!(fs::read(root.join("etc/machine-id")).unwrap(), b"");
    assert!(
        root.join("var/log/journal").is_dir(),
        "the journal directory itself stays"
    );

    let out = Command::new("bash")
        .arg(script("cleanup.sh"))
        .arg("/nonexistent")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not look like a root file system"));
}

/// The mount steps of a recursive bind and its recursive unmount, run in a mount namespace of
/// their own with shared propagation (as in the rescue system): is the target's own `/efi`
/// still mounted afterwards?
fn efi_survives_the_unmount(bind_steps: &str) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let script = format!(
        "set -e
mount --make-rshared /
mkdir -p {d}/target {d}/boot
mount -t tmpfs target {d}/target
mkdir -p {d}/target/efi {d}/boot/mnt
mount -t tmpfs esp {d}/target/efi
target={d}/target boot={d}/boot
{bind_steps}
umount -R \"$boot/mnt\"
if mountpoint -q {d}/target/efi; then echo kept; else echo gone; fi"
    );
    let out = Command::new("unshare")
        .args(["--mount", "bash", "-c", &script])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && matches!(said.trim(), "kept" | "gone"),
        "the mount steps failed: {said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    said.trim() == "kept"
}

/// archlinux.sh binds the target into the bootstrap with `mount --rbind` and unmounts it with
/// `umount -R` on exit. Without `--make-rslave` the unmount propagates back to the target's own
/// mounts, so the target's `/efi` was gone when cleanup.sh came to trim the ESP. Every recursive
/// bind in the scripts must be made a slave right after it.
#[test]
fn a_recursive_bind_of_the_target_is_a_slave_so_its_unmount_keeps_the_targets_mounts() {
    assert!(
        !efi_survives_the_unmount("mount --rbind \"$target\" \"$boot/mnt\""),
        "without --make-rslave the unmount should reach the target's /efi (the test would not tell)"
    );
    let scripts = repo().join("packer/scripts");
    let mut binds = 0;
    for entry in fs::read_dir(&scripts).unwrap() {
        let path = entry.unwrap().path();
        let text = fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        for (i, line) in lines.iter().enumerate() {
            let Some(args) = line.strip_prefix("mount --rbind ") else {
                continue;
            };
            binds += 1;
            let mount_point = args.split_whitespace().last().unwrap();
            let slave = format!("mount --make-rslave {mount_point}");
            assert_eq!(
                lines.get(i + 1).copied(),
                Some(slave.as_str()),
                "{}: `{line}` is not followed by `{slave}`",
                path.display()
            );
            assert!(
                efi_survives_the_unmount(&format!("{line}\n{slave}")),
                "{}: `{line}` then `{slave}` still unmounts the target's /efi",
                path.display()
            );
        }
    }
    assert!(
        binds > 0,
        "no `mount --rbind` found in {}",
        scripts.display()
    );
}

/// debian.sh with `env` and a copy of the scripts and files (`files/debian/packages.txt` as
/// given, if any), the target a directory that is not mounted.
fn debian_sh(env: &[(&str, &str)], packages: Option<&str>) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let hcloud = dir.path().join("hcloud");
    let copy = |from: &Path, to: &Path| {
        let out = Command::new("cp")
            .arg("-r")
            .arg(from)
            .arg(to)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    fs::create_dir_all(&hcloud).unwrap();
    copy(&repo().join("packer/scripts"), &hcloud.join("scripts"));
    copy(&repo().join("packer/files"), &hcloud.join("files"));
    if let Some(text) = packages {
        fs::write(hcloud.join("files/debian/packages.txt"), text).unwrap();
    }
    let target = dir.path().join("target");
    fs::create_dir_all(&target).unwrap();
    let out = Command::new("bash")
        .arg(hcloud.join("scripts/debian.sh"))
        .arg(&target)
        .arg("/dev/sda")
        .env("ARCH", std::env::consts::ARCH)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// debian.sh checks what it was given before it installs or downloads anything, and says what
/// was wrong.
#[test]
fn debian_sh_refuses_bad_input_before_anything_is_downloaded() {
    for (env, packages, want) in [
        (
            &[("DEBIAN_RELEASE", "13")][..],
            None,
            "DEBIAN_RELEASE must be a codename such as trixie, got '13'",
        ),
        (
            &[("DEBIAN_MIRROR", "ftp://ftp.debian.org/debian")][..],
            None,
            "the mirror 'ftp://ftp.debian.org/debian' is not an http(s) URL",
        ),
        (
            &[("DEBIAN_APT_MIRROR", "mirror.hetzner.com")][..],
            None,
            "the mirror 'mirror.hetzner.com' is not an http(s) URL",
        ),
        (
            &[("EXTRA_PACKAGES", "vim evil,reboot")][..],
            None,
            "EXTRA_PACKAGES: 'evil,reboot' is not a Debian package name",
        ),
        (
            &[("ARCH", "riscv64")][..],
            None,
            "unsupported architecture riscv64",
        ),
        (
            &[][..],
            Some("# two on a line\nsystemd-sysv udev\n"),
            "packages.txt line 2: one package per line",
        ),
        (
            &[][..],
            Some("# nothing\n\n"),
            "packages.txt lists no packages",
        ),
        (&[][..], None, "is not mounted (run disk.sh first)"),
    ] {
        let (ok, err) = debian_sh(env, packages);
        assert!(!ok, "debian.sh accepted {env:?}");
        assert!(err.contains(want), "{env:?}: wanted {want:?}, got {err}");
    }
}

/// The project's own Arch packages of `tree`: makepkg's package step (`makepkg -R`, the
/// PKGBUILD's package functions on the tree its build step stages), as nobody, since makepkg
/// refuses root. `dir` must be one nobody can enter.
fn makepkg_packages(dir: &Path, tree: &Path) -> Vec<PathBuf> {
    let build = dir.join("makepkg");
    let src = build.join("src");
    let lib = src.join("hcloud-agents-0.1.0/pkg/lib");
    fs::create_dir_all(&lib).unwrap();
    fs::copy(repo().join("pkg/lib/agents.sh"), lib.join("agents.sh")).unwrap();
    fs::copy(
        repo().join("pkg/archlinux/PKGBUILD"),
        build.join("PKGBUILD"),
    )
    .unwrap();
    let copied = Command::new("cp")
        .arg("-a")
        .arg(tree)
        .arg(src.join("tree"))
        .status()
        .unwrap();
    assert!(copied.success());
    let chown = Command::new("chown")
        .args(["-R", "nobody"])
        .arg(&build)
        .status()
        .unwrap();
    assert!(chown.success());
    run_ok(
        Command::new("runuser")
            .args([
                "-u",
                "nobody",
                "--",
                "makepkg",
                "-R",
                "--nodeps",
                "--skipinteg",
            ])
            .current_dir(&build),
        "makepkg -R",
    );
    let mut pkgs: Vec<PathBuf> = fs::read_dir(&build)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().contains(".pkg.tar"))
        .collect();
    pkgs.sort();
    pkgs
}

/// pacman with `root` as its root (Debian's pacman; the image runs Arch's in a chroot).
fn pacman(root: &Path, args: &[&str]) -> Command {
    let mut c = Command::new("pacman");
    c.arg("--root")
        .arg(root)
        .arg("--dbpath")
        .arg(root.join("var/lib/pacman"))
        .args(args);
    c
}

fn arch_root(dir: &Path, name: &str) -> PathBuf {
    let root = dir.join(name);
    fs::create_dir_all(root.join("var/lib/pacman")).unwrap();
    fs::create_dir_all(root.join("etc")).unwrap();
    root
}

/// The Arch Linux image installs the agents as packages, so pacman owns their files and the
/// project's own packages, installed later, replace them; files alone make that install stop
/// at a file conflict.
#[test]
fn the_arch_images_agents_belong_to_pacman_so_the_projects_packages_install_over_them() {
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let (tree, manifest) = staged_tree(dir.path());
    let project = makepkg_packages(dir.path(), &tree);
    assert_eq!(project.len(), manifest.binaries.len(), "{project:?}");

    // Files alone, as install-agents.sh leaves them on Debian: pacman refuses to overwrite them.
    let plain = arch_root(dir.path(), "plain");
    script_ok("install-agents.sh", &[&tree, &plain]);
    let out = pacman(&plain, &["-U", "--noconfirm"])
        .args(&project)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains("hcloud-network: /") && said.contains("exists in filesystem"),
        "{said}"
    );

    // The image's way.
    let image = arch_root(dir.path(), "image");
    let dbpath = image.join("var/lib/pacman");
    script_ok(
        "archlinux-agents.sh",
        &[
            tree.as_os_str(),
            image.as_os_str(),
            "pacman".as_ref(),
            "--root".as_ref(),
            image.as_os_str(),
            "--dbpath".as_ref(),
            dbpath.as_os_str(),
        ],
    );
    for agent in &manifest.binaries {
        let out = pacman(&image, &["-Qqo"])
            .arg(image.join("usr/bin").join(agent))
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            agent,
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(mode(&image.join("usr/bin").join(agent)), 0o755);
    }
    // The units are still enabled, the files no agent has are there, the packages are gone.
    assert!(
        image
            .join("etc/systemd/system/multi-user.target.wants/hcloud-dl-metadata.service")
            .is_symlink()
    );
    assert!(image.join(dist::MANIFEST_PATH).is_file());
    assert!(!image.join("var/cache/hcloud-agents").exists());

    // Later, the project's packages: an upgrade of what is there, no conflict.
    run_ok(
        pacman(&image, &["-U", "--noconfirm"]).args(&project),
        "pacman -U of the project's packages",
    );
    // And each package owns its files for real: removing one removes its binary.
    run_ok(
        &mut pacman(&image, &["-R", "--noconfirm", "hcloud-volumes"]),
        "pacman -R hcloud-volumes",
    );
    assert!(!image.join("usr/bin/hcloud-volumes").exists());
}
