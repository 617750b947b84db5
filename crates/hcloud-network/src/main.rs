use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use hcloud_metadata::{Root, competitors};
use hcloud_network::{Config, DEFAULT_OUTPUT_DIR, hotplug};

/// Configure the public and private networks of this Hetzner Cloud server for systemd-networkd
/// from the metadata document.
///
/// Exit status: 0 every interface configured; 1 an entry or value of the document was skipped
/// (the good ones were still written); 2 nothing could be done or something failed.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Resolve every path under this directory; with a root other than / only files are written.
    #[arg(long, default_value = "/")]
    root: PathBuf,
    /// The metadata document.
    #[arg(long, default_value = hcloud_metadata::DOCUMENT_PATH)]
    metadata: PathBuf,
    /// Where the generated 10-hcloud-*.network files go.
    #[arg(long, default_value = DEFAULT_OUTPUT_DIR)]
    output_dir: PathBuf,
    /// Use DHCP on private networks instead of the static addresses and routes from the
    /// metadata (alias IPs stay static). Both units read it from /etc/default/hcloud-network.
    #[arg(long, env = "HCLOUD_NETWORK_PRIVATE_DHCP")]
    private_dhcp: bool,
    /// For the udev rule: record a hotplug event (TAG names it) for hcloud-network-refresh.path
    /// and exit.
    #[arg(long, value_name = "TAG", conflicts_with = "clear_refresh_queue")]
    queue_refresh: Option<String>,
    /// For hcloud-network-refresh.service: take the pending hotplug events and exit.
    #[arg(long)]
    clear_refresh_queue: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    hcloud_metadata::logging::init("hcloud-network");
    let root = Root::new(&args.root);

    if let Some(tag) = &args.queue_refresh {
        return match hotplug::queue(&root, tag) {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => {
                log::error!("cannot record the hotplug event: {e}");
                ExitCode::from(2)
            }
        };
    }
    if args.clear_refresh_queue {
        return match hotplug::clear(&root) {
            Ok(taken) => {
                if !taken.is_empty() {
                    log::info!("refreshing for hotplug event(s): {}", taken.join(" "));
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                log::error!("cannot take the pending hotplug events: {e}");
                ExitCode::from(2)
            }
        };
    }

    // Warn (only) when cloud-init, hc-utils, NetworkManager, netplan or ifupdown configure the
    // NICs too; the hand-over is in docs/install.md.
    competitors::log_warnings(&root, competitors::Job::Network);
    let cfg = Config {
        root,
        metadata: args.metadata,
        output_dir: args.output_dir,
        private_dhcp: args.private_dhcp,
    };
    match hcloud_network::run(&cfg) {
        Ok(outcome) if outcome.complete() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(e @ hcloud_network::RunError::Identity(_)) => {
            log::error!(
                MESSAGE_ID = hcloud_metadata::logging::message_id::INSTANCE_MISMATCH;
                "{e}"
            );
            ExitCode::from(2)
        }
        Err(e) => {
            log::error!("{e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        super::Args::command().debug_assert();
    }
}
