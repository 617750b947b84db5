use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use hcloud_image::arch_release::{self, DEFAULT_API_URL, DEFAULT_MIRROR};
use hcloud_image::build::{self, Flavor};
use hcloud_image::dist::{self, Arch, DistOptions};
use hcloud_image::images;
use std::path::PathBuf;
use std::time::Duration;

/// Build Hetzner Cloud images with the hcloud agents.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// The workspace (any directory inside it).
    #[arg(long, global = true, default_value = ".")]
    workspace: PathBuf,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build the static agents and lay out the staged install tree (usr/bin, units, rules,
    /// presets, networks, manifest with hashes).
    Dist {
        /// x86_64 or aarch64.
        #[arg(long, default_value = "x86_64")]
        arch: Arch,
        /// Output directory (default: <target dir>/dist/<arch>). Replaced if it holds an older tree.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Stage the binaries already built instead of running cargo.
        #[arg(long)]
        no_build: bool,
    },
    /// Print the latest Arch Linux release and its bootstrap file.
    ArchRelease {
        /// Offline: use this release (YYYY.MM.DD) instead of asking the release API.
        #[arg(long, env = "HCLOUD_IMAGE_ARCH_RELEASE")]
        release: Option<String>,
        #[arg(long, default_value = DEFAULT_API_URL)]
        api_url: String,
        #[arg(long, default_value = DEFAULT_MIRROR)]
        mirror: String,
        /// Seconds for the whole request.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
        /// Print JSON instead of key=value lines.
        #[arg(long)]
        json: bool,
    },
    /// Check the prerequisites, stage the agents and run packer init and packer build.
    Build {
        /// archlinux or nixos.
        image: Flavor,
        /// x86_64 or aarch64 (NixOS only; Arch Linux is x86_64).
        #[arg(long, default_value = "x86_64")]
        arch: Arch,
        /// Arch Linux release to install (YYYY.MM.DD); default: the latest, from the release API.
        #[arg(long, env = "HCLOUD_IMAGE_ARCH_RELEASE")]
        arch_release: Option<String>,
        /// The packer program.
        #[arg(long, default_value = "packer")]
        packer: String,
        /// More arguments for packer build (after --), e.g. -var location=hel1 or -debug.
        #[arg(last = true)]
        packer_args: Vec<String>,
    },
    /// List the snapshots recorded in packer-manifest.json.
    Images {
        #[arg(long, default_value = "packer-manifest.json")]
        manifest: PathBuf,
    },
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        eprintln!("hcloud-image: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Cmd::Dist {
            arch,
            out,
            no_build,
        } => {
            let (tree, manifest) = dist::dist(
                &cli.workspace,
                &DistOptions {
                    arch,
                    out,
                    no_build,
                },
            )?;
            println!(
                "staged {} binaries and {} other files for {arch} in {}",
                manifest.binaries.len(),
                manifest.files.len() - manifest.binaries.len(),
                tree.display()
            );
        }
        Cmd::ArchRelease {
            release,
            api_url,
            mirror,
            timeout,
            json,
        } => {
            let rel = match release {
                Some(v) => arch_release::release_files(&v, &mirror)?,
                None => {
                    arch_release::fetch_latest(&api_url, &mirror, Duration::from_secs(timeout))?
                }
            };
            if let Some(w) = arch_release::key_mismatch(&rel) {
                eprintln!("hcloud-image: warning: {w}");
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&rel)?);
            } else {
                println!(
                    "version={}\nfile={}\nurl={}\nsignature={}",
                    rel.version, rel.file, rel.url, rel.signature_url
                );
            }
        }
        Cmd::Build {
            image,
            arch,
            arch_release: release,
            packer,
            packer_args,
        } => {
            if !image.supports(arch) {
                bail!("{image} images are built for x86_64 only");
            }
            let token = std::env::var("HCLOUD_TOKEN").ok();
            build::check_prerequisites(build::packer_version(&packer), token.as_deref())?;
            let release = match (image, release) {
                (Flavor::Archlinux, Some(v)) => {
                    Some(arch_release::release_files(&v, DEFAULT_MIRROR)?.version)
                }
                (Flavor::Archlinux, None) => Some(
                    arch_release::fetch_latest(
                        DEFAULT_API_URL,
                        DEFAULT_MIRROR,
                        Duration::from_secs(30),
                    )
                    .context(
                        "finding the latest Arch Linux release (or pass --arch-release YYYY.MM.DD)",
                    )?
                    .version,
                ),
                (Flavor::Nixos, _) => None,
            };
            let (tree, _) = dist::dist(
                &cli.workspace,
                &DistOptions {
                    arch,
                    out: None,
                    no_build: false,
                },
            )?;
            let ws = dist::load_workspace(&cli.workspace)?;
            let vars = build::packer_vars(image, arch, &tree, release.as_deref());
            build::run_packer(&packer, &ws.root, image, &vars, &packer_args)?;
        }
        Cmd::Images { manifest } => {
            let imgs = images::load(&manifest)?;
            print!("{}", images::table(&imgs));
        }
    }
    Ok(())
}
