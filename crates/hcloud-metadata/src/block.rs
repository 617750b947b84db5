//! A managed block inside a text file that is otherwise the user's: root's `authorized_keys`
//! (`hcloud-ssh-keys`), `/etc/hosts` (`hcloud-hostname`).
//!
//! ```text
//! # BEGIN <tool>: <what>; edits inside this block are replaced at every boot
//! <lines>
//! # END <tool>
//! ```
//!
//! Every line outside the block is the user's and is kept byte for byte (CRLF, odd whitespace,
//! invalid UTF-8 and all), in place. The block is replaced where it is; a file without one gets
//! it appended. The block itself is written with `\n` line ends.

/// The marker lines of one kind of block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Markers {
    /// The first line written.
    pub begin: &'static str,
    /// A line starting with this (after trailing whitespace is dropped) opens a block.
    pub begin_prefix: &'static str,
    /// The last line.
    pub end: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    #[error(
        "line {line} starts the managed block ({begin_prefix}) but no `{end}` line follows; \
         add the end marker or remove the block by hand, then run again"
    )]
    Unterminated {
        line: usize,
        begin_prefix: &'static str,
        end: &'static str,
    },
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
    /// The lines outside the block(s), without line ends (lossy UTF-8).
    pub outside: Vec<String>,
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

impl Markers {
    fn is_begin(&self, line: &[u8]) -> bool {
        bare(line).starts_with(self.begin_prefix.as_bytes())
    }

    fn is_end(&self, line: &[u8]) -> bool {
        bare(line) == self.end.as_bytes()
    }

    /// Render the block holding `lines`.
    pub fn render(&self, lines: &[String]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(self.begin.as_bytes());
        out.push(b'\n');
        for l in lines {
            out.extend_from_slice(l.as_bytes());
            out.push(b'\n');
        }
        out.extend_from_slice(self.end.as_bytes());
        out.push(b'\n');
        out
    }

    /// Put `lines` into the managed block of `existing`. Several blocks (copied by hand) are
    /// merged into one at the place of the first. Without a block and without lines, nothing
    /// changes; with no lines an existing block is emptied, not removed.
    pub fn edit(&self, existing: &[u8], lines: &[String]) -> Result<Edited, BlockError> {
        let mut content = Vec::with_capacity(existing.len() + 128 * lines.len() + 128);
        let mut old_block = Vec::new();
        let mut outside = Vec::new();
        let mut open: Option<usize> = None;
        let mut placed = false;
        for (i, line) in split_lines(existing).into_iter().enumerate() {
            if open.is_some() {
                if self.is_end(line) {
                    open = None;
                } else {
                    old_block.push(String::from_utf8_lossy(bare(line)).into_owned());
                }
                continue;
            }
            if self.is_begin(line) {
                open = Some(i + 1);
                if !placed {
                    content.extend_from_slice(&self.render(lines));
                    placed = true;
                }
                continue;
            }
            outside.push(String::from_utf8_lossy(bare(line)).into_owned());
            content.extend_from_slice(line);
        }
        if let Some(line) = open {
            return Err(BlockError::Unterminated {
                line,
                begin_prefix: self.begin_prefix,
                end: self.end,
            });
        }
        let had_block = placed;
        if !placed && !lines.is_empty() {
            if content.last().is_some_and(|b| *b != b'\n') {
                content.push(b'\n');
            }
            content.extend_from_slice(&self.render(lines));
        }
        Ok(Edited {
            content,
            old_block,
            had_block,
            outside,
        })
    }
}
