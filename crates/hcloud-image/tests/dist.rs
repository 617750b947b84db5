//! `hcloud-image dist` for real: the workspace's agents built as static binaries for each
//! architecture and laid out as the install tree the images, packages and simulator use.

use hcloud_image::dist::{self, Arch};
use hcloud_image::elf::{self, Machine};
use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs `cmd`, failing the test with its output unless it succeeds; returns its stdout.
fn run_ok(cmd: &mut Command, what: &str) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn run_dist(arch: &str, out: &Path) {
    let status = Command::new(env!("CARGO_BIN_EXE_hcloud-image"))
        .args(["--workspace"])
        .arg(repo())
        .args(["dist", "--arch", arch, "--out"])
        .arg(out)
        .status()
        .unwrap();
    assert!(status.success(), "hcloud-image dist --arch {arch} failed");
}

/// The checks a packager or the simulator relies on.
fn check_tree(tree: &Path, arch: Arch, machine: Machine) -> dist::Manifest {
    let m = dist::read_manifest(tree).unwrap();
    assert_eq!(m.arch, arch);
    assert_eq!(m.target, arch.target());

    // Exactly the workspace's agents, each a static executable for the architecture.
    let ws = dist::load_workspace(&repo()).unwrap();
    let want: BTreeSet<String> = dist::select_agents(&ws.bins)
        .into_iter()
        .map(|b| b.name)
        .collect();
    let got: BTreeSet<String> = m.binaries.iter().cloned().collect();
    assert_eq!(got, want);
    let in_bin: BTreeSet<String> = fs::read_dir(tree.join("usr/bin"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(in_bin, want, "usr/bin holds exactly the agents");
    for b in &m.binaries {
        let p = tree.join("usr/bin").join(b);
        let info = elf::inspect(&p).unwrap();
        assert_eq!(info.machine, machine, "{b}");
        assert!(info.is_static(), "{b} is dynamically linked: {info:?}");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o755,
            "{b}"
        );
    }

    // Every file of systemd/ at the place a package installs it, byte for byte.
    for e in dist::plan_units(&repo().join("systemd")).unwrap() {
        let staged = tree.join(&e.dest);
        assert_eq!(
            fs::read(&staged).unwrap(),
            fs::read(&e.source).unwrap(),
            "{}",
            e.dest
        );
        assert_eq!(
            fs::metadata(&staged).unwrap().permissions().mode() & 0o777,
            0o644,
            "{}",
            e.dest
        );
    }

    // Each agent's manual page (section 8, gzip) and its bash, zsh and fish completions.
    for b in &m.binaries {
        for path in [
            format!("usr/share/man/man8/{b}.8.gz"),
            format!("usr/share/bash-completion/completions/{b}"),
            format!("usr/share/zsh/site-functions/_{b}"),
            format!("usr/share/fish/vendor_completions.d/{b}.fish"),
        ] {
            let bytes = fs::read(tree.join(&path)).unwrap_or_else(|e| panic!("{path}: {e}"));
            assert!(!bytes.is_empty(), "{path} is empty");
        }
        let page = fs::read(tree.join(format!("usr/share/man/man8/{b}.8.gz"))).unwrap();
        assert_eq!(&page[..2], &[0x1f, 0x8b], "{b}.8.gz is gzip");
    }

    // The manifest lists every file of the tree (but itself and the sums) with its real hash.
    let mut listed = BTreeSet::new();
    for f in &m.files {
        let bytes = fs::read(tree.join(&f.path)).unwrap();
        assert_eq!(dist::sha256_hex(&bytes), f.sha256, "{}", f.path);
        assert_eq!(bytes.len() as u64, f.size);
        listed.insert(f.path.clone());
    }
    let mut on_disk = BTreeSet::new();
    let mut stack = vec![tree.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                on_disk.insert(p.strip_prefix(tree).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    on_disk.remove(dist::MANIFEST_PATH);
    on_disk.remove(dist::SUMS_PATH);
    assert_eq!(on_disk, listed);
    let sums = Command::new("sha256sum")
        .args(["--check", "--strict", "--quiet", dist::SUMS_PATH])
        .current_dir(tree)
        .status()
        .unwrap();
    assert!(
        sums.success(),
        "sha256sum -c of the tree's SHA256SUMS failed"
    );
    m
}

#[test]
fn dist_x86_64_stages_static_agents_and_the_units() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("x86_64");
    run_dist("x86_64", &tree);
    let m = check_tree(&tree, Arch::X86_64, Machine::X86_64);

    // The agents run (the test host is x86_64).
    for b in &m.binaries {
        let out = Command::new(tree.join("usr/bin").join(b))
            .arg("--help")
            .output()
            .unwrap();
        assert!(out.status.success(), "{b} --help failed");
    }

    // A second run replaces the tree; a foreign directory is refused, not emptied.
    run_dist("x86_64", &tree);
    let foreign = dir.path().join("mine");
    fs::create_dir_all(&foreign).unwrap();
    fs::write(foreign.join("keep"), "x").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_hcloud-image"))
        .arg("--workspace")
        .arg(repo())
        .args(["dist", "--no-build", "--out"])
        .arg(&foreign)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is not a tree made by hcloud-image dist")
    );
    assert!(foreign.join("keep").exists());
}

#[test]
fn dist_aarch64_cross_builds_static_agents_that_run_under_qemu() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("aarch64");
    run_dist("aarch64", &tree);
    let m = check_tree(&tree, Arch::Aarch64, Machine::Aarch64);
    for b in &m.binaries {
        let help = run_ok(
            Command::new("qemu-aarch64")
                .arg(tree.join("usr/bin").join(b))
                .arg("--help"),
            &format!("{b} --help under qemu-aarch64 (Debian package qemu-user)"),
        );
        assert!(help.contains("Usage"), "{b}");
    }

    // The aarch64 release tarball made from this tree installs like the x86_64 one (same
    // install.sh checks), and what it installs runs on aarch64.
    let release = dir.path().join("release");
    let tree_arg = format!("aarch64={}", tree.display());
    run_ok(
        Command::new(repo().join("pkg/release/make-release"))
            .args(["--tree", &tree_arg, "--no-source", "--out"])
            .arg(&release),
        "make-release",
    );
    let tarball = release.join(format!("hcloud-agents-{}-aarch64.tar.gz", m.version));
    run_ok(
        Command::new(repo().join("pkg/release/test-install.sh")).arg(&tarball),
        "test-install.sh on the aarch64 tarball",
    );
    let (root, unpacked) = (dir.path().join("root"), dir.path().join("unpacked"));
    fs::create_dir_all(&root).unwrap();
    fs::create_dir_all(&unpacked).unwrap();
    run_ok(
        Command::new("tar")
            .arg("-xzf")
            .arg(&tarball)
            .arg("-C")
            .arg(&unpacked),
        "unpacking the tarball",
    );
    let install = unpacked
        .join(format!("hcloud-agents-{}-aarch64", m.version))
        .join("install.sh");
    run_ok(
        Command::new(&install).arg("--root").arg(&root).arg("--all"),
        "install.sh --all",
    );
    for b in &m.binaries {
        let installed = root.join("usr/bin").join(b);
        assert_eq!(elf::inspect(&installed).unwrap().machine, Machine::Aarch64);
        let version = run_ok(
            Command::new("qemu-aarch64")
                .arg(&installed)
                .arg("--version"),
            &format!("installed {b} --version under qemu-aarch64"),
        );
        assert!(version.contains(b.as_str()), "{b} --version: {version}");
    }
}
