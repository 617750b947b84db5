//! The simulated Hetzner network of one server, inside a network namespace of its own:
//!
//! - `br-pub`: the public link. `172.31.1.1` (the gateway, handed out on-link by DHCP option
//!   121), `169.254.169.254/16` (the metadata service, also reachable over IPv4 link-local when
//!   there is no DHCPv4 answer), `fe80::1` (the IPv6 router) and a route to the server's /64.
//! - `br-p<N>`: private network N, MTU 1450, the network's gateway (first IP of the range).
//! - on `lo`: addresses beyond the gateways the server must reach: Hetzner's resolvers
//!   (185.12.64.1/2, 2a01:4ff:ff00::add:1/2) and, per private network, a second host of its range.
//! - one dnsmasq per bridge with a static lease: a /32 (netmask option 255.255.255.255) and
//!   classless routes (option 121), as on Hetzner. No dnsmasq on `br-pub` without a public IPv4.
//!
//! Every function here returns the commands as plain data; `run_all` executes them.

use std::net::Ipv4Addr;
use std::os::fd::AsFd;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::scenario::{PrivateNetwork, PrivateNetworkExt, Server, ServerExt};

pub const GATEWAY_V4: &str = "172.31.1.1";
pub const METADATA_V4: &str = "169.254.169.254";
pub const GATEWAY_V6: &str = "fe80::1";
/// Addresses beyond the gateways: Hetzner's resolvers, so pings and DNS queries to them stay
/// inside the namespace and get a fast answer.
pub const BEYOND_V4: [&str; 2] = ["185.12.64.1", "185.12.64.2"];
pub const BEYOND_V6: [&str; 2] = ["2a01:4ff:ff00::add:1", "2a01:4ff:ff00::add:2"];
pub const PRIVATE_MTU: u32 = 1450;

pub type Cmd = Vec<String>;

fn cmd(parts: &[&str]) -> Cmd {
    parts.iter().map(|s| s.to_string()).collect()
}

/// The namespace of the simulated server `name`.
pub fn namespace(name: &str) -> String {
    format!("hsim-{name}")
}

pub fn tap_public() -> &'static str {
    "tap-pub"
}

pub fn bridge_private(num: u64) -> String {
    format!("br-p{num}")
}

pub fn tap_private(num: u64) -> String {
    format!("tap-p{num}")
}

/// An address on the public bridge in the /24 of the server's IPv4, so dnsmasq has a subnet to
/// hand the static lease out of (the server itself gets the /32). Not announced to the server.
pub fn dhcp_helper_address(ipv4: Ipv4Addr) -> Ipv4Addr {
    let o = ipv4.octets();
    let last = if o[3] == 254 { 253 } else { 254 };
    Ipv4Addr::new(o[0], o[1], o[2], last)
}

/// `ip -n <ns> <args>`; the arguments are split at spaces (none of them contains one).
pub fn ip(ns: &str, args: &str) -> Cmd {
    let mut c = cmd(&["ip", "-n", ns]);
    c.extend(args.split_whitespace().map(str::to_string));
    c
}

/// Creates the namespace and everything of the server's network that exists at boot.
pub fn plan(ns: &str, server: &Server) -> Result<Vec<Cmd>> {
    let mut c = vec![cmd(&["ip", "netns", "add", ns]), ip(ns, "link set lo up")];
    for a in BEYOND_V4 {
        c.push(ip(ns, &format!("addr add {a}/32 dev lo")));
    }
    for a in BEYOND_V6 {
        c.push(ip(ns, &format!("-6 addr add {a}/128 dev lo nodad")));
    }
    if server.has_public_nic() {
        let br = "br-pub";
        c.push(ip(ns, &format!("link add {br} type bridge")));
        c.push(ip(ns, &format!("link set {br} up")));
        c.push(ip(ns, &format!("addr add {GATEWAY_V4}/32 dev {br}")));
        c.push(ip(ns, &format!("addr add {METADATA_V4}/16 dev {br}")));
        if let Some(v4) = server.public_ipv4 {
            let helper = dhcp_helper_address(v4);
            c.push(ip(ns, &format!("addr add {helper}/24 dev {br}")));
        }
        c.push(ip(
            ns,
            &format!("-6 addr add {GATEWAY_V6}/64 dev {br} nodad"),
        ));
        if let Some(net) = server.ipv6_net()? {
            c.push(ip(ns, &format!("-6 route add {net} dev {br}")));
        }
        c.push(ip(ns, &format!("tuntap add dev {} mode tap", tap_public())));
        c.push(ip(ns, &format!("link set {} master {br} up", tap_public())));
    }
    let metadata = server.metadata_network();
    for p in &server.private_networks {
        let metadata_here = metadata == Some(p.interface_num);
        c.extend(plan_private(ns, p, metadata_here)?);
    }
    Ok(c)
}

