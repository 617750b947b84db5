//! The D-Bus path: `org.freedesktop.hostname1` (systemd-hostnamed) `SetStaticHostname` and
//! `SetHostname`, both non-interactive. hostnamed writes `/etc/hostname` and sets the kernel
//! hostname itself, with its own validation and bookkeeping.

use std::time::Duration;

use zbus::blocking::Connection;
use zbus::blocking::connection::Builder;

pub const BUS_NAME: &str = "org.freedesktop.hostname1";
pub const OBJECT_PATH: &str = "/org/freedesktop/hostname1";
pub const INTERFACE: &str = "org.freedesktop.hostname1";

/// How long one call may take: hostnamed is bus-activated, so the first call may wait for it
/// to start.
const METHOD_TIMEOUT: Duration = Duration::from_secs(60);

/// Outcome of trying hostnamed.
#[derive(Debug)]
pub enum Outcome {
    /// Both hostnames were set by hostnamed.
    Set,
    /// hostnamed cannot be reached (no bus, or no such service): the caller falls back.
    Unavailable(String),
}

/// hostnamed was reached but refused or failed: not a reason to go around it.
#[derive(Debug, thiserror::Error)]
#[error(
    "systemd-hostnamed ({BUS_NAME}) refused {method}({name:?}): {source}; the hostname is left as \
     it is (see `journalctl -u systemd-hostnamed` and its polkit rules)"
)]
pub struct Refused {
    pub method: &'static str,
    pub name: String,
    #[source]
    pub source: zbus::Error,
}

/// D-Bus error names that mean "there is no hostnamed to talk to", as opposed to "hostnamed
/// said no". Activation failures (a masked or missing unit) count as absent.
fn means_unavailable(error_name: &str) -> bool {
    matches!(
        error_name,
        "org.freedesktop.DBus.Error.ServiceUnknown"
            | "org.freedesktop.DBus.Error.NameHasNoOwner"
            | "org.freedesktop.DBus.Error.NoServer"
            | "org.freedesktop.DBus.Error.Disconnected"
    ) || error_name.starts_with("org.freedesktop.DBus.Error.Spawn.")
        || error_name.starts_with("org.freedesktop.systemd1.")
}

fn connect(address: Option<&str>) -> zbus::Result<Connection> {
    let builder = match address {
        Some(a) => Builder::address(a)?,
        // Honours DBUS_SYSTEM_BUS_ADDRESS, else /run/dbus/system_bus_socket.
        None => Builder::system()?,
    };
    builder.method_timeout(METHOD_TIMEOUT).build()
}

/// Set the static, then the transient hostname through hostnamed on the bus at `address`
/// (the system bus when `None`).
pub fn set(address: Option<&str>, name: &str) -> Result<Outcome, Refused> {
    let bus = address.unwrap_or("the system bus");
    let conn = match connect(address) {
        Ok(c) => c,
        Err(e) => {
            return Ok(Outcome::Unavailable(format!(
                "cannot connect to {bus}: {e}"
            )));
        }
    };
    for method in ["SetStaticHostname", "SetHostname"] {
        let result = conn.call_method(
            Some(BUS_NAME),
            OBJECT_PATH,
            Some(INTERFACE),
            method,
            &(name, false),
        );
        match result {
            Ok(_) => log::debug!("{method}({name:?}) done"),
            Err(zbus::Error::MethodError(err_name, detail, _))
                if means_unavailable(err_name.as_str()) =>
            {
                return Ok(Outcome::Unavailable(format!(
                    "{BUS_NAME} is not available on {bus}: {err_name}{}",
                    detail.map(|d| format!(": {d}")).unwrap_or_default()
                )));
            }
            Err(source) => {
                return Err(Refused {
                    method,
                    name: name.to_string(),
                    source,
                });
            }
        }
    }
    Ok(Outcome::Set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_absent_services() {
        assert!(means_unavailable(
            "org.freedesktop.DBus.Error.ServiceUnknown"
        ));
        assert!(means_unavailable(
            "org.freedesktop.DBus.Error.Spawn.ChildExited"
        ));
        assert!(means_unavailable("org.freedesktop.systemd1.UnitMasked"));
        assert!(!means_unavailable(
            "org.freedesktop.DBus.Error.AccessDenied"
        ));
        assert!(!means_unavailable("org.freedesktop.DBus.Error.InvalidArgs"));
        assert!(!means_unavailable(
            "org.freedesktop.PolicyKit1.Error.NotAuthorized"
        ));
    }
}
