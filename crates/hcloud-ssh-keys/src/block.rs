//! The managed block inside `authorized_keys`.
//!
//! ```text
//! # BEGIN hcloud-ssh-keys: keys from the Hetzner Cloud metadata; edits inside this block are replaced at every boot
//! ssh-ed25519 AAAA... alice@laptop
//! # END hcloud-ssh-keys
//! ```
//!
//! Every line outside the block is the user's and is kept byte for byte (CRLF, odd whitespace,
//! invalid UTF-8 and all), in place. The block is replaced where it is; a file without one gets
//! it appended. The block itself is written with `\n` line ends.

/// The first line of the block. Recognized by its prefix [`BEGIN_PREFIX`].
pub const BEGIN: &str = "# BEGIN hcloud-ssh-keys: keys from the Hetzner Cloud metadata; edits inside \
                         this block are replaced at every boot";
pub const BEGIN_PREFIX: &str = "# BEGIN hcloud-ssh-keys";
pub const END: &str = "# END hcloud-ssh-keys";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    #[error(
        "line {line} starts the managed block ({BEGIN_PREFIX}) but no `{END}` line follows; \
         add the end marker or remove the block by hand, then run again"
    )]
    Unterminated { line: usize },
}

/// The file split into the user's lines and the lines of the managed block(s).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edited {
    /// The new file content.
    pub content: Vec<u8>,
    /// The lines found inside the old block(s), without line ends.
    pub old_block: Vec<String>,
    /// Whether the file had a block before.
    pub had_block: bool,
}

/// Lines with their terminators; the last one may have none.
fn split_lines(bytes: &[u8]) -> Vec<&[u8]> {
    bytes.split_inclusive(|b| *b == b'\n').collect()
}

/// The line without `\n`, `\r\n` and trailing spaces or tabs.
fn bare(line: &[u8]) -> &[u8] {
    let mut end = line.len();
    while end > 0 && matches!(line[end - 1], b'\n' | b'\r' | b' ' | b'\t') {
        end -= 1;
    }
    &line[..end]
}

fn is_begin(line: &[u8]) -> bool {
    bare(line).starts_with(BEGIN_PREFIX.as_bytes())
}

fn is_end(line: &[u8]) -> bool {
    bare(line) == END.as_bytes()
}

/// Render the block holding `keys` (already validated lines).
pub fn render_block(keys: &[String]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(BEGIN.as_bytes());
    out.push(b'\n');
    for k in keys {
        out.extend_from_slice(k.as_bytes());
        out.push(b'\n');
    }
    out.extend_from_slice(END.as_bytes());
    out.push(b'\n');
    out
}

/// Put `keys` into the managed block of `existing`. Several blocks (copied by hand) are merged
/// into one at the place of the first. Without a block and without keys, nothing changes.
pub fn edit(existing: &[u8], keys: &[String]) -> Result<Edited, BlockError> {
    let mut content = Vec::with_capacity(existing.len() + 128 * keys.len() + 128);
    let mut old_block = Vec::new();
    let mut open: Option<usize> = None;
    let mut placed = false;
    for (i, line) in split_lines(existing).into_iter().enumerate() {
        if open.is_some() {
            if is_end(line) {
                open = None;
            } else {
                old_block.push(String::from_utf8_lossy(bare(line)).into_owned());
            }
            continue;
        }
        if is_begin(line) {
            open = Some(i + 1);
            if !placed {
                content.extend_from_slice(&render_block(keys));
                placed = true;
            }
            continue;
        }
        content.extend_from_slice(line);
    }
    if let Some(line) = open {
        return Err(BlockError::Unterminated { line });
    }
    let had_block = placed;
    if !placed && !keys.is_empty() {
        if content.last().is_some_and(|b| *b != b'\n') {
            content.push(b'\n');
        }
        content.extend_from_slice(&render_block(keys));
    }
    Ok(Edited {
        content,
        old_block,
        had_block,
    })
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
        assert_eq!(err, BlockError::Unterminated { line: 2 });
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