/// The bridge, tap and second host of one private network. `metadata_here`: the server has no
/// public NIC, so the metadata service answers on this link.
pub fn plan_private(ns: &str, p: &PrivateNetwork, metadata_here: bool) -> Result<Vec<Cmd>> {
    let net = p.network_v4()?;
    let br = bridge_private(p.interface_num);
    let tap = tap_private(p.interface_num);
    let mtu = PRIVATE_MTU.to_string();
    let mut c = vec![
        ip(ns, &format!("link add {br} mtu {mtu} type bridge")),
        ip(ns, &format!("link set {br} up")),
        ip(
            ns,
            &format!("addr add {}/{} dev {br}", p.gateway, net.prefix()),
        ),
        ip(ns, &format!("addr add {}/32 dev lo", p.peer_host()?)),
    ];
    if metadata_here {
        c.push(ip(ns, &format!("addr add {METADATA_V4}/16 dev {br}")));
    }
    c.push(ip(ns, &format!("tuntap add dev {tap} mode tap")));
    c.push(ip(ns, &format!("link set {tap} mtu {mtu} master {br} up")));
    Ok(c)
}

/// Removes what `plan_private` created (after the NIC was detached).
pub fn unplan_private(ns: &str, p: &PrivateNetwork) -> Result<Vec<Cmd>> {
    Ok(vec![
        ip(ns, &format!("link del {}", tap_private(p.interface_num))),
        ip(ns, &format!("link del {}", bridge_private(p.interface_num))),
        ip(ns, &format!("addr del {}/32 dev lo", p.peer_host()?)),
    ])
}

/// A DHCP server for one bridge: its arguments (run inside the namespace).
#[derive(Debug, Clone, PartialEq)]
pub struct Dhcp {
    pub bridge: String,
    pub args: Vec<String>,
}

fn dnsmasq_common(state: &Path, tag: &str, bridge: &str) -> Vec<String> {
    let f = |ext: &str| {
        state
            .join(format!("dnsmasq-{tag}.{ext}"))
            .display()
            .to_string()
    };
    vec![
        "--conf-file=/dev/null".into(),
        "--port=0".into(),
        "--bind-interfaces".into(),
        format!("--interface={bridge}"),
        "--except-interface=lo".into(),
        format!("--pid-file={}", f("pid")),
        format!("--dhcp-leasefile={}", f("leases")),
        format!("--log-facility={}", f("log")),
        "--log-dhcp".into(),
        "--dhcp-authoritative".into(),
        // Hetzner does not echo the client's name back as a hostname option.
        "--dhcp-ignore-names".into(),
        "--user=root".into(),
        "--group=root".into(),
    ]
}

/// DHCP on the public bridge: the server's IPv4 as a /32, the gateway 172.31.1.1 on-link
/// (option 121 `172.31.1.1/32 via 0.0.0.0` and `default via 172.31.1.1`, plus option 3), and
/// Hetzner's resolvers. `None` without a public IPv4 (an IPv6-only server gets no DHCPv4 answer).
pub fn dhcp_public(state: &Path, server: &Server) -> Result<Option<Dhcp>> {
    let (Some(v4), Some(mac)) = (server.public_ipv4, server.public_mac.as_deref()) else {
        return Ok(None);
    };
    let bridge = "br-pub".to_string();
    let o = v4.octets();
    let mut args = dnsmasq_common(state, "pub", &bridge);
    args.extend([
        format!(
            "--dhcp-range={}.{}.{}.0,static,255.255.255.0,24h",
            o[0], o[1], o[2]
        ),
        format!("--dhcp-host={},{v4}", mac.to_ascii_lowercase()),
        "--dhcp-option=option:netmask,255.255.255.255".into(),
        format!("--dhcp-option=option:router,{GATEWAY_V4}"),
        format!("--dhcp-option=121,{GATEWAY_V4}/32,0.0.0.0,0.0.0.0/0,{GATEWAY_V4}"),
        format!(
            "--dhcp-option=option:dns-server,{},{}",
            BEYOND_V4[0], BEYOND_V4[1]
        ),
    ]);
    Ok(Some(Dhcp { bridge, args }))
}

