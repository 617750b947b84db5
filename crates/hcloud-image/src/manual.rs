//! Manual pages and shell completions of every binary of the workspace, rendered from the same
//! clap definitions as their `--help` (each crate's `cli::Args`), never written by hand.
//!
//! The files, relative to a prefix (`usr/` in the staged tree, `$out/` in the Nix package):
//!
//! ```text
//! share/man/man8/<agent>.8.gz                   agents (system services): section 8
//! share/man/man1/<tool>.1.gz                    hcloud-image, hcloud-sim, hcloud-fake-metadata,
//!                                               hcloud-fake-cloud
//! share/bash-completion/completions/<name>      bash
//! share/zsh/site-functions/_<name>              zsh (Debian's package moves it to vendor-completions)
//! share/fish/vendor_completions.d/<name>.fish   fish
//! ```
//!
//! A page has the sections clap_mangen renders (NAME, SYNOPSIS, DESCRIPTION, OPTIONS), one
//! subsection per subcommand, and the sections of the command's `after_long_help`, which
//! `--help` shows as well. That text follows a small format so it reads the same in both:
//! a heading line (`Exit status:`) starts a section; a line indented by two spaces is an entry,
//! `TERM  description` when two spaces separate a term, else a paragraph; a line indented
//! further continues the entry above.

use crate::dist::HOST_TOOLS;
use anyhow::{Context, Result, bail};
use clap::CommandFactory;
use clap_complete::Shell;
use clap_mangen::Man;
use clap_mangen::roff::{Roff, bold, roman};
use flate2::{Compression, GzBuilder};
use hcloud_metadata::{WriteOptions, write_atomic};
use std::fs;
use std::io::Write;
use std::path::Path;

/// A binary's name and the function that builds its clap definition.
pub type Program = (&'static str, fn() -> clap::Command);

/// Every binary of the workspace with its clap definition.
pub const PROGRAMS: &[Program] = &[
    ("hcloud-dl-metadata", hcloud_dl_metadata::cli::Args::command),
    ("hcloud-dl-userdata", hcloud_dl_userdata::cli::Args::command),
    ("hcloud-hostname", hcloud_hostname::cli::Args::command),
    ("hcloud-ssh-keys", hcloud_ssh_keys::cli::Args::command),
    ("hcloud-network", hcloud_network::cli::Args::command),
    ("hcloud-volumes", hcloud_volumes::cli::Args::command),
    ("hcloud-image", crate::cli::Cli::command),
    ("hcloud-sim", hcloud_sim::cli::Cli::command),
    (
        "hcloud-fake-metadata",
        hcloud_fake_metadata::cli::Args::command,
    ),
    ("hcloud-fake-cloud", hcloud_fake_cloud::cli::Args::command),
];

/// The clap definition of the binary `name`.
pub fn command(name: &str) -> Result<clap::Command> {
    let (_, f) = PROGRAMS.iter().find(|(n, _)| *n == name).with_context(|| {
        format!(
            "{name} has no clap definition for its manual page: add its cli::Args to PROGRAMS in crates/hcloud-image/src/manual.rs"
        )
    })?;
    Ok(f())
}

/// Section 1 for the host tools, 8 for the agents (system services).
pub fn section(name: &str) -> &'static str {
    if HOST_TOOLS.contains(&name) { "1" } else { "8" }
}

/// One entry of an `after_long_help` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Term(String, String),
    Text(String),
}

/// A section of an `after_long_help` text: its title (upper case) and entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub title: String,
    pub items: Vec<Item>,
}

/// Parse an `after_long_help` text in the format of the module documentation.
pub fn parse_sections(text: &str) -> Result<Vec<Section>> {
    let mut sections: Vec<Section> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        let body = line.trim();
        if indent == 0 {
            let Some(title) = body.strip_suffix(':') else {
                bail!("line {n}: {body:?} is neither a heading (ending in ':') nor indented");
            };
            sections.push(Section {
                title: title.to_uppercase(),
                items: Vec::new(),
            });
            continue;
        }
        let Some(section) = sections.last_mut() else {
            bail!("line {n}: {body:?} comes before the first heading");
        };
        if indent == 2 {
            let item = match body.split_once("  ") {
                Some((term, desc)) => Item::Term(term.into(), desc.trim().into()),
                None => Item::Text(body.into()),
            };
            section.items.push(item);
        } else {
            let Some(last) = section.items.last_mut() else {
                bail!("line {n}: {body:?} continues no entry (indent entries by two spaces)");
            };
            let (Item::Term(_, s) | Item::Text(s)) = last;
            s.push(' ');
            s.push_str(body);
        }
    }
    Ok(sections)
}

