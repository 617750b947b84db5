//! A small threaded HTTP/1.1 server (GET/HEAD, one request per connection) that answers like
//! the metadata service and applies the scenario's faults.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use crate::render;
use crate::scenario::{EmptyUserdata, Fault, MissingIpv4, Scenario};

/// Where the scenario comes from.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // built once per server
pub enum Source {
    /// Re-read whenever the file's modification time or size changes.
    File(PathBuf),
    Fixed(Scenario),
}

/// One request the fake answered (or dropped), for tests.
#[derive(Debug, Clone)]
pub struct RequestRecord {
    pub path: String,
    /// `None` when the connection was dropped without an answer.
    pub status: Option<u16>,
    pub at: Instant,
}

struct State {
    source: Source,
    scenario: Scenario,
    file_stamp: Option<(SystemTime, u64)>,
    loaded_at: Instant,
    fault_hits: Vec<u64>,
    volume_first_seen: HashMap<u64, Instant>,
    requests: Vec<RequestRecord>,
}

impl State {
    fn install(&mut self, scenario: Scenario) {
        let now = Instant::now();
        for v in &scenario.server.volumes {
            self.volume_first_seen.entry(v.id).or_insert(now);
        }
        self.fault_hits = vec![0; scenario.faults.len()];
        self.scenario = scenario;
        self.loaded_at = now;
    }

    /// Reload the scenario file if it changed; a broken file keeps the previous scenario.
    fn refresh(&mut self) {
        let Source::File(path) = &self.source else {
            return;
        };
        let Ok(meta) = std::fs::metadata(path) else {
            return;
        };
        let stamp = (
            meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            meta.len(),
        );
        if self.file_stamp == Some(stamp) {
            return;
        }
        match Scenario::load(path) {
            Ok(sc) => {
                eprintln!("hcloud-fake-metadata: loaded scenario {}", path.display());
                self.file_stamp = Some(stamp);
                self.install(sc);
            }
            Err(e) => eprintln!("hcloud-fake-metadata: keeping the previous scenario: {e:#}"),
        }
    }
}