/// DHCP on a private network's bridge: the server's IP as a /32 and only classless routes
/// (`<gateway>/32` on-link, `<network> via <gateway>`); no router option, as on Hetzner since 2025.
/// `metadata_route`: the server has no public NIC, so the lease also carries
/// `169.254.169.254/32 via <gateway>` (how a private-only server reaches the metadata service).
pub fn dhcp_private(state: &Path, p: &PrivateNetwork, metadata_route: bool) -> Result<Dhcp> {
    let net = p.network_v4()?;
    let bridge = bridge_private(p.interface_num);
    let tag = format!("p{}", p.interface_num);
    let mut args = dnsmasq_common(state, &tag, &bridge);
    args.extend([
        format!("--dhcp-range={},static,{},24h", net.network(), net.mask()),
        format!(
            "--dhcp-host={},{}",
            p.mac_address.to_ascii_lowercase(),
            p.ip
        ),
        "--dhcp-option=option:netmask,255.255.255.255".into(),
        "--dhcp-option=option:router".into(),
        "--dhcp-option=option:dns-server".into(),
    ]);
    let mut routes = format!(
        "--dhcp-option=121,{gw}/32,0.0.0.0,{net},{gw}",
        gw = p.gateway
    );
    if metadata_route {
        routes.push_str(&format!(",{METADATA_V4}/32,{}", p.gateway));
    }
    args.push(routes);
    Ok(Dhcp { bridge, args })
}

