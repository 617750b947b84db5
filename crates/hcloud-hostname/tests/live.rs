//! The live paths (`--root /`) of the real binary, without ever renaming the machine that runs
//! the tests: every run happens inside its own UTS and mount namespace (`unshare`), with a
//! scratch directory bind-mounted over `/etc`.
//!
//! - D-Bus: a private `dbus-daemon` and a test service implementing the two methods of
//!   `org.freedesktop.hostname1` that the agent calls; the service records calls and arguments.
//! - Fallback: the same bus without that service (or no bus at all): the agent writes
//!   `/etc/hostname` (the scratch directory) and calls sethostname(2) (the namespace's name).

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hcloud_metadata::{Document, Network};

const BIN: &str = env!("CARGO_BIN_EXE_hcloud-hostname");

/// A private message bus on a socket in a temp directory, stopped on drop.
struct Bus {
    child: Child,
    address: String,
    _dir: tempfile::TempDir,
}

impl Bus {
    fn start() -> Bus {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("bus.conf");
        fs::write(
            &config,
            format!(
                r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={}/bus</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#,
                dir.path().display()
            ),
        )
        .unwrap();
        let mut child = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", config.display()))
            .args(["--nofork", "--print-address=1"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("dbus-daemon (Debian package dbus) must be installed: scripts/install-deps");
        let mut address = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut address)
            .unwrap();
        let address = address.trim().to_string();
        assert!(
            address.starts_with("unix:"),
            "dbus-daemon printed {address:?}"
        );
        Bus {
            child,
            address,
            _dir: dir,
        }
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

type Calls = Arc<Mutex<Vec<(String, String, bool)>>>;

/// A stand-in for systemd-hostnamed: records every call; refuses them when told to.
struct Hostname1 {
    calls: Calls,
    refuse: bool,
}

impl Hostname1 {
    fn record(&self, method: &str, hostname: String, interactive: bool) -> zbus::fdo::Result<()> {
        self.calls
            .lock()
            .unwrap()
            .push((method.into(), hostname, interactive));
        if self.refuse {
            Err(zbus::fdo::Error::AccessDenied("Permission denied".into()))
        } else {
            Ok(())
        }
    }
}

#[zbus::interface(name = "org.freedesktop.hostname1")]
impl Hostname1 {
    fn set_static_hostname(&self, hostname: String, interactive: bool) -> zbus::fdo::Result<()> {
        self.record("SetStaticHostname", hostname, interactive)
    }

    fn set_hostname(&self, hostname: String, interactive: bool) -> zbus::fdo::Result<()> {
        self.record("SetHostname", hostname, interactive)
    }
}

fn serve_hostname1(bus: &Bus, refuse: bool) -> (zbus::blocking::Connection, Calls) {
    let calls = Calls::default();
    let (address, recorder) = (bus.address.clone(), calls.clone());
    // In a thread with a deadline: a bus that never answers must fail the test, not hang it.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let conn = zbus::blocking::connection::Builder::address(address.as_str())
            .and_then(|b| b.name("org.freedesktop.hostname1"))
            .and_then(|b| {
                b.serve_at(
                    "/org/freedesktop/hostname1",
                    Hostname1 {
                        calls: recorder,
                        refuse,
                    },
                )
            })
            .and_then(|b| b.build());
        let _ = tx.send(conn);
    });
    let conn = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the test service could not register on the private bus within 30 s")
        .expect("the test service could not register on the private bus");
    (conn, calls)
}

/// This machine's instance id if it is a Hetzner server (the document must match it), else any.
fn this_instance_id() -> u64 {
    let vendor = fs::read_to_string("/sys/class/dmi/id/sys_vendor").unwrap_or_default();
    if vendor.trim() == "Hetzner" {
        let serial = fs::read_to_string("/sys/class/dmi/id/product_serial").unwrap();
        serial.trim().parse().unwrap()
    } else {
        48151623
    }
}

struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new(hostname: Option<&str>) -> Scratch {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("etc")).unwrap();
        let doc = Document {
            instance_id: this_instance_id(),
            hostname: hostname.map(Into::into),
            region: None,
            availability_zone: None,
            ssh_keys: vec![],
            network: Network::default(),
        };
        fs::write(dir.path().join("doc.json"), doc.to_json()).unwrap();
        Scratch { dir }
    }

    fn etc(&self) -> PathBuf {
        self.dir.path().join("etc")
    }

    fn etc_hostname(&self) -> Option<String> {
        fs::read_to_string(self.etc().join("hostname")).ok()
    }
}

fn run_isolated(s: &Scratch, dbus_address: &str) -> (Output, String) {
    run_isolated_with(s, dbus_address, None, false)
}