/// A running fake. Dropping it stops accepting connections.
pub struct FakeServer {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl FakeServer {
    /// Bind `addr` (e.g. `127.0.0.1:0`, `169.254.169.254:80`) and serve in background threads.
    pub fn start(addr: impl ToSocketAddrs, source: Source) -> anyhow::Result<FakeServer> {
        let (scenario, file_stamp) = match &source {
            Source::Fixed(sc) => (sc.clone(), None),
            Source::File(p) => {
                let meta = std::fs::metadata(p)?;
                let stamp = (
                    meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                    meta.len(),
                );
                (Scenario::load(p)?, Some(stamp))
            }
        };
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let mut state = State {
            source,
            scenario: scenario.clone(),
            file_stamp,
            loaded_at: Instant::now(),
            fault_hits: Vec::new(),
            volume_first_seen: HashMap::new(),
            requests: Vec::new(),
        };
        state.install(scenario);
        let state = Arc::new(Mutex::new(state));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (state.clone(), stop.clone());
        thread::spawn(move || {
            for conn in listener.incoming() {
                if sp.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let st = st.clone();
                thread::spawn(move || {
                    let _ = handle(conn, &st);
                });
            }
        });
        Ok(FakeServer { addr, state, stop })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL the agents take as `--metadata-url`.
    pub fn base_url(&self) -> String {
        format!("http://{}/hetzner/v1/", self.addr)
    }

    /// Replace the scenario while running (faults restart from zero).
    pub fn set_scenario(&self, scenario: Scenario) {
        lock(&self.state).install(scenario);
    }

    pub fn requests(&self) -> Vec<RequestRecord> {
        lock(&self.state).requests.clone()
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}

enum Action {
    Answer {
        status: u16,
        body: Vec<u8>,
        send: Option<usize>,
        /// Send the body in chunks of this many bytes with this pause between them.
        trickle: Option<(usize, Duration)>,
    },
    Drop,
}

fn fault_applies(f: &Fault, path: &str, hits: u64, since_load: Duration) -> bool {
    (f.path == "*" || f.path == path)
        && f.for_secs.is_none_or(|s| since_load.as_secs_f64() < s)
        && f.count.is_none_or(|c| hits < c)
}

/// Decide the answer for `path` under the current scenario (faults included).
fn respond(state: &Mutex<State>, path: &str) -> (Option<Duration>, Action) {
    let mut st = lock(state);
    st.refresh();
    let since = st.loaded_at.elapsed();
    let mut delay = None;
    let mut i = 0;
    while i < st.scenario.faults.len() {
        let f = st.scenario.faults[i].clone();
        if fault_applies(&f, path, st.fault_hits[i], since) {
            st.fault_hits[i] += 1;
            if let Some(ms) = f.delay_ms {
                delay = Some(Duration::from_millis(ms));
                break; // a delay acts, then the normal answer follows
            }
            if f.drop {
                return (delay, Action::Drop);
            }
            if let Some(body) = &f.body {
                return (
                    delay,
                    Action::Answer {
                        status: f.status.unwrap_or(200),
                        body: body.clone().into_bytes(),
                        send: None,
                        trickle: None,
                    },
                );
            }
            if let Some(status) = f.status {
                return (
                    delay,
                    Action::Answer {
                        status,
                        body: Vec::new(),
                        send: None,
                        trickle: None,
                    },
                );
            }
            if f.garbage {
                let body = b"\x00\xff{{{ not: [yaml\n\t- :\n".to_vec();
                return (
                    delay,
                    Action::Answer {
                        status: 200,
                        body,
                        send: None,
                        trickle: None,
                    },
                );
            }
            if let Some(n) = f.oversize {
                return (
                    delay,
                    Action::Answer {
                        status: 200,
                        body: vec![b'x'; n],
                        send: None,
                        trickle: None,
                    },
                );
            }
            // The normal answer, sent short or slowly.
            let send = f.truncate_to;
            let trickle = f.trickle_ms.map(|ms| (16, Duration::from_millis(ms)));
            if send.is_some() || trickle.is_some() {
                let (status, body) = normal(&st, path);
                let answer = Action::Answer {
                    status,
                    body,
                    send,
                    trickle,
                };
                return (delay, answer);
            }
            break;
        }
        i += 1;
    }
    let (status, body) = normal(&st, path);
    (
        delay,
        Action::Answer {
            status,
            body,
            send: None,
            trickle: None,
        },
    )
}

fn leaf(st: &State, text: String) -> (u16, Vec<u8>) {
    let mut body = text.into_bytes();
    if st.scenario.options.leaf_trailing_newline {
        body.push(b'\n');
    }
    (200, body)
}

/// The answer of the service without faults.
fn normal(st: &State, path: &str) -> (u16, Vec<u8>) {
    let sc = &st.scenario;
    let s = &sc.server;
    let not_found = (404, b"404: Not Found".to_vec());
    if let Some(id) = path.strip_prefix("/_internal/v1/volumes/") {
        let window = Duration::from_secs(sc.options.automount_window_secs);
        let ok = id.parse::<u64>().ok().is_some_and(|id| {
            s.volumes.iter().any(|v| v.id == id && v.automount)
                && st
                    .volume_first_seen
                    .get(&id)
                    .is_some_and(|t| t.elapsed() < window)
        });
        return if ok { (200, b"OK".to_vec()) } else { not_found };
    }
    let Some(rest) = path.strip_prefix("/hetzner/v1/") else {
        return not_found;
    };
    match rest.trim_end_matches('/') {
        "metadata" => (200, render::summary(sc).into_bytes()),
        "userdata" => {
            let data = s.userdata_bytes().unwrap_or_default();
            if !data.is_empty() {
                return (200, data);
            }
            match sc.options.empty_userdata {
                EmptyUserdata::NoContent => (204, Vec::new()),
                EmptyUserdata::EmptyOk => (200, Vec::new()),
                EmptyUserdata::NotFound => not_found,
            }
        }
        "metadata/hostname" => leaf(st, s.name.clone()),
        "metadata/instance-id" => leaf(st, s.id.to_string()),
        "metadata/region" => leaf(st, s.region.clone()),
        "metadata/availability-zone" => leaf(st, s.availability_zone.clone()),
        "metadata/local-ipv4" => leaf(st, String::new()),
        "metadata/public-ipv4" => match (s.public_ipv4, sc.options.missing_ipv4) {
            (Some(ip), _) => leaf(st, ip.to_string()),
            (None, MissingIpv4::Empty) => leaf(st, String::new()),
            (None, _) => not_found,
        },
        "metadata/public-keys" => (200, render::public_keys_json(sc).into_bytes()),
        "metadata/network-config" => (200, render::network_config(sc, 0).into_bytes()),
        "metadata/private-networks" => (200, render::private_networks(sc).into_bytes()),
        "metadata/vendor_data" => match &s.vendor_data {
            Some(v) => (200, v.clone().into_bytes()),
            None => not_found,
        },
        _ => not_found,
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        404 => "Not Found",
        405 => "Method Not Allowed",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

fn handle(conn: TcpStream, state: &Mutex<State>) -> io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    // Skip the headers (bounded).
    let mut header_bytes = 0;
    loop {
        let mut line = String::new();
        let n = reader.read_line(&mut line)?;
        header_bytes += n;
        if n == 0 || line == "\r\n" || line == "\n" || header_bytes > 16 * 1024 {
            break;
        }
    }
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or("");
    let target = parts.next().unwrap_or("/");
    let path = target.split('?').next().unwrap_or("/").to_string();

    let (delay, action) = if method == "GET" || method == "HEAD" {
        respond(state, &path)
    } else {
        (
            None,
            Action::Answer {
                status: 405,
                body: Vec::new(),
                send: None,
                trickle: None,
            },
        )
    };
    if let Some(d) = delay {
        thread::sleep(d);
    }
    // Record before answering: a client that has seen the answer (or the dropped connection)
    // must find its request in `requests()`.
    let status = match &action {
        Action::Drop => None,
        Action::Answer { status, .. } => Some(*status),
    };
    lock(state).requests.push(RequestRecord {
        path,
        status,
        at: Instant::now(),
    });
    let mut conn = conn;
    match action {
        Action::Drop => {
            let _ = conn.shutdown(Shutdown::Both);
        }
        Action::Answer {
            status,
            body,
            send,
            trickle,
        } => {
            let head = format!(
                "HTTP/1.1 {status} {}\r\nContent-Length: {}\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n",
                reason(status),
                body.len()
            );
            let mut out = head.into_bytes();
            let n = send.unwrap_or(body.len()).min(body.len());
            let body = if method == "HEAD" {
                &[][..]
            } else {
                &body[..n]
            };
            match trickle {
                None => {
                    out.extend_from_slice(body);
                    let _ = conn.write_all(&out);
                }
                Some((chunk, pause)) => {
                    let _ = conn.write_all(&out);
                    for part in body.chunks(chunk.max(1)) {
                        let _ = conn.flush();
                        thread::sleep(pause);
                        if conn.write_all(part).is_err() {
                            break;
                        }
                    }
                }
            }
            let _ = conn.flush();
            let _ = conn.shutdown(Shutdown::Both);
        }
    }
    Ok(())
}