/// Runs one command, failing with its output.
pub fn run(c: &[String]) -> Result<String> {
    let Some((prog, args)) = c.split_first() else {
        bail!("empty command")
    };
    let out = Command::new(prog)
        .args(args)
        .output()
        .with_context(|| format!("running {prog} (is it installed?)"))?;
    if !out.status.success() {
        bail!(
            "`{}` failed ({}): {}",
            c.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub fn run_all(cmds: &[Cmd]) -> Result<()> {
    for c in cmds {
        run(c)?;
    }
    Ok(())
}

/// Starts dnsmasq inside the namespace (it daemonizes and writes its pid file).
pub fn start_dhcp(ns: &str, d: &Dhcp) -> Result<()> {
    let mut c = cmd(&["ip", "netns", "exec", ns, "dnsmasq"]);
    c.extend(d.args.iter().cloned());
    run(&c).with_context(|| format!("starting dnsmasq on {} (package dnsmasq-base)", d.bridge))?;
    Ok(())
}

pub fn namespace_exists(ns: &str) -> bool {
    Path::new("/run/netns").join(ns).exists()
}

/// The namespace `ns` as a file, for setns.
fn netns_file(ns: &str) -> Result<std::fs::File> {
    let p = Path::new("/run/netns").join(ns);
    std::fs::File::open(&p).with_context(|| format!("opening {}", p.display()))
}

/// Runs `f` in a thread that has entered the network namespace `ns`: sockets it makes (a
/// listener, a client connection) belong to that namespace.
pub fn in_namespace<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> Result<T> {
    let file = netns_file(ns)?;
    std::thread::scope(|s| {
        s.spawn(move || -> Result<T> {
            nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                .context("entering the network namespace (setns)")?;
            Ok(f())
        })
        .join()
        .map_err(|_| anyhow::anyhow!("the thread in namespace {ns} panicked"))?
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario;

    fn server(extra: &str) -> Server {
        let text = format!(
            "server:\n  id: 7\n  name: a\n{extra}  private_networks:\n    - ip: 10.0.0.2\n      interface_num: 1\n      mac_address: \"86:00:00:00:00:01\"\n      network_id: 1001\n      network_name: backend\n      network: 10.0.0.0/16\n      subnet: 10.0.0.0/24\n      gateway: 10.0.0.1\n"
        );
        scenario::parse(&text).unwrap().1
    }

    fn has(plan: &[Cmd], needle: &str) -> bool {
        plan.iter().any(|c| c.join(" ") == needle)
    }

    #[test]
    fn dual_stack_plan_has_gateways_metadata_and_the_64() {
        let s = server(
            "  public_mac: \"96:00:00:00:00:aa\"\n  public_ipv4: 203.0.113.10\n  public_ipv6: 2001:db8:1:2::/64\n",
        );
        let p = plan("hsim-t", &s).unwrap();
        assert!(has(&p, "ip -n hsim-t addr add 172.31.1.1/32 dev br-pub"));
        assert!(has(
            &p,
            "ip -n hsim-t addr add 169.254.169.254/16 dev br-pub"
        ));
        assert!(has(&p, "ip -n hsim-t addr add 203.0.113.254/24 dev br-pub"));
        assert!(has(
            &p,
            "ip -n hsim-t -6 addr add fe80::1/64 dev br-pub nodad"
        ));
        assert!(has(
            &p,
            "ip -n hsim-t -6 route add 2001:db8:1:2::/64 dev br-pub"
        ));
        assert!(has(&p, "ip -n hsim-t link add br-p1 mtu 1450 type bridge"));
        assert!(has(&p, "ip -n hsim-t addr add 10.0.0.1/16 dev br-p1"));
        assert!(has(&p, "ip -n hsim-t addr add 10.0.255.254/32 dev lo"));
        // The metadata service is on the public link only.
        assert!(!has(
            &p,
            "ip -n hsim-t addr add 169.254.169.254/16 dev br-p1"
        ));
    }

    #[test]
    fn private_only_server_reaches_metadata_on_its_private_link() {
        let s = server("");
        let p = plan("hsim-t", &s).unwrap();
        assert!(!p.iter().any(|c| c.contains(&"br-pub".to_string())));
        assert!(has(
            &p,
            "ip -n hsim-t addr add 169.254.169.254/16 dev br-p1"
        ));
    }

    #[test]
    fn dhcp_gives_a_32_and_classless_routes() {
        let s = server("  public_mac: \"96:00:00:00:00:AA\"\n  public_ipv4: 203.0.113.10\n");
        let d = dhcp_public(Path::new("/s"), &s).unwrap().unwrap();
        assert!(
            d.args
                .contains(&"--dhcp-host=96:00:00:00:00:aa,203.0.113.10".to_string())
        );
        assert!(
            d.args
                .contains(&"--dhcp-option=option:netmask,255.255.255.255".to_string())
        );
        assert!(
            d.args.contains(
                &"--dhcp-option=121,172.31.1.1/32,0.0.0.0,0.0.0.0/0,172.31.1.1".to_string()
            )
        );
        let d = dhcp_private(Path::new("/s"), &s.private_networks[0], false).unwrap();
        assert!(
            d.args.contains(
                &"--dhcp-option=121,10.0.0.1/32,0.0.0.0,10.0.0.0/16,10.0.0.1".to_string()
            )
        );
        assert!(d.args.contains(&"--dhcp-option=option:router".to_string()));
        assert!(
            d.args
                .contains(&"--dhcp-range=10.0.0.0,static,255.255.0.0,24h".to_string())
        );
        let d = dhcp_private(Path::new("/s"), &s.private_networks[0], true).unwrap();
        let last = d.args.last().unwrap();
        assert_eq!(
            last,
            "--dhcp-option=121,10.0.0.1/32,0.0.0.0,10.0.0.0/16,10.0.0.1,169.254.169.254/32,10.0.0.1"
        );
    }

    #[test]
    fn ipv6_only_server_gets_no_dhcpv4() {
        let s = server("  public_mac: \"96:00:00:00:00:aa\"\n  public_ipv6: 2001:db8:1:2::/64\n");
        assert!(dhcp_public(Path::new("/s"), &s).unwrap().is_none());
    }
}
