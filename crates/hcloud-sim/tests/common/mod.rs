//! What the VM test files share: the checkout, the machine-wide lock, waiting in the guest.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hcloud_sim::image::{Guest, Release};
use hcloud_sim::sim::{self, Options, Sim};
use hcloud_sim::vm::Accel;

/// The checkout whose `systemd/` and static build are installed (HCLOUD_SIM_WORKSPACE overrides).
pub fn workspace() -> PathBuf {
    match std::env::var_os("HCLOUD_SIM_WORKSPACE") {
        Some(w) => PathBuf::from(w),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .canonicalize()
            .unwrap(),
    }
}

/// The options of a test server named `name` booting `guest` on `release` (the sid server's
/// name gets `-sid`), after checking that this machine can run one (root, QEMU and the rest);
/// HCLOUD_SIM_ACCEL=kvm selects KVM.
pub fn options(name: &str, guest: Guest, release: Release) -> Options {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the end-to-end tests need root (netns, bridges, taps): run `sudo scripts/test`"
    );
    if let Err(e) = sim::check_host() {
        panic!("{e:#}");
    }
    let name = match release {
        Release::Bookworm => name.to_string(),
        Release::Sid => format!("{name}-sid"),
    };
    let mut o = Options::new(&name, &workspace());
    o.guest = guest;
    o.release = release;
    if std::env::var("HCLOUD_SIM_ACCEL").as_deref() == Ok("kvm") {
        o.accel = Accel::Kvm;
    }
    o
}

/// The release HCLOUD_SIM_RELEASE names (bookworm when unset), for the tests that run on one guest.
pub fn release_from_env() -> Release {
    Release::from_env().unwrap_or_else(|e| panic!("{e:#}"))
}

/// How many end-to-end VMs may run at once on this machine: `HCLOUD_SIM_VMS`, else one per CPU
/// (a guest has one vCPU, and under TCG it keeps one host core busy), at most 4.
pub fn vm_slots() -> usize {
    match std::env::var("HCLOUD_SIM_VMS") {
        Ok(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .unwrap_or_else(|| panic!("HCLOUD_SIM_VMS={v:?} is not a positive number")),
        Err(_) => std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .min(4),
    }
}

/// Waits for one of the machine's VM slots (`vm_slots`, lock files `e2e.lock`, `e2e-1.lock`, ...
/// in the state directory), also across test runs. Servers have their own names and network
/// namespaces, so VMs in different slots do not meet; the slots only share out the CPU.
pub fn machine_lock() -> nix::fcntl::Flock<std::fs::File> {
    let dir = Path::new(sim::DEFAULT_STATE);
    std::fs::create_dir_all(dir).unwrap();
    let slots = vm_slots();
    let start = Instant::now();
    let mut files = Vec::new();
    for i in 0..slots {
        let path = match i {
            0 => dir.join("e2e.lock"),
            i => dir.join(format!("e2e-{i}.lock")),
        };
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("opening {}: {e}", path.display()));
        files.push((path, f));
    }
    loop {
        for (path, f) in std::mem::take(&mut files) {
            match nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock) {
                Ok(lock) => {
                    if start.elapsed() > Duration::from_secs(1) {
                        eprintln!(
                            "waited {:.0} s for a VM slot ({slots} on this machine)",
                            start.elapsed().as_secs_f64()
                        );
                    }
                    return lock;
                }
                Err((f, nix::errno::Errno::EWOULDBLOCK)) => files.push((path, f)),
                Err((_, e)) => panic!("locking {}: {e}", path.display()),
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Waits until `cmd` succeeds in the guest (hotplug and similar asynchronous changes).
pub fn eventually(sim: &Sim, key: &Path, what: &str, cmd: &str, timeout: Duration) -> String {
    let start = Instant::now();
    loop {
        let out = sim.ssh(key, cmd).unwrap();
        if out.status.success() {
            eprintln!("{what}: after {:.1} s", start.elapsed().as_secs_f64());
            return String::from_utf8_lossy(&out.stdout).into_owned();
        }
        if start.elapsed() > timeout {
            panic!(
                "{what}: `{cmd}` still fails after {timeout:?}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}
