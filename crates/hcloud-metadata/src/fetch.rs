//! The one retrying HTTP client of the two downloaders. Plain HTTP only: the metadata service is
//! link-local, so no TLS stack is linked.
//!
//! Policy: an explicit connect timeout and per-request timeout inside a whole-run budget; retry
//! with doubling backoff on connect errors, timeouts, broken bodies, 5xx and 429; no retry on
//! other statuses (the caller decides what a 404 or 204 means); a cap on the body size; every
//! attempt logged with its URL. Callers can also ask for a retry when a body does not parse
//! (a truncated or garbled answer is usually transient). A connect that finds no route
//! (ENETUNREACH, EHOSTUNREACH: early in boot, before the lease) is retried at most 500 ms apart,
//! so the fetch follows the network closely instead of waiting for `network-online.target`.
//!
//! One connect error is not retried: "permission denied" (EACCES or EPERM). The kernel answers
//! so when a `prohibit` route covers the address, as systemd-imds adds for 169.254.169.254 in its
//! `locked` network mode, or when a firewall or the unit's `IPAddressDeny=` rejects the socket.
//! Nothing of that goes away by waiting, so the run stops at once with [`FetchError::Prohibited`],
//! which says what to change, instead of spending the whole budget.

use std::io::Read;
use std::thread::sleep;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct FetchConfig {
    /// Base URL ending in `/`, e.g. `http://169.254.169.254/hetzner/v1/`.
    pub base_url: String,
    /// The whole retry budget of one run.
    pub budget: Duration,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    /// Bodies larger than this are refused.
    pub max_body: u64,
    pub first_backoff: Duration,
    pub max_backoff: Duration,
}

impl FetchConfig {
    pub fn new(base_url: &str, budget: Duration) -> FetchConfig {
        let mut base_url = base_url.trim().to_string();
        if !base_url.ends_with('/') {
            base_url.push('/');
        }
        FetchConfig {
            base_url,
            budget,
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(5),
            max_body: 1024 * 1024,
            first_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(2),
        }
    }
}

/// A final answer from the service: a 2xx, or a status that is not retried (e.g. 404).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
}

/// What a caller says of a reply it cannot use.
#[derive(Debug, Clone)]
pub enum Rejection {
    /// Probably transient (garbled, truncated): try again within the budget.
    Retry(String),
    /// Retrying will not help: stop now.
    Fatal(String),
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("invalid metadata URL {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("cannot set up the HTTP client: {0}")]
    Client(String),
    #[error("{url}: gave up after {attempts} attempt(s) in {secs:.1}s: {last}")]
    Exhausted {
        url: String,
        attempts: u32,
        secs: f64,
        last: String,
    },
    #[error("{url}: {reason}")]
    Fatal { url: String, reason: String },
    #[error(
        "{url}: cannot connect: {cause}: the kernel refuses the connection, so the route to the \
         metadata service is prohibited, most likely by systemd-imds in locked mode (check with \
         `ip route show table all | grep prohibit`), or a firewall or the unit's IPAddressDeny= \
         rejects it; this is not retried. \
         Boot with `systemd.imds.network=unlocked` (or `off`) on the kernel command line, or \
         allow the connection (see {docs})",
        docs = crate::competitors::DOCS
    )]
    Prohibited { url: String, cause: String },
}

/// The client of one run: the budget counts from its creation and covers every request made
/// through it.
pub struct Fetcher {
    client: reqwest::blocking::Client,
    config: FetchConfig,
    started: Instant,
}

enum Attempt {
    Reply(Reply),
    Retry(String),
    Fatal(String),
    /// connect(2) failed with EACCES or EPERM.
    Prohibited(String),
    /// connect(2) found no route (ENETUNREACH, EHOSTUNREACH): the network is not up yet.
    NoRoute(String),
}

/// The longest pause after a connect that found no route: early in boot the route to the
/// metadata service appears within seconds, and the fetch should follow it closely.
const NO_ROUTE_MAX_BACKOFF: Duration = Duration::from_millis(500);

