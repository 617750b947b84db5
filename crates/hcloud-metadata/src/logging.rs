//! Logging shared by all agents: journald when stderr is connected to the journal (as under
//! systemd), plain `name: level: message` lines on stderr otherwise. One line per decision a
//! person would want to see in `systemctl status`.

use std::io::Write;

use log::{Level, LevelFilter, Log, Metadata, Record};

/// Stable journal `MESSAGE_ID`s for security-relevant events (see `journalctl MESSAGE_ID=...`).
pub mod message_id {
    /// An SSH key was added to a managed authorized_keys block.
    pub const SSH_KEY_ADDED: &str = "3c1a5e0b7f7d4c0f9a5e2b6f1d8e4a01";
    /// An SSH key was removed from a managed authorized_keys block.
    pub const SSH_KEY_REMOVED: &str = "3c1a5e0b7f7d4c0f9a5e2b6f1d8e4a02";
    /// An SSH key line from the metadata was rejected.
    pub const SSH_KEY_REJECTED: &str = "3c1a5e0b7f7d4c0f9a5e2b6f1d8e4a03";
    /// A document was refused because it belongs to another instance.
    pub const INSTANCE_MISMATCH: &str = "3c1a5e0b7f7d4c0f9a5e2b6f1d8e4a04";
    /// A credential from another source (systemd-imds' import) differs from the document.
    pub const CREDENTIAL_CONFLICT: &str = "3c1a5e0b7f7d4c0f9a5e2b6f1d8e4a05";
}

struct StderrLog {
    name: &'static str,
}

impl Log for StderrLog {
    fn enabled(&self, _: &Metadata) -> bool {
        true
    }

    fn log(&self, record: &Record) {
        let level = match record.level() {
            Level::Error => "error",
            Level::Warn => "warning",
            Level::Info => "info",
            Level::Debug => "debug",
            Level::Trace => "trace",
        };
        let _ = writeln!(
            std::io::stderr().lock(),
            "{}: {level}: {}",
            self.name,
            record.args()
        );
    }

    fn flush(&self) {}
}

/// Install the logger for the agent `name`. `HCLOUD_LOG=debug` raises the level.
pub fn init(name: &'static str) {
    let level = match std::env::var("HCLOUD_LOG").as_deref() {
        Ok("debug") => LevelFilter::Debug,
        Ok("trace") => LevelFilter::Trace,
        Ok("warn") => LevelFilter::Warn,
        _ => LevelFilter::Info,
    };
    let journal = systemd_journal_logger::connected_to_journal()
        .then(|| systemd_journal_logger::JournalLog::new().ok())
        .flatten();
    let installed = match journal {
        Some(j) => j.with_syslog_identifier(name.to_string()).install().is_ok(),
        None => false,
    };
    if !installed {
        let _ = log::set_boxed_logger(Box::new(StderrLog { name }));
    }
    log::set_max_level(level);
}
