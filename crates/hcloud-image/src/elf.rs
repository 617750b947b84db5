//! Just enough ELF reading to tell whether a staged binary is a static executable for the
//! architecture the image is built for: a dynamically linked agent (a `PT_INTERP` program
//! header) would not start on a distribution with another C library.

use anyhow::{Context, Result, bail};
use std::path::Path;

const PT_INTERP: u32 = 3;

/// The machine (`e_machine`) of an ELF file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Machine {
    X86_64,
    Aarch64,
    Other(u16),
}

impl Machine {
    fn from_raw(v: u16) -> Machine {
        match v {
            0x3e => Machine::X86_64,
            0xb7 => Machine::Aarch64,
            other => Machine::Other(other),
        }
    }
}

/// What [`inspect`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElfInfo {
    pub machine: Machine,
    /// The requested program interpreter (dynamic loader), `None` for a static executable.
    pub interpreter: Option<String>,
}

impl ElfInfo {
    pub fn is_static(&self) -> bool {
        self.interpreter.is_none()
    }
}

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(off..off + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(off..off + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(off..off + 8)?.try_into().ok()?))
}

/// Parse the header and program headers of a 64-bit little-endian ELF image.
pub fn parse(bytes: &[u8]) -> Result<ElfInfo> {
    if bytes.get(0..4) != Some(b"\x7fELF".as_slice()) {
        bail!("not an ELF file");
    }
    if bytes.get(4) != Some(&2) || bytes.get(5) != Some(&1) {
        bail!("not a 64-bit little-endian ELF file");
    }
    let short = || anyhow::anyhow!("truncated ELF header");
    let machine = Machine::from_raw(u16_at(bytes, 18).ok_or_else(short)?);
    let phoff = u64_at(bytes, 32).ok_or_else(short)? as usize;
    let phentsize = u16_at(bytes, 54).ok_or_else(short)? as usize;
    let phnum = u16_at(bytes, 56).ok_or_else(short)? as usize;
    let mut interpreter = None;
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        let p_type = u32_at(bytes, ph).context("truncated program header")?;
        if p_type == PT_INTERP {
            let off = u64_at(bytes, ph + 8).context("truncated program header")? as usize;
            let size = u64_at(bytes, ph + 32).context("truncated program header")? as usize;
            let raw = bytes
                .get(off..off + size)
                .context("PT_INTERP points outside the file")?;
            let s = String::from_utf8_lossy(raw)
                .trim_end_matches('\0')
                .to_string();
            interpreter = Some(s);
        }
    }
    Ok(ElfInfo {
        machine,
        interpreter,
    })
}

/// [`parse`] a file, with the path in the error.
pub fn inspect(path: &Path) -> Result<ElfInfo> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    parse(&bytes).with_context(|| format!("{}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_running_test_binary_is_a_dynamic_x86_64_or_aarch64_elf() {
        let me = std::env::current_exe().unwrap();
        let info = inspect(&me).unwrap();
        let expected = if cfg!(target_arch = "x86_64") {
            Machine::X86_64
        } else {
            Machine::Aarch64
        };
        assert_eq!(info.machine, expected);
        // Test binaries are built for the host's glibc target, so they name a loader.
        assert!(
            info.interpreter.as_deref().unwrap().contains("ld-linux"),
            "{info:?}"
        );
    }

    #[test]
    fn text_and_truncated_files_are_rejected_with_a_reason() {
        assert!(
            parse(b"#!/bin/sh\n")
                .unwrap_err()
                .to_string()
                .contains("not an ELF")
        );
        assert!(
            parse(b"\x7fELF\x02\x01\x01")
                .unwrap_err()
                .to_string()
                .contains("truncated")
        );
    }
}
