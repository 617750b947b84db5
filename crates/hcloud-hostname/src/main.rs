use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use hcloud_metadata::{DOCUMENT_PATH, Root, competitors};

/// Set this server's hostname from the Hetzner Cloud metadata document.
///
/// On the running system the static and transient hostname are set through
/// systemd-hostnamed (D-Bus); without hostnamed, /etc/hostname is written and
/// sethostname(2) called. With --root other than / only <root>/etc/hostname is written.
/// Then the name goes into a managed block of /etc/hosts (127.0.1.1 and ::1), unless
/// --no-etc-hosts.
///
/// Exit status: 0 done, 1 could not apply, 3 the document cannot be read,
/// 4 the document belongs to another server, 5 the hostname in it is refused.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Resolve every path under this directory; anything but / only writes files.
    #[arg(long, default_value = "/")]
    root: PathBuf,
    /// The metadata document (resolved under --root).
    #[arg(long, default_value = DOCUMENT_PATH)]
    metadata: PathBuf,
    /// D-Bus address where systemd-hostnamed is reached instead of the system bus.
    #[arg(long, env = "HCLOUD_HOSTNAME_DBUS_ADDRESS", hide = true)]
    dbus_address: Option<String>,
    /// Leave /etc/hosts alone (by default the server name is kept on 127.0.1.1 and ::1 in a
    /// managed block there, so `hostname -f` and sudo need no DNS).
    #[arg(long)]
    no_etc_hosts: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    hcloud_metadata::logging::init("hcloud-hostname");
    let root = Root::new(args.root);
    // Warn (only) when cloud-init does this job too; the hand-over is in docs/install.md.
    competitors::log_warnings(&root, competitors::Job::Hostname);
    let cfg = hcloud_hostname::Config {
        root,
        metadata: args.metadata,
        dbus_address: args.dbus_address,
        etc_hosts: !args.no_etc_hosts,
    };
    match hcloud_hostname::run(&cfg) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            ExitCode::from(e.exit_code() as u8)
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        super::Args::command().debug_assert();
    }
}
