use std::process::ExitCode;

use clap::Parser;
use hcloud_metadata::{Root, competitors};
use hcloud_network::{Config, cli::Args, hotplug};

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
    if args.clear_refresh_queue || args.refresh {
        match hotplug::clear(&root) {
            Ok(taken) => {
                if !taken.is_empty() {
                    log::info!("refreshing for hotplug event(s): {}", taken.join(" "));
                }
            }
            Err(e) => {
                log::error!("cannot take the pending hotplug events: {e}");
                return ExitCode::from(2);
            }
        }
        if args.clear_refresh_queue {
            return ExitCode::SUCCESS;
        }
        let synced = match &args.downloader {
            Some(d) => Ok(d.clone()),
            None => hotplug::default_downloader(),
        }
        .and_then(|d| hotplug::sync_metadata(&d, &root, &args.metadata, args.sync_timeout));
        if let Err(e) = synced {
            log::error!("{e}");
            return ExitCode::from(2);
        }
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
