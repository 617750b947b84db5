//! The image half of the product, end to end on the simulated cloud: Debian's packer 1.6.6 runs
//! `packer/debian.pkr.hcl` (reduced for 1.6.6 by `scripts/lib/packer-1.6.6.awk`) against the
//! fake Cloud API; the build server boots the simulated rescue system, installs Debian from the
//! local mirror (its Release signature checked in the rescue system against the keyring the
//! template is given), the agents and the bootloader, and packer takes the snapshot. Then two servers are made from the snapshot,
//! one booting through SeaBIOS and one through OVMF, each on a bigger disk than the build
//! server's, and a user logs in with the key the metadata serves.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use hcloud_fake_cloud::Config;
use hcloud_sim::cloud::{Cloud, CloudOptions, FIRMWARE_LABEL};
use hcloud_sim::image::{Guest, Release};
use hcloud_sim::rescue;
use hcloud_sim::sim::{self, Sim};
use hcloud_sim::vm::Firmware;
use serde_json::{Value, json};

const USERDATA: &str = "#cloud-config\n# from the image test\n";

fn run_ok(cmd: &mut Command, what: &str) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{text}",
        out.status
    );
    text
}

fn wait_status(cloud: &Cloud, id: u64, want: &str, timeout: Duration) {
    let start = Instant::now();
    loop {
        let s = cloud.api("GET", &format!("/servers/{id}"), None).unwrap();
        if s["server"]["status"] == want {
            return;
        }
        assert!(
            start.elapsed() < timeout,
            "server {id} not {want} within {timeout:?}: {s}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// What a user checks on a server made from the snapshot; returns its machine-id and host key.
fn check_server(sim: &Sim, key: &Path, name: &str, firmware: Firmware) -> (String, String) {
    let ssh = |cmd: &str| {
        sim.ssh_ok(key, cmd)
            .unwrap_or_else(|e| panic!("{e:#}\n{}", sim.diagnostics(Some(key))))
    };
    let hostname = common::eventually(
        sim,
        key,
        "hostnamed reports the server's name",
        &format!("test \"$(hostnamectl hostname 2>/dev/null || hostname)\" = {name}"),
        Duration::from_secs(120),
    );
    let _ = hostname;
    let v4 = sim.server.public_ipv4.unwrap().to_string();
    let addrs = ssh("ip -o addr show dev ens3");
    assert!(addrs.contains(&format!("{v4}/32")), "{addrs}");
    let v6 = hcloud_sim::scenario::ServerExt::ipv6_address(&sim.server)
        .unwrap()
        .unwrap();
    common::eventually(
        sim,
        key,
        "the public IPv6 address",
        &format!("ip -o -6 addr show dev ens3 | grep -q '{v6}/64'"),
        Duration::from_secs(120),
    );
    assert_eq!(
        ssh("cat /etc/hcloud-userdata"),
        USERDATA,
        "the user data, byte for byte"
    );
    // The root file system grew to the server's disk (80 GB), from the build server's 40 GB.
    let size: u64 = ssh("findmnt -bno SIZE /").trim().parse().unwrap();
    assert!(size > 60_000_000_000, "root file system is {size} bytes");
    let efi = ssh("test -d /sys/firmware/efi && echo uefi || echo bios");
    let want = match firmware {
        Firmware::Bios => "bios",
        Firmware::Uefi => "uefi",
    };
    assert_eq!(efi.trim(), want, "booted through {want}");
    let failed = ssh("systemctl --failed --no-legend --plain");
    assert_eq!(failed.trim(), "", "failed units");
    assert_eq!(
        ssh("dpkg-query -W -f '${Status}' cloud-init 2>/dev/null || echo absent").trim(),
        "absent"
    );
    let machine_id = ssh("cat /etc/machine-id");
    assert_eq!(machine_id.trim().len(), 32, "{machine_id}");
    let host_key = ssh("cat /etc/ssh/ssh_host_ed25519_key.pub");
    assert!(
        ssh("ls /var/lib/hcloud-dl-metadata/").contains("hcloud-metadata.json"),
        "the agents fetched this server's metadata"
    );
    (machine_id.trim().to_string(), host_key.trim().to_string())
}

/// A throwaway OpenPGP key in `dir`: its public key (ASCII-armored) and a detached
/// signature of `data`, i.e. what a mirror that is not the one the build trusts would serve.
fn foreign_signature(dir: &Path, data: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let home = dir.join("gnupg");
    fs::create_dir_all(&home).unwrap();
    fs::set_permissions(&home, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let gpg = |args: &[&str]| {
        run_ok(
            Command::new("gpg")
                .env("GNUPGHOME", &home)
                .args(["--batch", "--quiet", "--passphrase", ""])
                .args(args),
            "gpg",
        )
    };
    gpg(&[
        "--quick-gen-key",
        "someone else <else@example.invalid>",
        "ed25519",
        "sign",
        "never",
    ]);
    let keyring = dir.join("else.asc");
    let sig = data.with_extension("sig-by-else");
    gpg(&["--armor", "--output", keyring.to_str().unwrap(), "--export"]);
    gpg(&[
        "--output",
        sig.to_str().unwrap(),
        "--detach-sign",
        data.to_str().unwrap(),
    ]);
    (keyring, sig)
}

/// The checkout's packer/ (with pkg/, nix/ and systemd/ beside it) with `template` reduced for
/// packer 1.6.6, and the staged tree of the static build, in `work`.
fn stage_templates(
    ws: &Path,
    bin_dir: &Path,
    work: &Path,
    template: &str,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let dist = work.join("dist");
    if !dist.exists() {
        run_ok(
            Command::new(bin_dir.join("hcloud-image"))
                .args(["dist", "--no-build", "--workspace"])
                .arg(ws)
                .arg("--out")
                .arg(&dist),
            "hcloud-image dist --no-build",
        );
    }
    let packer_dir = work.join("packer");
    if !packer_dir.exists() {
        // With what the templates upload from beside packer/: the Arch package split, the
        // NixOS module and the units it reads.
        for dir in ["packer", "pkg", "nix", "systemd"] {
            run_ok(
                Command::new("cp")
                    .arg("-r")
                    .arg(ws.join(dir))
                    .arg(work.join(dir)),
                "copying the checkout's packer/ and what it uploads",
            );
        }
    }
    let reduced = run_ok(
        Command::new("awk")
            .arg("-f")
            .arg(ws.join("scripts/lib/packer-1.6.6.awk"))
            .arg(ws.join(format!("packer/{template}.pkr.hcl"))),
        "reducing the template",
    );
    fs::write(
        packer_dir.join(format!("{template}-1.6.6.pkr.hcl")),
        reduced,
    )
    .unwrap();
    (packer_dir, dist)
}

/// `packer build` of the reduced `template` in the cloud's namespace with `vars`; its output
/// goes to `log` as it runs. Returns whether it succeeded, the output and the seconds it took.
fn packer_build(
    cloud: &Cloud,
    packer_dir: &Path,
    template: &str,
    vars: &[String],
    log: &Path,
) -> (bool, String, f64) {
    let file = fs::File::create(log).unwrap();
    let started = Instant::now();
    let status = cloud
        .command("packer")
        .current_dir(packer_dir)
        .env("CHECKPOINT_DISABLE", "1")
        .args(["build", "-color=false"])
        .args(vars.iter().map(|v| format!("-var={v}")))
        .arg(format!("{template}-1.6.6.pkr.hcl"))
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .status()
        .unwrap();
    let secs = started.elapsed().as_secs_f64();
    (
        status.success(),
        fs::read_to_string(log).unwrap_or_default(),
        secs,
    )
}

/// The last lines of every console of the cloud's servers (for a failure message).
fn consoles(state: &Path, cloud: &str) -> String {
    fs::read_dir(state)
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(&format!("{cloud}-"))
        })
        .map(|e| {
            let t = fs::read_to_string(e.path().join("serial.log")).unwrap_or_default();
            let lines: Vec<&str> = t.lines().collect();
            format!(
                "==== {}\n{}\n",
                e.path().display(),
                lines[lines.len().saturating_sub(80)..].join("\n")
            )
        })
        .collect()
}

fn start_cloud(base: &hcloud_sim::sim::Options, name: &str, rescue: rescue::RescueImage) -> Cloud {
    let record = base.state_root.join(format!("{name}-requests.jsonl"));
    let _ = fs::remove_file(&record);
    Cloud::start(
        CloudOptions {
            name: name.into(),
            base: base.clone(),
            firmware: Firmware::Bios,
            ipv4_range: Default::default(),
            config: Config {
                action_time: Duration::from_millis(500),
                record_file: Some(record),
                ..Config::default()
            },
        },
        rescue,
    )
    .unwrap()
}

/// What a test of the simulated cloud starts from: a VM slot, the rescue system and the local
/// mirror (built or found in the cache), a work directory and the cloud `name`.
struct Setup {
    base: hcloud_sim::sim::Options,
    ws: std::path::PathBuf,
    _slot: nix::fcntl::Flock<std::fs::File>,
    mirror: std::path::PathBuf,
    work: tempfile::TempDir,
    state: std::path::PathBuf,
    cloud: Cloud,
}

fn setup(name: &str) -> Setup {
    let base = common::options(name, Guest::Agents, Release::Bookworm);
    let ws = common::workspace();
    let slot = common::machine_lock();
    let rescue = rescue::ensure_rescue(&base.cache, None).unwrap();
    let packages = ws.join("packer/files/debian/packages.txt");
    let mirror = rescue::ensure_mirror(&base.cache, &rescue, "trixie", &packages, None).unwrap();
    let state = base.state_root.clone();
    let cloud = start_cloud(&base, name, rescue);
    Setup {
        base,
        ws,
        _slot: slot,
        mirror,
        work: tempfile::tempdir().unwrap(),
        state,
        cloud,
    }
}

/// After a failed build: packer deleted the server and its key, and no snapshot exists; the
/// server's VM and namespace are gone.
fn assert_nothing_left(cloud: &Cloud, state: &Path, name: &str) {
    // packer does not wait for the delete action; Hetzner finishes it on its own.
    assert!(
        cloud.fake.wait_idle(Duration::from_secs(120)),
        "actions still running: {:?}",
        cloud.fake.actions()
    );
    assert!(
        cloud.fake.servers().is_empty(),
        "{:?}",
        cloud.fake.servers()
    );
    assert!(
        cloud.fake.ssh_keys().is_empty(),
        "{:?}",
        cloud.fake.ssh_keys()
    );
    assert!(
        cloud.fake.snapshots().is_empty(),
        "{:?}",
        cloud.fake.snapshots()
    );
    let deletes: Vec<String> = cloud
        .fake
        .requests()
        .iter()
        .filter(|r| r.method == "DELETE")
        .map(|r| r.path.clone())
        .collect();
    assert!(
        deletes.iter().any(|p| p.starts_with("/v1/servers/"))
            && deletes.iter().any(|p| p.starts_with("/v1/ssh_keys/")),
        "packer deleted {deletes:?}"
    );
    let left: Vec<String> = fs::read_dir(state)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| {
            n.starts_with(&format!("{name}-")) && !n.ends_with(".jsonl") && !n.ends_with(".log")
        })
        .collect();
    assert!(left.is_empty(), "servers' state left behind: {left:?}");
    let namespaces = run_ok(Command::new("ip").args(["netns", "list"]), "ip netns list");
    assert!(
        !namespaces.contains(&format!("hsim-{name}-")),
        "server namespaces left: {namespaces}"
    );
}

/// Offline, the Arch Linux bootstrap, the Debian packages and Nix can only come from a local
/// mirror. Served by someone the build does not trust, the three templates must stop before anything is
/// installed, and packer must leave nothing behind: this runs the whole path up to there
/// (API, server, rescue boot, SSH, uploads, disk.sh, the download and its signature check).
#[test]
fn builds_refuse_downloads_signed_by_another_key_and_leave_nothing_behind() {
    let Setup {
        base,
        ws,
        _slot,
        mirror,
        work,
        state,
        cloud,
    } = setup("imgbad");

    // Debian: the mirror's Release is signed by the mirror's key, the build trusts another.
    let url = cloud.serve_directory(&mirror).unwrap();
    let (packer_dir, dist) = stage_templates(&ws, &base.bin_dir, work.path(), "debian");
    let other = work.path().join("other");
    fs::create_dir_all(&other).unwrap();
    let stub = other.join("stub");
    fs::write(&stub, "x").unwrap();
    let (else_keyring, _) = foreign_signature(&other, &stub);
    let (ok, log, _) = packer_build(
        &cloud,
        &packer_dir,
        "debian",
        &[
            format!("dist-dir={}", dist.display()),
            format!("debian-mirror={url}"),
            format!("debian-keyring={}", else_keyring.display()),
        ],
        &state.join("imgbad-debian-packer.log"),
    );
    assert!(
        !ok,
        "the build went through with an untrusted mirror:\n{log}"
    );
    assert!(
        log.contains("disk.sh: partitioning /dev/sda"),
        "the build did not get as far as the disk:\n{log}\n{}",
        consoles(&state, "imgbad")
    );
    assert!(
        log.contains("debian.sh: debootstrap (download and unpack) of trixie"),
        "debian.sh did not stop at the download:\n{log}"
    );
    assert_nothing_left(&cloud, &state, "imgbad");

    // Arch Linux: a bootstrap tarball whose signature is not by the pinned release key.
    let iso = work.path().join("arch/iso/2026.11.01");
    fs::create_dir_all(&iso).unwrap();
    let tarball = iso.join("archlinux-bootstrap-2026.11.01-x86_64.tar.zst");
    run_ok(
        Command::new("sh").arg("-c").arg(format!(
            "tar -C {} -cf - stub | zstd -q -o {}",
            other.display(),
            tarball.display()
        )),
        "a tarball",
    );
    let (_, sig) = foreign_signature(&work.path().join("arch"), &tarball);
    fs::rename(&sig, tarball.with_extension("zst.sig")).unwrap();
    cloud.fake.clear_requests();
    let url = cloud.serve_directory(&work.path().join("arch")).unwrap();
    let (packer_dir, dist) = stage_templates(&ws, &base.bin_dir, work.path(), "archlinux");
    let (ok, log, _) = packer_build(
        &cloud,
        &packer_dir,
        "archlinux",
        &[
            format!("dist-dir={}", dist.display()),
            format!("arch-iso-mirror={url}"),
            "arch-image=2026.11.01".into(),
        ],
        &state.join("imgbad-archlinux-packer.log"),
    );
    assert!(
        !ok,
        "the build went through with a tampered bootstrap:\n{log}"
    );
    assert!(
        log.contains("does not verify against the pinned key"),
        "archlinux.sh did not refuse the signature:\n{log}\n{}",
        consoles(&state, "imgbad")
    );
    assert_nothing_left(&cloud, &state, "imgbad");

    // NixOS: a Nix tarball that is not the one whose SHA-256 the template pins.
    let release = work.path().join("nixmirror/nix-2.35.1");
    fs::create_dir_all(&release).unwrap();
    run_ok(
        Command::new("sh").arg("-c").arg(format!(
            "tar -C {} -cf - stub | xz -q > {}",
            other.display(),
            release.join("nix-2.35.1-x86_64-linux.tar.xz").display()
        )),
        "a tarball",
    );
    cloud.fake.clear_requests();
    let url = cloud
        .serve_directory(&work.path().join("nixmirror"))
        .unwrap();
    let (packer_dir, dist) = stage_templates(&ws, &base.bin_dir, work.path(), "nixos");
    let (ok, log, _) = packer_build(
        &cloud,
        &packer_dir,
        "nixos",
        &[
            format!("dist-dir={}", dist.display()),
            format!("nix-mirror={url}"),
            "nix-version=2.35.1".into(),
        ],
        &state.join("imgbad-nixos-packer.log"),
    );
    assert!(!ok, "the build went through with a tampered Nix:\n{log}");
    assert!(
        log.contains("disk.sh: partitioning /dev/sda"),
        "the build did not get as far as the disk:\n{log}\n{}",
        consoles(&state, "imgbad")
    );
    assert!(
        log.contains("nix-2.35.1-x86_64-linux.tar.xz does not have the pinned SHA-256"),
        "nixos.sh did not refuse the tarball:\n{log}\n{}",
        consoles(&state, "imgbad")
    );
    assert_nothing_left(&cloud, &state, "imgbad");
    cloud.stop().unwrap();
}

#[test]
fn debian_template_builds_a_snapshot_that_boots_under_bios_and_uefi() {
    let Setup {
        base,
        ws,
        _slot,
        mirror,
        work,
        state,
        cloud,
    } = setup("img");
    let mirror_url = cloud.serve_directory(&mirror).unwrap();
    let (packer_dir, dist) = stage_templates(&ws, &base.bin_dir, work.path(), "debian");
    // `tail -f /var/lib/hcloud-sim/img-packer.log` follows the build.
    let (ok, log, build_secs) = packer_build(
        &cloud,
        &packer_dir,
        "debian",
        &[
            format!("dist-dir={}", dist.display()),
            format!("debian-mirror={mirror_url}"),
            format!(
                "debian-keyring={}",
                rescue::mirror_keyring(&mirror).display()
            ),
        ],
        &state.join("img-packer.log"),
    );
    assert!(
        ok,
        "packer build failed:\n{log}\n{}",
        consoles(&state, "img")
    );

    // What packer left: one snapshot with the template's labels, no server, no key (packer
    // does not wait for the delete action; Hetzner finishes it on its own).
    assert!(cloud.fake.wait_idle(Duration::from_secs(120)));
    let snapshots = cloud.fake.snapshots();
    assert_eq!(snapshots.len(), 1, "{snapshots:?}");
    let snap = &snapshots[0];
    let labels = &snap["labels"];
    assert_eq!(labels["os-flavor"], "debian", "{snap}");
    assert_eq!(labels["distro-release"], "trixie", "{snap}");
    assert!(
        labels["build-id"].as_str().is_some_and(|s| s.len() == 36),
        "{snap}"
    );
    assert!(
        cloud.fake.servers().is_empty(),
        "{:?}",
        cloud.fake.servers()
    );
    assert!(
        cloud.fake.ssh_keys().is_empty(),
        "{:?}",
        cloud.fake.ssh_keys()
    );
    let image_size = snap["image_size"].as_f64().unwrap();
    assert!(
        image_size > 0.1 && image_size < 2.0,
        "image_size {image_size} GB"
    );
    let snapshot_id = snap["id"].as_u64().unwrap();

    let key = state.join("img-key");
    let _ = fs::remove_file(&key);
    let _ = fs::remove_file(key.with_extension("pub"));
    let public = sim::ensure_key(&key, "user@laptop").unwrap();
    cloud
        .api(
            "POST",
            "/ssh_keys",
            Some(&json!({"name": "laptop", "public_key": public})),
        )
        .unwrap();

    let mut seen = Vec::new();
    let mut figures = Vec::new();
    for (name, firmware) in [("web-bios", Firmware::Bios), ("web-uefi", Firmware::Uefi)] {
        let label = match firmware {
            Firmware::Bios => "bios",
            Firmware::Uefi => "uefi",
        };
        let created = Instant::now();
        let answer: Value = cloud
            .api(
                "POST",
                "/servers",
                Some(&json!({
                    "name": name,
                    "server_type": "cx33",
                    "image": snapshot_id.to_string(),
                    "location": "fsn1",
                    "ssh_keys": ["laptop"],
                    "user_data": USERDATA,
                    "labels": {FIRMWARE_LABEL: label},
                })),
            )
            .unwrap();
        let id = answer["server"]["id"].as_u64().unwrap();
        wait_status(&cloud, id, "running", Duration::from_secs(300));
        let sim = cloud.server(id).unwrap();
        sim.wait_ssh(&key, Duration::from_secs(600))
            .unwrap_or_else(|e| panic!("{e:#}\n{}", sim.diagnostics(None)));
        let to_ssh = created.elapsed().as_secs_f64();
        seen.push(check_server(&sim, &key, name, firmware));
        figures.push(format!("{label}: create to SSH {to_ssh:.0} s"));
        cloud
            .api("DELETE", &format!("/servers/{id}"), None)
            .unwrap();
    }
    assert_ne!(seen[0].0, seen[1].0, "two servers share a machine-id");
    assert_ne!(seen[0].1, seen[1].1, "two servers share an SSH host key");
    eprintln!(
        "figures: packer build {build_secs:.0} s, image_size {image_size} GB, {}",
        figures.join(", ")
    );
    cloud.stop().unwrap();
}
