//! The rendered files through a real systemd-networkd in network namespaces: addresses, routes,
//! MTU and reachability, a NIC attached and detached at runtime, an IPv6-only server reaching
//! 169.254.169.254 over IPv4 link-local. The scenario is `tests/networkd-netns.sh` (it says
//! what it checks); it needs root and the packages in `scripts/deps/network.txt`.

#[test]
fn real_networkd_applies_the_rendered_files() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/networkd-netns.sh");
    let started = std::time::Instant::now();
    let out = std::process::Command::new("bash")
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_hcloud-network"))
        .output()
        .expect("run tests/networkd-netns.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    eprintln!("took {:.1} s", started.elapsed().as_secs_f64());
    assert!(out.status.success(), "networkd-netns.sh failed: {stderr}");
    assert!(stdout.trim_end().ends_with("PASS"), "no PASS at the end");
}
