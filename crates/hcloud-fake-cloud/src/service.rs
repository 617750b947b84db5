//! The running fake: the listener and its connection threads, the configuration, the request
//! record, and the library API tests use to look at and steer the project.

use std::fs::File;
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;
use serde_json::Value;

use crate::api;
use crate::catalog::Offer;
use crate::http::{self, Reply, Request};
use crate::machines::{InMemoryMachines, Ipv4Range, Machines};
use crate::rules::Labels;
use crate::state::{ActionStatus, Failure, Firewall, PrimaryIp, State};

/// How the fake behaves.
#[derive(Debug, Clone)]
pub struct Config {
    /// The project's API token (`Authorization: Bearer <token>`).
    pub token: String,
    /// A read-only token: GET works, anything else is `token_readonly`.
    pub readonly_token: Option<String>,
    /// How long an action runs at least (Hetzner: about a second).
    pub action_time: Duration,
    /// How long `create_image` runs at least.
    pub snapshot_time: Duration,
    /// Also send `datacenter` in servers (for hcloud-go 1.35.2; gone from the real API).
    pub datacenter_field: bool,
    /// Append every request as a JSON line to this file.
    pub record_file: Option<PathBuf>,
    /// Close a kept-alive connection after this long without a request.
    pub idle_timeout: Duration,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            token: "fake-hcloud-token".to_string(),
            readonly_token: None,
            action_time: Duration::from_millis(1000),
            snapshot_time: Duration::from_millis(2000),
            datacenter_field: false,
            record_file: None,
            idle_timeout: Duration::from_secs(120),
        }
    }
}

/// One request the fake answered.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RequestRecord {
    pub method: String,
    /// Without the query, e.g. `/v1/servers/1001/actions/reset`.
    pub path: String,
    /// As sent, still percent-encoded; empty without one.
    pub query: String,
    /// The body as JSON, or as text if it is not JSON; `None` without a body.
    pub body: Option<Value>,
    pub status: u16,
    pub user_agent: Option<String>,
    /// Milliseconds since the fake started.
    pub at_ms: u64,
}

impl RequestRecord {
    /// `METHOD path[?query]`, the form the sequences in the tests are written in.
    pub fn line(&self) -> String {
        if self.query.is_empty() {
            format!("{} {}", self.method, self.path)
        } else {
            format!("{} {}?{}", self.method, self.path, self.query)
        }
    }
}

/// What the handlers and the action threads share.
pub struct Shared {
    pub state: Mutex<State>,
    pub machines: Arc<dyn Machines>,
    pub config: Config,
    records: Mutex<Vec<RequestRecord>>,
    record_file: Option<Mutex<File>>,
    started: Instant,
    correlation: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    pub fn lock_state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    fn record(&self, req: &Request, status: u16) {
        let body =
            if req.body.is_empty() {
                None
            } else {
                Some(serde_json::from_slice(&req.body).unwrap_or_else(|_| {
                    Value::String(String::from_utf8_lossy(&req.body).into_owned())
                }))
            };
        let rec = RequestRecord {
            method: req.method.clone(),
            path: req.path.clone(),
            query: req.raw_query.clone(),
            body,
            status,
            user_agent: req.header("User-Agent").map(str::to_string),
            at_ms: self.started.elapsed().as_millis() as u64,
        };
        if let Some(f) = &self.record_file {
            if let Ok(mut line) = serde_json::to_vec(&rec) {
                line.push(b'\n');
                if let Err(e) = lock(f).write_all(&line) {
                    eprintln!("hcloud-fake-cloud: writing the request record: {e}");
                }
            }
        }
        lock(&self.records).push(rec);
    }

    fn answer(self: &Arc<Shared>, req: &Request) -> (Reply, String) {
        let reply = api::route(self, req);
        // Record before answering: a client that has its answer finds its request recorded.
        self.record(req, reply.status());
        let id = self.correlation.fetch_add(1, Ordering::Relaxed);
        (reply, format!("{id:016x}"))
    }
}

/// A running fake Hetzner Cloud API. Dropping it stops accepting connections.
pub struct FakeCloud {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
}

