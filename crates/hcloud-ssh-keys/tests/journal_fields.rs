//! The security events carry stable journal fields: the journal logger turns a record's
//! key-values into fields, so `journalctl MESSAGE_ID=...` finds every key added, removed or
//! refused, with its fingerprint. This test captures the records the agent emits.

use std::collections::BTreeMap;
use std::fs;
use std::process::Command;
use std::sync::Mutex;

use hcloud_metadata::logging::message_id;
use hcloud_metadata::{Document, Network, Root};
use log::kv::{Key, Value, VisitSource};

type Fields = BTreeMap<String, String>;

struct Capture(Mutex<Vec<Fields>>);

struct Collect<'a>(&'a mut Fields);

impl<'kvs> VisitSource<'kvs> for Collect<'_> {
    fn visit_pair(&mut self, key: Key<'kvs>, value: Value<'kvs>) -> Result<(), log::kv::Error> {
        self.0.insert(key.as_str().to_string(), value.to_string());
        Ok(())
    }
}

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, record: &log::Record) {
        let mut fields = Fields::new();
        let _ = record.key_values().visit(&mut Collect(&mut fields));
        fields.insert("MESSAGE".into(), record.args().to_string());
        self.0.lock().unwrap().push(fields);
    }
    fn flush(&self) {}
}

static CAPTURE: Capture = Capture(Mutex::new(Vec::new()));

fn keygen(dir: &std::path::Path, name: &str) -> String {
    let path = dir.join(name);
    let ok = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&path)
        .status()
        .unwrap()
        .success();
    assert!(ok);
    fs::read_to_string(path.with_extension("pub"))
        .unwrap()
        .trim()
        .to_string()
}

fn write_doc(root: &std::path::Path, keys: Vec<String>) {
    let doc = Document {
        instance_id: 1,
        hostname: None,
        region: None,
        availability_zone: None,
        ssh_keys: keys,
        network: Network::default(),
    };
    fs::write(root.join("etc/hcloud-metadata.json"), doc.to_json()).unwrap();
}

fn events(id: &str) -> Vec<Fields> {
    let all = CAPTURE.0.lock().unwrap();
    all.iter()
        .filter(|f| f.get("MESSAGE_ID").map(String::as_str) == Some(id))
        .cloned()
        .collect()
}

#[test]
fn added_removed_and_rejected_keys_carry_message_ids_and_fingerprints() {
    log::set_logger(&CAPTURE).unwrap();
    log::set_max_level(log::LevelFilter::Trace);

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::create_dir_all(root.join("etc")).unwrap();
    fs::create_dir_all(root.join("root")).unwrap();
    fs::write(root.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\n").unwrap();
    let a = keygen(root, "a");
    let b = keygen(root, "b");
    let cfg = hcloud_ssh_keys::Config {
        root: Root::new(root),
        metadata: "/etc/hcloud-metadata.json".into(),
        user: "root".into(),
        authorized_keys: None,
    };

    write_doc(root, vec![a.clone()]);
    let first = hcloud_ssh_keys::run(&cfg).unwrap();
    write_doc(root, vec![b.clone(), format!("no-pty {a}")]);
    let second = hcloud_ssh_keys::run(&cfg).unwrap();

    let fp_a = &first.added[0];
    let fp_b = &second.added[0];
    assert_eq!(&second.removed, std::slice::from_ref(fp_a));
    assert_eq!(second.rejected, 1);

    let added = events(message_id::SSH_KEY_ADDED);
    let added_fps: Vec<&str> = added.iter().map(|f| f["FINGERPRINT"].as_str()).collect();
    assert_eq!(added_fps, vec![fp_a.as_str(), fp_b.as_str()]);
    assert!(
        added
            .iter()
            .all(|f| f["SSH_USER"] == "root" && f["KEY_TYPE"] == "ssh-ed25519")
    );

    let removed = events(message_id::SSH_KEY_REMOVED);
    assert_eq!(removed.len(), 1);
    assert_eq!(&removed[0]["FINGERPRINT"], fp_a);
    assert!(removed[0]["MESSAGE"].contains(fp_a.as_str()));

    let rejected = events(message_id::SSH_KEY_REJECTED);
    assert_eq!(rejected.len(), 1);
    assert_eq!(
        &rejected[0]["FINGERPRINT"], fp_a,
        "the refused line is named by its key"
    );
    assert_eq!(rejected[0]["KEY_POSITION"], "2");
}