/// Render with one of clap_mangen's section renderers, without roff's preamble (the page has
/// it once) and, when `heading` is false, without the `.SH` line.
fn rendered(render: impl Fn(&mut dyn Write) -> std::io::Result<()>, heading: bool) -> String {
    let mut buf = Vec::new();
    // Writing to a Vec cannot fail.
    let _ = render(&mut buf);
    let text = String::from_utf8_lossy(&buf).into_owned();
    text.lines()
        .filter(|l| !l.starts_with(".ie \\n(.g .ds Aq") && !l.starts_with(".el .ds Aq"))
        .filter(|l| heading || !l.starts_with(".SH "))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// The roff source of the manual page of `cmd` (the binary `name`).
pub fn man_page(name: &str, cmd: clap::Command, version: &str) -> Result<String> {
    if cmd.get_name() != name {
        bail!(
            "the clap definition of {name} is named {}: the page would have the wrong title",
            cmd.get_name()
        );
    }
    let mut cmd = cmd.bin_name(name.to_string());
    cmd.build();
    let extra = match cmd.get_after_long_help() {
        Some(t) => parse_sections(&t.to_string())
            .with_context(|| format!("the after_long_help of {name}"))?,
        None => Vec::new(),
    };
    let man = Man::new(cmd.clone())
        .section(section(name))
        .source(format!("hcloud-agents {version}"))
        .manual("hcloud-agents");
    let mut page = String::new();
    let mut title = Vec::new();
    man.render_title(&mut title)
        .context("rendering the title")?;
    page.push_str(&String::from_utf8_lossy(&title));
    page.push_str(&rendered(|w| man.render_name_section(w), true));
    page.push_str(&rendered(|w| man.render_synopsis_section(w), true));
    page.push_str(&rendered(|w| man.render_description_section(w), true));
    page.push_str(&rendered(|w| man.render_options_section(w), true));
    let subs: Vec<&clap::Command> = cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
        .collect();
    if !subs.is_empty() {
        page.push_str(".SH COMMANDS\n");
        for sub in subs {
            let sm = Man::new(sub.clone());
            page.push_str(&format!(".SS {}\n", sub.get_name()));
            page.push_str(&rendered(|w| sm.render_synopsis_section(w), false));
            page.push_str(".PP\n");
            page.push_str(&rendered(|w| sm.render_description_section(w), false));
            page.push_str(&rendered(|w| sm.render_options_section(w), false));
        }
    }
    let mut roff = Roff::new();
    for s in &extra {
        roff.control("SH", [s.title.as_str()]);
        for item in &s.items {
            match item {
                Item::Term(t, d) => {
                    roff.control("TP", []);
                    roff.text([bold(t.as_str())]);
                    roff.text([roman(d.as_str())]);
                }
                Item::Text(t) => {
                    roff.control("PP", []);
                    roff.text([roman(t.as_str())]);
                }
            }
        }
    }
    page.push_str(&rendered(|w| roff.to_writer(w), true));
    Ok(page)
}

/// gzip -9n: best compression, no name, no time (reproducible; what Debian policy asks).
pub fn gzip(bytes: &[u8]) -> Result<Vec<u8>> {
    let mut enc = GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), Compression::best());
    enc.write_all(bytes).context("compressing")?;
    enc.finish().context("compressing")
}

/// The shells completions are made for and where each file goes (relative to the prefix).
pub const SHELLS: &[(Shell, &str)] = &[
    (Shell::Bash, "share/bash-completion/completions/{}"),
    (Shell::Zsh, "share/zsh/site-functions/_{}"),
    (Shell::Fish, "share/fish/vendor_completions.d/{}.fish"),
];

/// Every manual and completion file of the binary `name`: (path relative to the prefix, bytes).
pub fn files_for(name: &str, version: &str) -> Result<Vec<(String, Vec<u8>)>> {
    let cmd = command(name)?;
    let s = section(name);
    let page = man_page(name, cmd.clone(), version)?;
    let mut out = vec![(
        format!("share/man/man{s}/{name}.{s}.gz"),
        gzip(page.as_bytes())?,
    )];
    for (shell, pattern) in SHELLS {
        let mut c = cmd.clone();
        let mut buf = Vec::new();
        clap_complete::generate(*shell, &mut c, name, &mut buf);
        out.push((pattern.replace("{}", name), buf));
    }
    Ok(out)
}

