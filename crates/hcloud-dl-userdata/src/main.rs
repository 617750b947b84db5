use std::process::ExitCode;

use clap::Parser;
use hcloud_dl_userdata::{Options, cli::Args, run};
use hcloud_metadata::{Root, state};

fn main() -> ExitCode {
    let args = Args::parse();
    hcloud_metadata::logging::init("hcloud-dl-userdata");
    let root = Root::new(&args.download.root);
    if args.migrate {
        return state::migrate_command(&root, &state::USERDATA);
    }
    let output = state::write_target(&root, &root.join(&args.output));
    match run(&Options {
        download: args.download,
        output,
    }) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}
