use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Parser;
use hcloud_sim::cli::{Cli, Cmd};
use hcloud_sim::image::{self, Guest};
use hcloud_sim::scenario::{self, ServerExt};
use hcloud_sim::sim::{self, Options, Sim};
use hcloud_sim::vm::Firmware;
use hcloud_sim::{cloud, report, rescue};

fn find_workspace(start: &Path) -> Result<PathBuf> {
    let mut dir = start
        .canonicalize()
        .with_context(|| format!("resolving {}", start.display()))?;
    loop {
        let manifest = dir.join("Cargo.toml");
        if manifest.is_file()
            && std::fs::read_to_string(&manifest)
                .unwrap_or_default()
                .contains("[workspace]")
        {
            return Ok(dir);
        }
        if !dir.pop() {
            bail!(
                "{} is not inside the hcloud agents workspace: pass --workspace",
                start.display()
            );
        }
    }
}

/// `hcloud-sim cloud`: serve until SIGINT or SIGTERM, then delete every server.
fn serve_cloud(
    opts: Options,
    firmware: Firmware,
    token: String,
    serve: Option<PathBuf>,
    mirror: Option<String>,
) -> Result<()> {
    // Blocked before any thread starts, so every thread inherits it and the wait below gets
    // the signal.
    let mut set = nix::sys::signal::SigSet::empty();
    set.add(nix::sys::signal::Signal::SIGINT);
    set.add(nix::sys::signal::Signal::SIGTERM);
    set.thread_block().context("blocking SIGINT and SIGTERM")?;
    let rescue = rescue::ensure_rescue(&opts.cache, mirror.as_deref())?;
    let name = opts.name.clone();
    let config = hcloud_fake_cloud::Config {
        token,
        record_file: Some(opts.state_root.join(&name).join("requests.jsonl")),
        ..Default::default()
    };
    let c = cloud::Cloud::start(
        cloud::CloudOptions {
            name,
            base: opts,
            firmware,
            ipv4_range: Default::default(),
            config,
        },
        rescue,
    )?;
    if let Some(dir) = serve {
        println!("serving {} at {}", dir.display(), c.serve_directory(&dir)?);
    }
    println!("simulated Hetzner Cloud API in namespace {}:", c.ns);
    println!(
        "  HCLOUD_ENDPOINT={} HCLOUD_TOKEN={}",
        c.endpoint(),
        c.fake.token()
    );
    println!(
        "  sudo ip netns exec {} env HCLOUD_ENDPOINT={} HCLOUD_TOKEN={} packer build ...",
        c.ns,
        c.endpoint(),
        c.fake.token()
    );
    println!(
        "requests are recorded in {}",
        c.dir.join("requests.jsonl").display()
    );
    println!("stop with Ctrl-C (every server is deleted)");
    let sig = set.wait().context("waiting for SIGINT or SIGTERM")?;
    eprintln!("hcloud-sim: {sig:?}: deleting the servers");
    c.stop()
}

fn main() {
    if let Err(e) = run(Cli::parse()) {
        eprintln!("hcloud-sim: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    let workspace = match &cli.workspace {
        Some(w) => w.clone(),
        None => find_workspace(Path::new("."))?,
    };
    let mut opts = Options::new(&cli.name, &workspace);
    sim::check_name(&cli.name)?;
    match cli.command {
        Cmd::Image { mirror, release } => {
            sim::check_host()?;
            let dir = image::ensure_rootfs(&opts.cache, release, mirror.as_deref())?;
            println!("{}", dir.display());
        }
        Cmd::RescueImage { mirror } => {
            sim::check_host()?;
            let r = rescue::ensure_rescue(&opts.cache, mirror.as_deref())?;
            println!("{}", r.root.display());
        }
        Cmd::Mirror {
            packages,
            suite,
            mirror,
        } => {
            sim::check_host()?;
            let packages = if packages.is_relative() {
                workspace.join(packages)
            } else {
                packages
            };
            let r = rescue::ensure_rescue(&opts.cache, mirror.as_deref())?;
            let dir = rescue::ensure_mirror(&opts.cache, &r, &suite, &packages, mirror.as_deref())?;
            println!("{}", dir.display());
        }
        Cmd::Cloud {
            accel,
            firmware,
            token,
            serve,
            mirror,
        } => {
            sim::check_host()?;
            opts.accel = accel;
            serve_cloud(opts, firmware, token, serve, mirror)?;
        }
        Cmd::Up {
            scenario: file,
            accel,
            cloud_init,
            bare,
            release,
            kernel_args,
            memory,
            cpus,
            timeout,
            mirror,
            reuse_disk,
        } => {
            sim::check_host()?;
            let file =
                file.unwrap_or_else(|| workspace.join("crates/hcloud-sim/scenarios/try.yaml"));
            let (mut value, _) = scenario::load(&file)?;
            opts.accel = accel;
            opts.memory_mb = memory;
            opts.cpus = cpus;
            opts.mirror = mirror;
            opts.release = release;
            opts.kernel_args = kernel_args;
            opts.guest = match (cloud_init, bare) {
                (true, _) => Guest::CloudInit,
                (_, true) => Guest::Bare,
                _ => Guest::Agents,
            };
            sim::teardown(&opts)?;
            let dir = Sim::state_dir(&opts);
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let key = dir.join("id_ed25519");
            let public = sim::ensure_key(&key, &format!("hcloud-sim-{}", cli.name))?;
            let keys = value["server"]["public_keys"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let mut keys: Vec<serde_json::Value> =
                keys.into_iter().filter(|k| k != public.as_str()).collect();
            keys.push(public.into());
            value["server"]["public_keys"] = keys.into();
            let mut s = Sim::new(opts, value)?;
            if reuse_disk && s.disk_path().is_file() {
                eprintln!(
                    "hcloud-sim: booting the existing disk {}",
                    s.disk_path().display()
                );
            } else {
                eprintln!("hcloud-sim: preparing the disk of {:?}", s.server.name);
                s.prepare_disk()?;
            }
            eprintln!(
                "hcloud-sim: booting server {} ({:?}) under {accel:?}; serial console in {}",
                s.server.id,
                s.server.name,
                s.serial_log().display()
            );
            s.boot()?;
            let t = match s.wait_ssh(&key, Duration::from_secs(timeout)) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("{}", s.diagnostics(None));
                    return Err(e);
                }
            };
            let r = report::gather(&s, &key, Some(t))?;
            print!("{}", r.render());
            println!(
                "\nlog in:   sudo ip netns exec {} ssh -i {} root@{}",
                s.ns,
                key.display(),
                s.server.ssh_address()?
            );
            println!("   or:   sudo scripts/sim ssh");
            println!("tear down: sudo scripts/sim down");
        }
        Cmd::Ssh { command } => {
            let s = Sim::open(opts)?;
            let mut c = if command.is_empty() {
                s.login_command(&s.key_path())?
            } else {
                s.ssh_command(&s.key_path(), &command.join(" "))?
            };
            use std::os::unix::process::CommandExt;
            let err = c.exec();
            bail!("running ssh: {err}");
        }
        Cmd::Report => {
            let s = Sim::open(opts)?;
            let r = report::gather(&s, &s.key_path(), None)?;
            print!("{}", r.render());
        }
        Cmd::Down { purge } => {
            if purge {
                sim::purge(&opts)?;
            } else {
                sim::teardown(&opts)?;
            }
            println!("simulated server {:?} stopped", cli.name);
        }
    }
    Ok(())
}
