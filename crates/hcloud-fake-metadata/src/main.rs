use clap::Parser;
use hcloud_fake_metadata::{FakeServer, Source, cli::Args};

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let server = FakeServer::start(&args.listen, Source::File(args.scenario.clone()))?;
    println!("listening on {}", server.addr());
    loop {
        std::thread::park();
    }
}
