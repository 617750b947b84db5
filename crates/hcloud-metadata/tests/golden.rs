//! One fixture per shape the metadata service is known to serve (hetzner-guest-spec.md §1.3–1.5):
//! parse `metadata.yaml` + `private-networks.yaml`, normalize, and compare with the golden
//! `document.json`. `UPDATE_GOLDEN=1 cargo test -p hcloud-metadata` rewrites the goldens (review
//! the diff before committing).

use std::path::{Path, PathBuf};

use hcloud_metadata::{Document, parse_private_networks, parse_summary};

fn fixtures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("fixtures dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

fn document_for(dir: &Path) -> Document {
    let md = std::fs::read_to_string(dir.join("metadata.yaml")).expect("metadata.yaml");
    let pn =
        std::fs::read_to_string(dir.join("private-networks.yaml")).expect("private-networks.yaml");
    let summary = parse_summary(&md).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let private = parse_private_networks(&pn).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    assert!(
        summary.warnings.is_empty(),
        "{}: {:?}",
        dir.display(),
        summary.warnings
    );
    assert!(
        private.warnings.is_empty(),
        "{}: {:?}",
        dir.display(),
        private.warnings
    );
    Document::from_service(&summary, &private.networks)
}

#[test]
fn every_fixture_matches_its_golden_document() {
    let dirs = fixtures();
    assert!(
        dirs.len() >= 9,
        "expected a fixture per shape, found {}",
        dirs.len()
    );
    let mut failures = Vec::new();
    for dir in dirs {
        let got = document_for(&dir).to_json();
        let golden = dir.join("document.json");
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&golden, &got).expect("write golden");
            continue;
        }
        let want = std::fs::read(&golden).unwrap_or_default();
        if got != want {
            failures.push(format!(
                "{}:\n--- want\n{}\n--- got\n{}",
                dir.display(),
                String::from_utf8_lossy(&want),
                String::from_utf8_lossy(&got)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn golden_documents_round_trip_through_the_reader() {
    for dir in fixtures() {
        let doc = document_for(&dir);
        assert_eq!(Document::from_json(&doc.to_json()).expect("reparse"), doc);
    }
}

#[test]
fn vendor_data_is_never_copied() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dual-stack");
    let json = String::from_utf8(document_for(&dir).to_json()).unwrap();
    assert!(
        !json.contains("secret-hash") && !json.contains("vendor"),
        "{json}"
    );
}
