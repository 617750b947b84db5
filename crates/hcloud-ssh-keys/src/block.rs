//! The managed block inside `authorized_keys` ([`hcloud_metadata::block`] with these markers).
//!
//! ```text
//! # BEGIN hcloud-ssh-keys: keys from the Hetzner Cloud metadata; edits inside this block are replaced at every boot
//! ssh-ed25519 AAAA... alice@laptop
//! # END hcloud-ssh-keys
//! ```

use hcloud_metadata::block::Markers;
pub use hcloud_metadata::block::{BlockError, Edited};

/// The first line of the block. Recognized by its prefix [`BEGIN_PREFIX`].
pub const BEGIN: &str = "# BEGIN hcloud-ssh-keys: keys from the Hetzner Cloud metadata; edits inside \
                         this block are replaced at every boot";
pub const BEGIN_PREFIX: &str = "# BEGIN hcloud-ssh-keys";
pub const END: &str = "# END hcloud-ssh-keys";

pub const MARKERS: Markers = Markers {
    begin: BEGIN,
    begin_prefix: BEGIN_PREFIX,
    end: END,
};

/// Render the block holding `keys` (already validated lines).
pub fn render_block(keys: &[String]) -> Vec<u8> {
    MARKERS.render(keys)
}

/// Put `keys` into the managed block of `existing` (see [`Markers::edit`]).
pub fn edit(existing: &[u8], keys: &[String]) -> Result<Edited, BlockError> {
    MARKERS.edit(existing, keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(k: &[&str]) -> Vec<String> {
        k.iter().map(|s| s.to_string()).collect()
    }

    fn block(k: &[&str]) -> String {
        String::from_utf8(render_block(&keys(k))).unwrap()
    }

    fn run(existing: &str, k: &[&str]) -> String {
        String::from_utf8(edit(existing.as_bytes(), &keys(k)).unwrap().content).unwrap()
    }

    #[test]
    fn new_file_gets_only_the_block() {
        assert_eq!(run("", &["ssh-ed25519 A a"]), block(&["ssh-ed25519 A a"]));
    }

    #[test]
    fn no_keys_and_no_block_changes_nothing() {
        assert_eq!(run("", &[]), "");
        let user = "ssh-rsa U mine\n# note\n";
        assert_eq!(run(user, &[]), user);
    }

    #[test]
    fn appends_after_user_lines_and_keeps_them() {
        let user =
            "ssh-rsa U1 mine\n\n# my comment\nfrom=\"10.0.0.0/8\" ssh-ed25519 U2 restricted\n";
        let out = run(user, &["k1", "k2"]);
        assert_eq!(out, format!("{user}{}", block(&["k1", "k2"])));
    }

    #[test]
    fn user_line_without_trailing_newline_is_terminated_not_changed() {
        let out = run("ssh-rsa U mine", &["k1"]);
        assert_eq!(out, format!("ssh-rsa U mine\n{}", block(&["k1"])));
        // and the result is stable
        assert_eq!(run(&out, &["k1"]), out);
    }

    #[test]
    fn replaces_the_block_in_place_between_user_lines() {
        let before = "ssh-rsa BEFORE\r\n";
        let after = "ssh-rsa AFTER\r\n  \t\nlast-no-newline";
        let file = format!("{before}{}{after}", block(&["stale1", "stale2"]));
        let e = edit(file.as_bytes(), &keys(&["fresh"])).unwrap();
        assert_eq!(
            String::from_utf8(e.content).unwrap(),
            format!("{before}{}{after}", block(&["fresh"]))
        );
        assert_eq!(e.old_block, keys(&["stale1", "stale2"]));
        assert!(e.had_block);
    }

    #[test]
    fn crlf_user_lines_stay_byte_for_byte() {
        let user = "ssh-rsa U1 a\r\nssh-rsa U2 b\r\n";
        let out = run(user, &["k"]);
        assert!(out.starts_with(user));
        assert!(out.ends_with(&block(&["k"])));
        // A block whose markers were rewritten with CRLF (an editor) is still found and replaced.
        let crlf = format!("{user}{}", block(&["old"]).replace('\n', "\r\n"));
        assert_eq!(run(&crlf, &["k"]), out);
    }

    #[test]
    fn empty_list_empties_the_block_but_keeps_user_keys() {
        let file = format!("ssh-rsa MINE\n{}# after\n", block(&["k1", "k2"]));
        let e = edit(file.as_bytes(), &[]).unwrap();
        assert_eq!(
            String::from_utf8(e.content).unwrap(),
            format!("ssh-rsa MINE\n{}# after\n", block(&[]))
        );
        assert_eq!(e.old_block, keys(&["k1", "k2"]));
    }

    #[test]
    fn idempotent() {
        let file = "a\n\nb\r\nc";
        let once = run(file, &["k1", "k2"]);
        let twice = run(&once, &["k1", "k2"]);
        assert_eq!(once, twice);
    }

    #[test]
    fn several_blocks_merge_into_the_first() {
        let file = format!("u1\n{}u2\n{}u3\n", block(&["a"]), block(&["b"]));
        let e = edit(file.as_bytes(), &keys(&["c"])).unwrap();
        assert_eq!(
            String::from_utf8(e.content).unwrap(),
            format!("u1\n{}u2\nu3\n", block(&["c"]))
        );
        assert_eq!(e.old_block, keys(&["a", "b"]));
    }

    #[test]
    fn unterminated_block_is_an_error_naming_the_line() {
        let file = format!("u1\n{BEGIN}\nk\nu2\n");
        let err = edit(file.as_bytes(), &keys(&["c"])).unwrap_err();
        assert!(
            matches!(err, BlockError::Unterminated { line: 2, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("line 2"));
    }

    #[test]
    fn stray_end_marker_is_a_user_line() {
        let file = format!("{END}\nu1\n");
        assert_eq!(run(&file, &["k"]), format!("{file}{}", block(&["k"])));
    }

    #[test]
    fn non_utf8_user_bytes_are_kept() {
        let mut file = b"ssh-rsa U \xff\xfe comment\n".to_vec();
        file.extend_from_slice(&render_block(&keys(&["old"])));
        let e = edit(&file, &keys(&["new"])).unwrap();
        assert!(e.content.starts_with(b"ssh-rsa U \xff\xfe comment\n"));
    }
}