/// Run the agent on the live root inside a new UTS+mount namespace whose hostname starts as
/// `before-test` and whose `/etc` is the scratch `etc`. With `hostnamed`, that binary (the real
/// systemd-hostnamed) is started in the same namespaces first, on the given bus. With
/// `readonly_etc`, `/etc` is read-only for the agent. Returns the agent's output and the
/// namespace's hostname after the run.
fn run_isolated_with(
    s: &Scratch,
    dbus_address: &str,
    hostnamed: Option<&str>,
    readonly_etc: bool,
) -> (Output, String) {
    const SCRIPT: &str = r#"
        set -e
        echo before-test > /proc/sys/kernel/hostname
        mount --bind "$1" /etc
        [ -z "$6" ] || mount -o remount,bind,ro /etc
        set +e
        if [ -n "$5" ]; then
            "$5" 2>"$4.hostnamed" &
            hp=$!
            i=0
            until dbus-send --bus="$DBUS_SYSTEM_BUS_ADDRESS" --print-reply --dest=org.freedesktop.DBus \
                    /org/freedesktop/DBus org.freedesktop.DBus.NameHasOwner \
                    string:org.freedesktop.hostname1 2>/dev/null | grep -q 'boolean true'; do
                i=$((i + 1)); [ "$i" -lt 200 ] || break; sleep 0.05
            done
        fi
        "$2" --metadata "$3"
        rc=$?
        cat /proc/sys/kernel/hostname > "$4"
        [ -z "$5" ] || kill "$hp"
        exit $rc
    "#;
    let real = fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let uts = s.dir.path().join("uts");
    // `timeout`: a hung agent fails the test instead of stalling the suite.
    let out = Command::new("timeout")
        .args([
            "120",
            "unshare",
            "--uts",
            "--mount",
            "--propagation",
            "private",
            "--",
            "sh",
            "-c",
            SCRIPT,
            "sh",
        ])
        .arg(s.etc())
        .arg(BIN)
        .arg(s.dir.path().join("doc.json"))
        .arg(&uts)
        .arg(hostnamed.unwrap_or(""))
        .arg(if readonly_etc { "ro" } else { "" })
        .env("HCLOUD_HOSTNAME_DBUS_ADDRESS", dbus_address)
        .env("DBUS_SYSTEM_BUS_ADDRESS", dbus_address)
        .env_remove("JOURNAL_STREAM")
        .output()
        .expect("unshare (util-linux) must be installed");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    let ns_hostname = fs::read_to_string(&uts)
        .unwrap_or_else(|_| panic!("the namespace did not run (root needed for unshare): {out:?}"));
    assert_eq!(
        fs::read_to_string("/proc/sys/kernel/hostname").unwrap(),
        real,
        "the machine running the tests must never be renamed"
    );
    (out, ns_hostname.trim().to_string())
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn hostnamed_gets_static_then_transient_name_non_interactively() {
    let bus = Bus::start();
    let (_conn, calls) = serve_hostname1(&bus, false);
    let s = Scratch::new(Some("app-7"));
    let (out, ns_hostname) = run_isolated(&s, &bus.address);
    assert!(out.status.success());
    assert_eq!(
        *calls.lock().unwrap(),
        vec![
            ("SetStaticHostname".to_string(), "app-7".to_string(), false),
            ("SetHostname".to_string(), "app-7".to_string(), false),
        ]
    );
    assert!(
        stderr(&out).contains("hostname set to \"app-7\" through systemd-hostnamed"),
        "{}",
        stderr(&out)
    );
    // hostnamed does the writing; the agent itself touched neither.
    assert_eq!(s.etc_hostname(), None);
    assert_eq!(ns_hostname, "before-test");
}

/// systemd's own hostnamed, bus-activated nowhere but started by hand in the test's namespaces.
fn systemd_hostnamed() -> &'static str {
    [
        "/usr/lib/systemd/systemd-hostnamed",
        "/lib/systemd/systemd-hostnamed",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).exists())
    .expect("systemd-hostnamed (Debian package systemd) must be installed: scripts/install-deps")
}

#[test]
fn real_systemd_hostnamed_sets_the_static_and_the_kernel_hostname() {
    let bus = Bus::start();
    let s = Scratch::new(Some("app-7"));
    let (out, ns_hostname) = run_isolated_with(&s, &bus.address, Some(systemd_hostnamed()), false);
    let hostnamed_log = fs::read_to_string(s.dir.path().join("uts.hostnamed")).unwrap_or_default();
    assert!(out.status.success(), "hostnamed said: {hostnamed_log}");
    assert!(
        stderr(&out).contains("through systemd-hostnamed"),
        "{}\nhostnamed said: {hostnamed_log}",
        stderr(&out)
    );
    // What hostnamectl would show: the static name in /etc/hostname, the kernel's name.
    assert_eq!(s.etc_hostname().as_deref(), Some("app-7\n"));
    assert_eq!(ns_hostname, "app-7");
}