impl Fetcher {
    pub fn new(config: FetchConfig) -> Result<Fetcher, FetchError> {
        let url = &config.base_url;
        if !url.starts_with("http://") {
            return Err(FetchError::BadUrl {
                url: url.clone(),
                reason: "only plain http:// is supported (the metadata service is link-local HTTP)"
                    .into(),
            });
        }
        let client = reqwest::blocking::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .user_agent(concat!("hcloud-agents/", env!("CARGO_PKG_VERSION")))
            .no_proxy() // a proxy from the environment can never reach a link-local address
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| FetchError::Client(e.to_string()))?;
        Ok(Fetcher {
            client,
            config,
            started: Instant::now(),
        })
    }

    pub fn deadline(&self) -> Instant {
        self.started + self.config.budget
    }

    /// Sleep `d` if the budget allows it and a request can still follow; false otherwise.
    pub fn pause(&self, d: Duration) -> bool {
        if Instant::now() + d + Duration::from_millis(50) >= self.deadline() {
            return false;
        }
        sleep(d);
        true
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.config.base_url, path.trim_start_matches('/'))
    }

    fn attempt(&self, url: &str, timeout: Duration) -> Attempt {
        let resp = match self.client.get(url).timeout(timeout).send() {
            Ok(r) => r,
            Err(e) => {
                return match permission_denied(&e) {
                    Some(cause) => Attempt::Prohibited(cause),
                    None if connect_errno(&e, &[libc::ENETUNREACH, libc::EHOSTUNREACH])
                        .is_some() =>
                    {
                        Attempt::NoRoute(describe_error(&e))
                    }
                    None => Attempt::Retry(describe_error(&e)),
                };
            }
        };
        let status = resp.status().as_u16();
        if status >= 500 || status == 429 {
            return Attempt::Retry(format!("HTTP {status}"));
        }
        let cap = self.config.max_body;
        if resp.content_length().is_some_and(|n| n > cap) {
            return Attempt::Fatal(format!(
                "response of {} bytes is larger than the {cap}-byte limit",
                resp.content_length().unwrap_or(0)
            ));
        }
        let mut body = Vec::new();
        match resp.take(cap + 1).read_to_end(&mut body) {
            Ok(_) if body.len() as u64 > cap => {
                Attempt::Fatal(format!("response is larger than the {cap}-byte limit"))
            }
            Ok(_) => Attempt::Reply(Reply { status, body }),
            Err(e) => Attempt::Retry(format!("reading the body failed: {e}")),
        }
    }

    /// GET `path` under the base URL and hand each final reply to `accept` until it returns
    /// `Ok`, a `Rejection::Fatal` comes back, or the budget is spent.
    pub fn get<T>(
        &self,
        path: &str,
        mut accept: impl FnMut(Reply) -> Result<T, Rejection>,
    ) -> Result<T, FetchError> {
        let url = self.url(path);
        let start = Instant::now();
        let deadline = self.deadline();
        let mut backoff = self.config.first_backoff;
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let remaining = deadline.saturating_duration_since(Instant::now());
            let timeout = self
                .config
                .request_timeout
                .min(remaining)
                .max(Duration::from_millis(50));
            log::info!("Fetching {url}: attempt #{attempts}");
            let mut cap = self.config.max_backoff;
            let failure = match self.attempt(&url, timeout) {
                Attempt::Reply(reply) => match accept(reply) {
                    Ok(v) => return Ok(v),
                    Err(Rejection::Retry(why)) => why,
                    Err(Rejection::Fatal(reason)) => return Err(FetchError::Fatal { url, reason }),
                },
                Attempt::Retry(why) => why,
                Attempt::NoRoute(why) => {
                    cap = cap.min(NO_ROUTE_MAX_BACKOFF);
                    backoff = backoff.min(cap);
                    why
                }
                Attempt::Fatal(reason) => return Err(FetchError::Fatal { url, reason }),
                Attempt::Prohibited(cause) => return Err(FetchError::Prohibited { url, cause }),
            };
            let now = Instant::now();
            if now + backoff >= deadline {
                return Err(FetchError::Exhausted {
                    url,
                    attempts,
                    secs: (now - start).as_secs_f64(),
                    last: failure,
                });
            }
            log::warn!("{url}: {failure}; retrying in {} ms", backoff.as_millis());
            sleep(backoff);
            backoff = (backoff * 2).min(cap);
        }
    }
}

/// The OS error when a connect failed with EACCES or EPERM: the kernel refuses the connection
/// itself (a `prohibit` route, a firewall, a cgroup filter), nothing on the network answered.
fn permission_denied(e: &reqwest::Error) -> Option<String> {
    connect_errno(e, &[libc::EACCES, libc::EPERM])
}

/// The OS error of a failed connect when its errno is one of `errnos`.
fn connect_errno(e: &reqwest::Error, errnos: &[i32]) -> Option<String> {
    if !e.is_connect() {
        return None;
    }
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>()
            && io.raw_os_error().is_some_and(|n| errnos.contains(&n))
        {
            return Some(io.to_string());
        }
        cause = c.source();
    }
    None
}

fn describe_error(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else if e.is_body() || e.is_decode() {
        "broken response body"
    } else {
        "request failed"
    };
    // The innermost cause says most (e.g. "Connection refused").
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    format!("{kind}: {cause}")
}

/// The flags both downloaders share (`#[command(flatten)]`).
#[derive(Debug, Clone, clap::Args)]
pub struct DownloadArgs {
    /// Base URL of the metadata service.
    #[arg(long, env = "HCLOUD_METADATA_URL", default_value = crate::DEFAULT_METADATA_URL)]
    pub metadata_url: String,
    /// Resolve every path under this directory; with a root other than / only files are written.
    #[arg(long, default_value = "/")]
    pub root: std::path::PathBuf,
    /// Whole retry budget in seconds (every request and pause of the run).
    #[arg(long, default_value_t = 60.0, value_parser = parse_secs)]
    pub timeout: f64,
    /// Print what was fetched to stdout instead of writing the file.
    #[arg(long)]
    pub stdout: bool,
}

fn parse_secs(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= 86_400.0 => Ok(v),
        _ => Err(format!(
            "{s:?} is not a number of seconds between 0 and 86400"
        )),
    }
}

impl DownloadArgs {
    /// The client of this run. Warns first when systemd-imds is configured for `locked` mode,
    /// whose `prohibit` route keeps this unprivileged downloader from the metadata service.
    pub fn fetcher(&self) -> Result<Fetcher, FetchError> {
        let root = crate::Root::new(&self.root);
        if crate::competitors::SystemdImds::read(&root)
            .is_some_and(|i| i.network == crate::competitors::ImdsNetwork::Locked)
        {
            log::warn!(
                "systemd-imds runs in locked mode here (systemd.imds.network=locked on the kernel \
                 command line): its prohibit route to 169.254.169.254 refuses this downloader's \
                 connections; boot with `systemd.imds.network=unlocked` (or `off`) instead (see {})",
                crate::competitors::DOCS
            );
        }
        Fetcher::new(FetchConfig::new(
            &self.metadata_url,
            Duration::from_secs_f64(self.timeout),
        ))
    }
}
