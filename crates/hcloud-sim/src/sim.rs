//! One simulated server: its state directory, network namespace, DHCP servers, fake metadata
//! service and VM, and what a user does with it (boot, SSH in, hot-plug a network, reboot it as
//! a clone, tear it down).

use std::fs;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::image::{self, Guest, Release};
use crate::net;
use crate::scenario::{self, PrivateNetwork, ScenarioValue, Server, ServerExt};
use crate::vm::{self, Accel, Qmp, VmBoot, VmSpec};

pub const DEFAULT_STATE: &str = "/var/lib/hcloud-sim";

#[derive(Debug, Clone)]
pub struct Options {
    /// Short name: `[a-z0-9-]`, at most 20 characters (namespace `hsim-<name>`).
    pub name: String,
    pub state_root: PathBuf,
    /// Guest image cache (HCLOUD_SIM_CACHE, default /var/cache/hcloud-sim).
    pub cache: PathBuf,
    pub workspace: PathBuf,
    /// The static build (`target/x86_64-unknown-linux-musl/release`): agents and the fake.
    pub bin_dir: PathBuf,
    pub accel: Accel,
    pub memory_mb: u32,
    pub cpus: u32,
    pub guest: Guest,
    /// The Debian release of the guest (HCLOUD_SIM_RELEASE in the tests).
    pub release: Release,
    /// Added to the guest's kernel command line (e.g. `systemd.imds.network=locked`).
    pub kernel_args: Vec<String>,
    pub mirror: Option<String>,
}

impl Options {
    pub fn new(name: &str, workspace: &Path) -> Options {
        Options {
            name: name.to_string(),
            state_root: PathBuf::from(DEFAULT_STATE),
            cache: std::env::var_os("HCLOUD_SIM_CACHE")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(image::DEFAULT_CACHE)),
            workspace: workspace.to_path_buf(),
            bin_dir: image::musl_bin_dir(workspace),
            accel: Accel::Tcg,
            memory_mb: 1024,
            cpus: 1,
            guest: Guest::Agents,
            release: Release::Bookworm,
            kernel_args: Vec::new(),
            mirror: None,
        }
    }
}

pub fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 20
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !ok {
        bail!("simulator name {name:?}: use 1-20 characters a-z, 0-9 and -");
    }
    Ok(())
}

/// Checks that we run as root and have the programs the simulator drives.
pub fn check_host() -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("hcloud-sim needs root (network namespaces, bridges, taps, mkfs): run it with sudo");
    }
    let needed = [
        ("qemu-system-x86_64", "qemu-system-x86"),
        ("dnsmasq", "dnsmasq-base"),
        ("debootstrap", "debootstrap"),
        ("mkfs.ext4", "e2fsprogs"),
        ("ssh", "openssh-client"),
        ("ssh-keygen", "openssh-client"),
        ("ip", "iproute2"),
    ];
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    dirs.extend(["/usr/sbin", "/sbin", "/usr/bin"].map(PathBuf::from));
    let missing: Vec<String> = needed
        .iter()
        .filter(|(prog, _)| !dirs.iter().any(|d| d.join(prog).is_file()))
        .map(|(prog, pkg)| format!("{prog} (Debian/Ubuntu package {pkg})"))
        .collect();
    if !missing.is_empty() {
        bail!(
            "missing programs: {}; install them (sudo scripts/install-deps installs everything)",
            missing.join(", ")
        );
    }
    Ok(())
}

