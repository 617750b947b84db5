//! `systemd/81-hcloud-network.rules` evaluated by udevadm on real network devices: which devices
//! it marks, what it queues on add and on remove. The scenario is `tests/udev-rule.sh`; it needs
//! root and the packages in `scripts/deps/network.txt`.

#[test]
fn udev_rule_queues_refreshes_for_private_nics_only() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/udev-rule.sh");
    let out = std::process::Command::new("bash")
        .arg(script)
        .output()
        .expect("run tests/udev-rule.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(out.status.success(), "udev-rule.sh failed: {stderr}");
    assert!(stdout.trim_end().ends_with("PASS"), "no PASS at the end");
}