impl FakeCloud {
    /// Bind `addr` (e.g. `127.0.0.1:0`) and serve in background threads, with `machines`
    /// behind the servers.
    pub fn start(
        addr: impl ToSocketAddrs,
        config: Config,
        machines: Arc<dyn Machines>,
    ) -> Result<FakeCloud> {
        let record_file = match &config.record_file {
            Some(p) => Some(Mutex::new(
                File::options()
                    .create(true)
                    .append(true)
                    .open(p)
                    .with_context(|| format!("opening the request record {}", p.display()))?,
            )),
            None => None,
        };
        let listener = TcpListener::bind(addr).context("binding the listen address")?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State::new()),
            machines,
            config,
            records: Mutex::new(Vec::new()),
            record_file,
            started: Instant::now(),
            correlation: AtomicU64::new(1),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let (sh, sp) = (shared.clone(), stop.clone());
        thread::spawn(move || {
            for conn in listener.incoming() {
                if sp.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (sh, sp) = (sh.clone(), sp.clone());
                thread::spawn(move || {
                    let idle = sh.config.idle_timeout;
                    let _ = http::serve_connection(
                        conn,
                        idle,
                        || !sp.load(Ordering::SeqCst),
                        |req| sh.answer(req),
                    );
                });
            }
        });
        Ok(FakeCloud { addr, shared, stop })
    }

    /// [`FakeCloud::start`] with [`InMemoryMachines`] handing out addresses from `range`.
    pub fn start_in_memory(
        addr: impl ToSocketAddrs,
        config: Config,
        range: Ipv4Range,
    ) -> Result<(FakeCloud, Arc<InMemoryMachines>)> {
        let machines = Arc::new(InMemoryMachines::new(range));
        let fake = FakeCloud::start(addr, config, machines.clone())?;
        Ok((fake, machines))
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL for `HCLOUD_ENDPOINT` or a template's `endpoint`.
    pub fn endpoint(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn token(&self) -> &str {
        &self.shared.config.token
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<RequestRecord> {
        lock(&self.shared.records).clone()
    }

    /// Forget the requests so far (the project stays as it is).
    pub fn clear_requests(&self) {
        lock(&self.shared.records).clear();
    }

    /// The servers as `GET /servers` shows them.
    pub fn servers(&self) -> Vec<Value> {
        let st = self.shared.lock_state();
        let dc = self.shared.config.datacenter_field;
        st.servers
            .values()
            .map(|s| st.server_json(s, self.shared.machines.as_ref(), dc))
            .collect()
    }

    /// The images (system images and snapshots) as `GET /images` shows them.
    pub fn images(&self) -> Vec<Value> {
        let st = self.shared.lock_state();
        st.images.values().map(|i| i.json()).collect()
    }

    /// The snapshots only.
    pub fn snapshots(&self) -> Vec<Value> {
        let st = self.shared.lock_state();
        st.images
            .values()
            .filter(|i| i.kind == "snapshot")
            .map(|i| i.json())
            .collect()
    }

    pub fn ssh_keys(&self) -> Vec<Value> {
        let st = self.shared.lock_state();
        st.ssh_keys.values().map(|k| k.json()).collect()
    }

    pub fn actions(&self) -> Vec<Value> {
        let st = self.shared.lock_state();
        st.actions.values().map(|a| a.json()).collect()
    }

    /// Wait until no action is running; false if that took longer than `timeout`.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        let until = Instant::now() + timeout;
        loop {
            let running = {
                let st = self.shared.lock_state();
                st.actions
                    .values()
                    .any(|a| a.status == ActionStatus::Running)
            };
            if !running {
                return true;
            }
            if Instant::now() > until {
                return false;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Mark `server_type` as offered in `location` with or without capacity now
    /// (`available: false` makes creating a server there fail with `resource_unavailable`).
    pub fn set_availability(
        &self,
        server_type: &str,
        location: &str,
        available: bool,
    ) -> Result<()> {
        let mut st = self.shared.lock_state();
        let loc = st
            .locations
            .iter()
            .find(|l| l.name == location)
            .map(|l| l.name)
            .with_context(|| format!("no location {location}"))?;
        let t = st
            .server_types
            .iter_mut()
            .find(|t| t.name == server_type)
            .with_context(|| format!("no server type {server_type}"))?;
        match t.offers.iter_mut().find(|o| o.location == location) {
            Some(o) => o.available = available,
            None => t.offers.push(Offer {
                location: loc,
                available,
            }),
        }
        Ok(())
    }

    /// Stop offering `server_type` in `location` at all.
    pub fn withdraw(&self, server_type: &str, location: &str) -> Result<()> {
        let mut st = self.shared.lock_state();
        let t = st
            .server_types
            .iter_mut()
            .find(|t| t.name == server_type)
            .with_context(|| format!("no server type {server_type}"))?;
        let before = t.offers.len();
        t.offers.retain(|o| o.location != location);
        if t.offers.len() == before {
            bail!("{server_type} is not offered in {location}");
        }
        Ok(())
    }

    /// End the next action of `failure.command` in `error {code, message}`.
    pub fn fail_next(&self, failure: Failure) {
        self.shared.lock_state().failures.push(failure);
    }

    /// Put a firewall into the project; returns its id.
    pub fn add_firewall(&self, name: &str, labels: Labels) -> u64 {
        let mut st = self.shared.lock_state();
        let id = st.id();
        st.firewalls.insert(
            id,
            Firewall {
                id,
                name: name.to_string(),
                labels,
            },
        );
        id
    }

    /// Put an unassigned primary IP into the project; returns its id.
    pub fn add_primary_ip(&self, name: &str, ip: std::net::IpAddr, location: &str) -> u64 {
        let mut st = self.shared.lock_state();
        let id = st.id();
        st.primary_ips.insert(
            id,
            PrimaryIp {
                id,
                name: name.to_string(),
                kind: if ip.is_ipv4() { "ipv4" } else { "ipv6" },
                ip: if ip.is_ipv4() {
                    ip.to_string()
                } else {
                    format!("{ip}/64")
                },
                location: location.to_string(),
                assignee_id: None,
                labels: Labels::new(),
            },
        );
        id
    }
}

impl Drop for FakeCloud {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}