/// Generates an ed25519 key pair (`path`, `path.pub`) unless it exists; returns the public line.
pub fn ensure_key(path: &Path, comment: &str) -> Result<String> {
    if !path.exists() {
        let out = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
            .arg(path)
            .output()
            .context("running ssh-keygen (package openssh-client)")?;
        if !out.status.success() {
            bail!(
                "ssh-keygen -f {} failed: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    let pubpath = path.with_extension("pub");
    let line =
        fs::read_to_string(&pubpath).with_context(|| format!("reading {}", pubpath.display()))?;
    Ok(line.trim().to_string())
}

fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = fs::File::create(&tmp).with_context(|| format!("writing {}", tmp.display()))?;
    f.write_all(data)
        .with_context(|| format!("writing {}", tmp.display()))?;
    f.sync_all().ok();
    fs::rename(&tmp, path).with_context(|| format!("renaming {} into place", tmp.display()))?;
    Ok(())
}

fn read_pid(path: &Path) -> Option<i32> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn alive(pid: i32) -> bool {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
}

/// Stops the process in a pid file: SIGTERM, then SIGKILL after `grace`.
fn stop_pid_file(path: &Path, grace: Duration) {
    let Some(pid) = read_pid(path) else { return };
    let p = nix::unistd::Pid::from_raw(pid);
    let _ = nix::sys::signal::kill(p, nix::sys::signal::Signal::SIGTERM);
    let deadline = Instant::now() + grace;
    while alive(pid) && Instant::now() < deadline {
        // Reap it if it is our child (the fake metadata service).
        let _ = nix::sys::wait::waitpid(p, Some(nix::sys::wait::WaitPidFlag::WNOHANG));
        std::thread::sleep(Duration::from_millis(100));
    }
    if alive(pid) {
        let _ = nix::sys::signal::kill(p, nix::sys::signal::Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(p, Some(nix::sys::wait::WaitPidFlag::WNOHANG));
    }
    let _ = fs::remove_file(path);
}

pub struct Sim {
    pub opts: Options,
    pub dir: PathBuf,
    pub ns: String,
    pub scenario: ScenarioValue,
    pub server: Server,
    /// When QEMU was started (for time-to-SSH).
    pub booted_at: Option<Instant>,
}

impl Sim {
    pub fn state_dir(opts: &Options) -> PathBuf {
        opts.state_root.join(&opts.name)
    }

    /// A new server from a scenario value (written to `<state>/scenario.json`).
    pub fn new(opts: Options, scenario: ScenarioValue) -> Result<Sim> {
        check_name(&opts.name)?;
        let server = scenario::server_of(&scenario)?;
        let dir = Sim::state_dir(&opts);
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let ns = net::namespace(&opts.name);
        let sim = Sim {
            opts,
            dir,
            ns,
            scenario,
            server,
            booted_at: None,
        };
        sim.write_scenario()?;
        Ok(sim)
    }

    pub fn scenario_path(&self) -> PathBuf {
        self.dir.join("scenario.json")
    }
    pub fn disk_path(&self) -> PathBuf {
        self.dir.join("disk.raw")
    }
    pub fn serial_log(&self) -> PathBuf {
        self.dir.join("serial.log")
    }
    fn qmp_socket(&self) -> PathBuf {
        self.dir.join("qmp.sock")
    }
    fn qemu_pid(&self) -> PathBuf {
        self.dir.join("qemu.pid")
    }
    fn fake_pid(&self) -> PathBuf {
        self.dir.join("fake.pid")
    }
    pub fn fake_log(&self) -> PathBuf {
        self.dir.join("fake.log")
    }

    fn write_scenario(&self) -> Result<()> {
        let text = serde_json::to_vec_pretty(&self.scenario)?;
        write_atomic(&self.scenario_path(), &text)
    }

    /// Replaces the scenario; the fake metadata service reloads it (mtime).
    pub fn set_scenario(&mut self, value: ScenarioValue) -> Result<()> {
        self.server = scenario::server_of(&value)?;
        self.scenario = value;
        // The fake notices changes by modification time: make sure it moves.
        std::thread::sleep(Duration::from_millis(20));
        self.write_scenario()
    }

    /// Builds the guest image (cached) and this server's disk.
    pub fn prepare_disk(&self) -> Result<()> {
        if self.opts.guest == Guest::CloudInit && self.opts.release != Release::Bookworm {
            bail!(
                "the cloud-init peer runs on the bookworm guest only (its image has cloud-init 22.4)"
            );
        }
        let rootfs = image::ensure_rootfs(
            &self.opts.cache,
            self.opts.release,
            self.opts.mirror.as_deref(),
        )?;
        let tree = self.dir.join("install-tree");
        let tree_ref = match self.opts.guest {
            Guest::Agents => {
                image::stage_install_tree(&self.opts.workspace, &self.opts.bin_dir, &tree)?;
                Some(tree.as_path())
            }
            Guest::CloudInit | Guest::Bare => None,
        };
        image::build_disk(
            &rootfs,
            self.opts.guest,
            tree_ref,
            &self.server.public_keys,
            &self.disk_path(),
        )
    }

    fn fake_binary(&self) -> Result<PathBuf> {
        let p = self.opts.bin_dir.join("hcloud-fake-metadata");
        if !p.is_file() {
            bail!(
                "{} is missing: build it first ({})",
                p.display(),
                image::BUILD_HINT
            );
        }
        Ok(p)
    }

    /// Creates the network, starts DHCP, the fake metadata service and the VM.
    pub fn boot(&mut self) -> Result<()> {
        let rootfs = image::rootfs_dir(&self.opts.cache, self.opts.release);
        let (kernel, initrd) = image::kernel_of(&rootfs)?;
        if !self.disk_path().is_file() {
            bail!(
                "{} is missing: prepare the disk first",
                self.disk_path().display()
            );
        }
        self.start_network()?;
        let _ = fs::remove_file(self.serial_log());
        self.start_vm(VmBoot::Kernel { kernel, initrd })
    }

    /// Creates the namespace and the server's links, starts DHCP and the fake metadata service
    /// (a namespace left from an earlier run is torn down first).
    pub fn start_network(&mut self) -> Result<()> {
        if net::namespace_exists(&self.ns) {
            teardown(&self.opts)?;
        }
        let fake = self.fake_binary()?;
        net::run_all(&net::plan(&self.ns, &self.server)?)
            .context("creating the simulated network")?;
        if let Some(d) = net::dhcp_public(&self.dir, &self.server)? {
            net::start_dhcp(&self.ns, &d)?;
        }
        let metadata = self.server.metadata_network();
        for p in &self.server.private_networks {
            let metadata_route = metadata == Some(p.interface_num);
            net::start_dhcp(&self.ns, &net::dhcp_private(&self.dir, p, metadata_route)?)?;
        }
        self.start_fake(&fake)
    }

    /// Starts QEMU on the network `start_network` made, booting `boot`.
    pub fn start_vm(&mut self, boot: VmBoot) -> Result<()> {
        let spec = VmSpec {
            name: self.opts.name.clone(),
            accel: self.opts.accel,
            memory_mb: self.opts.memory_mb,
            cpus: self.opts.cpus,
            boot,
            kernel_args: self.opts.kernel_args.clone(),
            disk: self.disk_path(),
            serial_log: self.serial_log(),
            qmp_socket: self.qmp_socket(),
            pid_file: self.qemu_pid(),
        };
        self.booted_at = Some(Instant::now());
        vm::start(&self.ns, &spec, &self.server)?;
        Ok(())
    }

    /// Cuts the VM's power (SIGTERM to QEMU, SIGKILL after a grace); the network stays.
    pub fn kill_vm(&self) {
        stop_pid_file(&self.qemu_pid(), Duration::from_secs(10));
    }

    fn start_fake(&self, fake: &Path) -> Result<()> {
        let log = fs::File::create(self.fake_log())
            .with_context(|| format!("creating {}", self.fake_log().display()))?;
        let listen = format!("{}:80", net::METADATA_V4);
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns])
            .arg(fake)
            .arg("--scenario")
            .arg(self.scenario_path())
            .args(["--listen", &listen])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting {}", fake.display()))?;
        fs::write(self.fake_pid(), child.id().to_string())?;
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let text = fs::read_to_string(self.fake_log()).unwrap_or_default();
            if text.contains("listening on") {
                return Ok(());
            }
            if Instant::now() > deadline || !alive(child.id() as i32) {
                bail!(
                    "the fake metadata service did not start on {listen}: {}",
                    text.trim()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn qemu_running(&self) -> bool {
        read_pid(&self.qemu_pid()).is_some_and(alive)
    }

    pub fn qmp(&self) -> Result<Qmp> {
        Qmp::connect(&self.qmp_socket())
    }

    /// `ssh` as root to the server (from inside its namespace), running `remote`.
    pub fn ssh_command(&self, key: &Path, remote: &str) -> Result<Command> {
        self.ssh_command_opt(key, Some(remote))
    }

    /// An interactive root login on the server.
    pub fn login_command(&self, key: &Path) -> Result<Command> {
        self.ssh_command_opt(key, None)
    }

    fn ssh_command_opt(&self, key: &Path, remote: Option<&str>) -> Result<Command> {
        let addr = self.server.ssh_address()?;
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns, "ssh", "-i"])
            .arg(key)
            .args([
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "BatchMode=yes",
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "ConnectTimeout=5",
                "-o",
                "LogLevel=ERROR",
            ]);
        match remote {
            Some(r) => {
                c.arg(format!("root@{addr}")).arg("--").arg(r);
            }
            None => {
                c.arg("-t").arg(format!("root@{addr}"));
            }
        }
        Ok(c)
    }

    pub fn ssh(&self, key: &Path, remote: &str) -> Result<Output> {
        let out = self
            .ssh_command(key, remote)?
            .stdin(Stdio::null())
            .output()
            .context("running ssh (package openssh-client)")?;
        Ok(out)
    }

    /// Runs a command in the guest and returns its stdout; fails when it exits non-zero.
    pub fn ssh_ok(&self, key: &Path, remote: &str) -> Result<String> {
        let out = self.ssh(key, remote)?;
        if !out.status.success() {
            bail!(
                "in the guest, `{remote}` failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Whether the guest's SSH port takes a TCP connection within `timeout`, asked from the
    /// server's namespace: cheap enough to ask every 100 ms, unlike a login.
    fn ssh_port_open(&self, timeout: Duration) -> bool {
        let Ok(ip) = self
            .server
            .ssh_address()
            .and_then(|a| Ok(a.parse::<std::net::IpAddr>()?))
        else {
            return false;
        };
        let addr = std::net::SocketAddr::new(ip, 22);
        net::in_namespace(&self.ns, || {
            std::net::TcpStream::connect_timeout(&addr, timeout).is_ok()
        })
        .unwrap_or(false)
    }

    /// Waits until root can log in with `key`; returns the time since QEMU started. The port
    /// is probed every 100 ms and a login tried once it answers, so the figure is within a few
    /// hundred milliseconds of when a user could have logged in (logins every 2 s, each waiting
    /// up to 5 s for a server without an address yet, made it up to 7 s late).
    pub fn wait_ssh(&self, key: &Path, timeout: Duration) -> Result<Duration> {
        let start = Instant::now();
        loop {
            if self.ssh_port_open(Duration::from_millis(300))
                && let Ok(out) = self.ssh(key, "true")
                && out.status.success()
            {
                return Ok(self
                    .booted_at
                    .map(|b| b.elapsed())
                    .unwrap_or(start.elapsed()));
            }
            if !self.qemu_running() {
                bail!("QEMU exited before SSH came up");
            }
            if start.elapsed() > timeout {
                bail!(
                    "no SSH login as root@{} with {} within {timeout:?}",
                    self.server.ssh_address()?,
                    key.display()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits for a DHCP lease of the bridge's dnsmasq (`pub` or `p<N>`).
    pub fn wait_dhcp_ack(&self, tag: &str, timeout: Duration) -> Result<()> {
        let log = self.dir.join(format!("dnsmasq-{tag}.log"));
        let start = Instant::now();
        loop {
            if fs::read_to_string(&log)
                .unwrap_or_default()
                .contains("DHCPACK")
            {
                return Ok(());
            }
            if start.elapsed() > timeout {
                bail!("no DHCPACK in {} within {timeout:?}", log.display());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Attaches a private network to the running server: the fake service serves it, the
    /// network exists, then the NIC is hot-plugged, as on Hetzner.
    pub fn attach_private(
        &mut self,
        p: &PrivateNetwork,
        value_with_it: ScenarioValue,
    ) -> Result<()> {
        self.set_scenario(value_with_it)?;
        net::run_all(&net::plan_private(&self.ns, p, false)?)?;
        net::start_dhcp(&self.ns, &net::dhcp_private(&self.dir, p, false)?)?;
        let mut qmp = self.qmp()?;
        vm::attach_private(&mut qmp, p)
    }

    /// Detaches a private network: the NIC is unplugged, the fake service stops serving it.
    pub fn detach_private(
        &mut self,
        p: &PrivateNetwork,
        value_without_it: ScenarioValue,
    ) -> Result<()> {
        let mut qmp = self.qmp()?;
        vm::detach_private(&mut qmp, p)?;
        self.set_scenario(value_without_it)?;
        stop_pid_file(
            &self.dir.join(format!("dnsmasq-p{}.pid", p.interface_num)),
            Duration::from_secs(5),
        );
        net::run_all(&net::unplan_private(&self.ns, p)?)
    }

    /// Powers the VM off (ACPI, then quit) and removes the network; the disk stays.
    pub fn halt(&mut self) -> Result<()> {
        if self.qemu_running()
            && let Ok(mut q) = self.qmp()
        {
            let _ = q.execute("system_powerdown", serde_json::json!({}));
            let deadline = Instant::now() + Duration::from_secs(90);
            while self.qemu_running() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(500));
            }
        }
        teardown(&self.opts)
    }

    /// What to print when something failed: the tail of the serial console (which carries the
    /// journal), the hcloud units' journal if SSH still works, DHCP and fake service logs.
    pub fn diagnostics(&self, key: Option<&Path>) -> String {
        let mut s = String::new();
        let tail = |path: &Path, n: usize| {
            let text =
                fs::read_to_string(path).unwrap_or_else(|e| format!("({}: {e})", path.display()));
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(n)..].join("\n")
        };
        s.push_str(&format!(
            "==== serial console {} (last 250 lines)\n",
            self.serial_log().display()
        ));
        s.push_str(&tail(&self.serial_log(), 250));
        if let Some(key) = key
            && let Ok(out) = self.ssh(key, "journalctl -b --no-pager -o short-monotonic -u 'hcloud-*' -u 'cloud-*' -u systemd-networkd; systemctl --failed --no-pager; networkctl --no-pager; ls -l /run/systemd/network/")
            && out.status.success()
        {
            s.push_str("\n==== journal of the hcloud units (over SSH)\n");
            s.push_str(&String::from_utf8_lossy(&out.stdout));
        }
        for e in fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("dnsmasq-") && name.ends_with(".log") || name == "fake.log" {
                s.push_str(&format!("\n==== {name} (last 40 lines)\n"));
                s.push_str(&tail(&e.path(), 40));
            }
        }
        s
    }
}

/// Stops everything of the server `opts.name` (VM, fake service, DHCP) and deletes its namespace.
/// Works from another process (pid files). The disk and logs stay in the state directory.
pub fn teardown(opts: &Options) -> Result<()> {
    let dir = Sim::state_dir(opts);
    stop_pid_file(&dir.join("qemu.pid"), Duration::from_secs(10));
    stop_pid_file(&dir.join("fake.pid"), Duration::from_secs(5));
    if let Ok(entries) = fs::read_dir(&dir) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("dnsmasq-") && name.ends_with(".pid") {
                stop_pid_file(&e.path(), Duration::from_secs(5));
            }
        }
    }
    let ns = net::namespace(&opts.name);
    if net::namespace_exists(&ns) {
        net::run(&["ip".into(), "netns".into(), "del".into(), ns.clone()])?;
    }
    Ok(())
}

/// Removes the server's state directory (disk, logs, keys) after `teardown`.
pub fn purge(opts: &Options) -> Result<()> {
    teardown(opts)?;
    let dir = Sim::state_dir(opts);
    if dir.exists() {
        fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    Ok(())
}

impl Sim {
    /// An existing server's state (after `up`), for `ssh`, `report` and `down`.
    pub fn open(opts: Options) -> Result<Sim> {
        let dir = Sim::state_dir(&opts);
        let path = dir.join("scenario.json");
        let (scenario, server) = scenario::load(&path).with_context(|| {
            format!(
                "no simulated server {:?} (run `hcloud-sim up` first)",
                opts.name
            )
        })?;
        let ns = net::namespace(&opts.name);
        Ok(Sim {
            opts,
            dir,
            ns,
            scenario,
            server,
            booted_at: None,
        })
    }

    /// The key pair the simulator logs in with (`<state>/id_ed25519`).
    pub fn key_path(&self) -> PathBuf {
        self.dir.join("id_ed25519")
    }
}