#[test]
fn long_name_reaches_hostnamed_cut_at_the_first_dot() {
    let bus = Bus::start();
    let (_conn, calls) = serve_hostname1(&bus, false);
    let long = format!("web-3.{}.example.org", "z".repeat(60));
    let s = Scratch::new(Some(&long));
    let (out, _) = run_isolated(&s, &bus.address);
    assert!(out.status.success());
    let names: Vec<String> = calls.lock().unwrap().iter().map(|c| c.1.clone()).collect();
    assert_eq!(names, vec!["web-3", "web-3"]);
}

#[test]
fn hostnamed_refusing_is_a_failure_not_a_reason_to_go_around_it() {
    let bus = Bus::start();
    let (_conn, calls) = serve_hostname1(&bus, true);
    let s = Scratch::new(Some("app-7"));
    let (out, ns_hostname) = run_isolated(&s, &bus.address);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("AccessDenied"), "{}", stderr(&out));
    assert_eq!(
        calls.lock().unwrap().len(),
        1,
        "stops after the first refusal"
    );
    assert_eq!(s.etc_hostname(), None);
    assert_eq!(ns_hostname, "before-test");
}

#[test]
fn hostile_name_never_reaches_hostnamed() {
    let bus = Bus::start();
    let (_conn, calls) = serve_hostname1(&bus, false);
    let s = Scratch::new(Some("evil;name"));
    let (out, ns_hostname) = run_isolated(&s, &bus.address);
    assert_eq!(out.status.code(), Some(5));
    assert!(calls.lock().unwrap().is_empty());
    assert_eq!(s.etc_hostname(), None);
    assert_eq!(ns_hostname, "before-test");
}

#[test]
fn without_hostnamed_on_the_bus_it_writes_etc_hostname_and_calls_sethostname() {
    let bus = Bus::start(); // a bus, but nobody owns org.freedesktop.hostname1
    let s = Scratch::new(Some("app-7"));
    let (out, ns_hostname) = run_isolated(&s, &bus.address);
    assert!(out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("ServiceUnknown") && err.contains("falling back"),
        "{err}"
    );
    assert!(err.contains("wrote /etc/hostname with \"app-7\""), "{err}");
    assert!(
        err.contains("kernel hostname set to \"app-7\" with sethostname(2)"),
        "{err}"
    );
    assert_eq!(s.etc_hostname().as_deref(), Some("app-7\n"));
    assert_eq!(ns_hostname, "app-7");
}

#[test]
fn without_any_bus_it_falls_back_too() {
    let s = Scratch::new(Some("app-7"));
    let missing = format!("unix:path={}", s.dir.path().join("no-bus").display());
    let (out, ns_hostname) = run_isolated(&s, &missing);
    assert!(out.status.success());
    assert!(stderr(&out).contains("cannot connect"), "{}", stderr(&out));
    assert_eq!(s.etc_hostname().as_deref(), Some("app-7\n"));
    assert_eq!(ns_hostname, "app-7");
}

#[test]
fn fallback_that_cannot_write_says_why_and_leaves_the_hostname() {
    let s = Scratch::new(Some("app-7"));
    fs::write(s.etc().join("hostname"), "previous\n").unwrap();
    // /etc read-only for the agent, as under ProtectSystem=strict without ReadWritePaths=/etc.
    let missing = format!("unix:path={}", s.dir.path().join("no-bus").display());
    let (out, ns_hostname) = run_isolated_with(&s, &missing, None, true);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("systemd-hostnamed is not available") && err.contains("Read-only file system"),
        "{err}"
    );
    assert_eq!(s.etc_hostname().as_deref(), Some("previous\n"));
    assert_eq!(ns_hostname, "before-test");
}

#[test]
fn fallback_keeps_a_current_file_and_refuses_hostile_names() {
    let s = Scratch::new(Some("a b"));
    fs::write(s.etc().join("hostname"), "previous\n").unwrap();
    let missing = format!("unix:path={}", s.dir.path().join("no-bus").display());
    let (out, ns_hostname) = run_isolated(&s, &missing);
    assert_eq!(out.status.code(), Some(5));
    assert_eq!(s.etc_hostname().as_deref(), Some("previous\n"));
    assert_eq!(ns_hostname, "before-test");
}