/// Write the files of `names` under `prefix` (atomically, mode 0644); returns how many.
pub fn write_files(prefix: &Path, names: &[String], version: &str) -> Result<usize> {
    let mut n = 0;
    for name in names {
        for (rel, bytes) in files_for(name, version)? {
            let dest = prefix.join(&rel);
            if let Some(parent) = dest.parent() {
                fs::create_dir_all(parent)
                    .with_context(|| format!("creating {}", parent.display()))?;
            }
            write_atomic(&dest, &bytes, WriteOptions::mode(0o644))
                .with_context(|| format!("writing {}", dest.display()))?;
            n += 1;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_help_format_parses_into_sections() {
        let text =
            "Exit status:\n  0  done\n  1  failed,\n     really\n\nSee also:\n  x(8), y(5)\n";
        let s = parse_sections(text).unwrap();
        assert_eq!(
            s,
            vec![
                Section {
                    title: "EXIT STATUS".into(),
                    items: vec![
                        Item::Term("0".into(), "done".into()),
                        Item::Term("1".into(), "failed, really".into()),
                    ],
                },
                Section {
                    title: "SEE ALSO".into(),
                    items: vec![Item::Text("x(8), y(5)".into())],
                },
            ]
        );
    }

    #[test]
    fn text_outside_the_format_is_refused_naming_the_line() {
        let e = parse_sections("  0  done\n").unwrap_err();
        assert!(format!("{e}").contains("line 1"), "{e}");
        let e = parse_sections("Exit status:\nplain\n").unwrap_err();
        assert!(format!("{e}").contains("line 2: \"plain\""), "{e}");
        let e = parse_sections("Files:\n     continued\n").unwrap_err();
        assert!(format!("{e}").contains("continues no entry"), "{e}");
    }

    #[test]
    fn every_clap_definition_is_consistent() {
        for (_, command) in PROGRAMS {
            command().debug_assert();
        }
    }

    #[test]
    fn every_program_has_a_page_with_its_sections_and_completions() {
        for (name, _) in PROGRAMS {
            let page = man_page(name, command(name).unwrap(), "9.9.9").unwrap();
            let th = format!(".TH {name} {} ", section(name));
            assert!(page.contains(&th), "{name}: {page}");
            for want in [
                "SH NAME",
                "SH SYNOPSIS",
                "SH OPTIONS",
                "SH \"EXIT STATUS\"",
                "SH FILES",
            ] {
                assert!(page.contains(want), "{name} lacks {want}");
            }
            assert_eq!(page.matches(".ds Aq").count(), 2, "{name}: one preamble");
            if section(name) == "8" {
                assert!(page.contains("SH UNITS"), "{name} names no unit");
            }
            let files = files_for(name, "9.9.9").unwrap();
            assert_eq!(files.len(), 4);
            for (path, bytes) in &files {
                assert!(!bytes.is_empty(), "{path}");
                if !path.ends_with(".gz") {
                    assert!(
                        String::from_utf8_lossy(bytes).contains(name),
                        "{path} does not complete {name}"
                    );
                }
            }
        }
    }

    #[test]
    fn subcommands_get_their_own_subsection_with_options() {
        let page = man_page("hcloud-image", command("hcloud-image").unwrap(), "1").unwrap();
        assert!(page.contains(".SS dist"), "{page}");
        assert!(page.contains("no\\-build"), "{page}");
        assert!(!page.contains(".SS help"), "{page}");
    }

    #[test]
    fn an_unknown_binary_is_an_error_naming_where_to_add_it() {
        let e = command("hcloud-new").unwrap_err();
        assert!(format!("{e}").contains("PROGRAMS"), "{e}");
    }

    #[test]
    fn pages_are_gzipped_reproducibly_at_best_compression() {
        let a = gzip(b"x").unwrap();
        assert_eq!(a, gzip(b"x").unwrap());
        // XFL 2: maximum compression (lintian checks it); MTIME 0.
        assert_eq!(a[8], 2);
        assert_eq!(&a[4..8], &[0, 0, 0, 0]);
    }
}
