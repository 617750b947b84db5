use std::path::PathBuf;

use clap::Parser;
use hcloud_fake_metadata::{FakeServer, Source};

/// Serve a scenario as the Hetzner Cloud metadata service would.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Scenario file (reloaded when it changes).
    #[arg(long)]
    scenario: PathBuf,
    /// Address to listen on, e.g. 127.0.0.1:0 or 169.254.169.254:80.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let server = FakeServer::start(&args.listen, Source::File(args.scenario.clone()))?;
    println!("listening on {}", server.addr());
    loop {
        std::thread::park();
    }
}
