use anyhow::{Context, Result, bail};
use clap::Parser;
use hcloud_image::arch_release::{self, DEFAULT_API_URL, DEFAULT_MIRROR};
use hcloud_image::build::{self, Flavor};
use hcloud_image::cli::{Cli, Cmd};
use hcloud_image::cloud;
use hcloud_image::dist::{self, DistOptions};
use hcloud_image::images;
use hcloud_image::manual;
use std::time::Duration;

fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        eprintln!("hcloud-image: {e:#}");
        std::process::exit(1);
    }
}

/// The preflight check of the build server `packer build` is about to create (and of its
/// upgrade type), before anything is staged or created.
fn preflight_build(image: Flavor, arch: dist::Arch, packer_args: &[String]) -> Result<()> {
    let Some((server_type, upgrade, location)) = build::build_server(image, arch, packer_args)
    else {
        eprintln!(
            "hcloud-image: a -var-file is given: not checking the server type (hcloud-image preflight checks one)"
        );
        return Ok(());
    };
    let client = cloud::Client::from_env()?;
    for t in std::iter::once(server_type).chain(upgrade) {
        cloud::preflight(&client, &t, &location, arch).context(
            "checking the build server before packer starts (--no-preflight skips this)",
        )?;
    }
    Ok(())
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
                    let urls = if api_url == DEFAULT_API_URL {
                        vec![DEFAULT_API_URL, arch_release::LEGACY_API_URL]
                    } else {
                        vec![api_url.as_str()]
                    };
                    arch_release::fetch_latest_of(&urls, &mirror, Duration::from_secs(timeout))?
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
            arch_api_url,
            packer,
            no_preflight,
            packer_args,
        } => {
            if !image.supports(arch) {
                bail!("{image} images are built for x86_64 only");
            }
            let token = std::env::var("HCLOUD_TOKEN").ok();
            build::check_prerequisites(build::packer_version(&packer), token.as_deref())?;
            if image == Flavor::Archlinux {
                // The template trusts this file's key for the bootstrap signature.
                arch_release::check_pinned_key(&dist::load_workspace(&cli.workspace)?.root)?;
            }
            let release = match (image, release) {
                (Flavor::Archlinux, Some(v)) => {
                    Some(arch_release::release_files(&v, DEFAULT_MIRROR)?.version)
                }
                (Flavor::Archlinux, None) => {
                    let urls = match &arch_api_url {
                        Some(u) => vec![u.as_str()],
                        None => vec![DEFAULT_API_URL, arch_release::LEGACY_API_URL],
                    };
                    let rel = arch_release::fetch_latest_of(
                        &urls,
                        DEFAULT_MIRROR,
                        Duration::from_secs(30),
                    )
                    .context(
                        "finding the latest Arch Linux release (or pass --arch-release YYYY.MM.DD)",
                    )?;
                    if let Some(w) = arch_release::key_mismatch(&rel) {
                        bail!("not building: {w}");
                    }
                    Some(rel.version)
                }
                (Flavor::Nixos | Flavor::Debian, _) => None,
            };
            if !no_preflight {
                preflight_build(image, arch, &packer_args)?;
            }
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
        Cmd::Manuals { out, binaries } => {
            let names: Vec<String> = if binaries.is_empty() {
                manual::PROGRAMS
                    .iter()
                    .map(|(n, _)| n.to_string())
                    .collect()
            } else {
                binaries
            };
            let written = manual::write_files(&out, &names, env!("CARGO_PKG_VERSION"))?;
            println!("wrote {} files under {}", written, out.display());
        }
        Cmd::Images { manifest } => {
            let imgs = images::load(&manifest)?;
            print!("{}", images::table(&imgs));
        }
        Cmd::Preflight {
            server_type,
            location,
            arch,
        } => {
            let client = cloud::Client::from_env()?;
            let st = cloud::preflight(&client, &server_type, &location, arch)?;
            println!(
                "server type {} ({}, {} GB disk) is available in {location}",
                st.name, st.architecture, st.disk
            );
        }
        Cmd::FindSnapshot { build_id } => {
            let client = cloud::Client::from_env()?;
            let snaps = cloud::find_snapshots(&client, &build_id)?;
            if snaps.is_empty() {
                bail!("no snapshot is labelled build-id={build_id}");
            }
            print!("{}", cloud::snapshot_table(&snaps));
        }
        Cmd::Cleanup {
            build_id,
            packer_keys,
            dry_run,
        } => {
            let client = cloud::Client::from_env()?;
            let done = cloud::cleanup(&client, &build_id, packer_keys, dry_run)?;
            print!("{}", cloud::cleanup_report(&done, dry_run));
        }
    }
    Ok(())
}
