//! Upper image files: raw or qcow2 detection and the qcow2 header checks that
//! keep a snapshot from pointing its VM at a file on the host.
//!
//! qcow2 header layout (big-endian, qemu `docs/interop/qcow2.txt`): magic at 0,
//! version at 4, backing_file_offset (u64) at 8, backing_file_size (u32) at
//! 16, virtual size (u64) at 24; the fixed part is 72 bytes in version 2 and
//! 104 in version 3, which adds incompatible_features (u64) at 72.
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use crate::error::{Error, IoContext, Result};
use crate::manifest::DiskFormat;

/// The first four bytes of every qcow2 image: `QFI\xfb`.
pub const QCOW2_MAGIC: [u8; 4] = *b"QFI\xfb";
const QCOW2_V2_HEADER_LEN: usize = 72;
const QCOW2_V3_HEADER_LEN: usize = 104;
/// Version-3 incompatible feature bit 2: guest data lives in another file,
/// named in a header extension — a host file, just like a backing file.
const QCOW2_INCOMPAT_EXTERNAL_DATA_FILE: u64 = 1 << 2;
/// qemu refuses backing file names longer than this; we only read it for the
/// error message.
const QCOW2_MAX_BACKING_NAME: u32 = 1023;

/// Raw unless the file starts with the qcow2 magic. A file shorter than the
/// magic (an empty raw image, say) is raw.
pub fn detect_format(path: &Path) -> Result<DiskFormat> {
    let mut file = File::open(path).ctx("open upper", path)?;
    let head = read_prefix(&mut file, QCOW2_MAGIC.len()).ctx("read upper", path)?;
    Ok(format_of_prefix(&head))
}

/// Check that the upper at `path` really is what the manifest says, and that
/// a qcow2 upper is self-contained (no backing file, no external data file).
pub fn check_upper(path: &Path, expected: DiskFormat) -> Result<()> {
    let file = File::open(path).ctx("open upper", path)?;
    check_upper_file(&file, path, expected)
}

/// [`check_upper`] of an open upper (`path` names it in errors). Reads with
/// `pread`, so the file's offset is left alone.
pub fn check_upper_file(file: &File, path: &Path, expected: DiskFormat) -> Result<()> {
    let head = read_prefix_at(file, QCOW2_V3_HEADER_LEN).ctx("read upper", path)?;
    match (expected, format_of_prefix(&head)) {
        (DiskFormat::Raw, DiskFormat::Raw) => Ok(()),
        (DiskFormat::Raw, DiskFormat::Qcow2) => Err(Error::InvalidManifest(format!(
            "format is raw but upper {} starts with the qcow2 magic",
            path.display()
        ))),
        (DiskFormat::Qcow2, DiskFormat::Raw) => Err(Error::InvalidManifest(format!(
            "format is qcow2 but upper {} has no qcow2 magic",
            path.display()
        ))),
        (DiskFormat::Qcow2, DiskFormat::Qcow2) => {
            let header = Qcow2Header::parse(&head, path)?;
            if header.backing_file_offset != 0 {
                let name = backing_file_name(file, &header)
                    .map(|name| format!(" {name:?}"))
                    .unwrap_or_default();
                return Err(Error::Unsupported(format!(
                    "qcow2 upper {} has a backing file{name} (header offset {}); \
                     a backing file would make the snapshot read a host file",
                    path.display(),
                    header.backing_file_offset
                )));
            }
            if header.incompatible_features & QCOW2_INCOMPAT_EXTERNAL_DATA_FILE != 0 {
                return Err(Error::Unsupported(format!(
                    "qcow2 upper {} keeps its data in an external data file; \
                     that would make the snapshot read a host file",
                    path.display()
                )));
            }
            Ok(())
        }
    }
}

/// The guest-visible size of a qcow2 image (its header's `size` field).
pub fn qcow2_virtual_size(path: &Path) -> Result<u64> {
    let mut file = File::open(path).ctx("open upper", path)?;
    let head = read_prefix(&mut file, QCOW2_V3_HEADER_LEN).ctx("read upper", path)?;
    if format_of_prefix(&head) != DiskFormat::Qcow2 {
        return Err(Error::InvalidManifest(format!(
            "upper {} is not a qcow2 image (no qcow2 magic)",
            path.display()
        )));
    }
    Ok(Qcow2Header::parse(&head, path)?.virtual_size)
}

/// The header fields we act on.
struct Qcow2Header {
    backing_file_offset: u64,
    backing_file_size: u32,
    virtual_size: u64,
    incompatible_features: u64,
}

impl Qcow2Header {
    /// Parse from the first bytes of the file (at most the v3 fixed size).
    fn parse(head: &[u8], path: &Path) -> Result<Qcow2Header> {
        let truncated = |need: usize| {
            Error::InvalidManifest(format!(
                "qcow2 upper {} has a truncated header: {} bytes, need {need}",
                path.display(),
                head.len()
            ))
        };
        if head.len() < QCOW2_V2_HEADER_LEN {
            return Err(truncated(QCOW2_V2_HEADER_LEN));
        }
        let version = be_u32(head, 4);
        let incompatible_features = match version {
            2 => 0,
            3 if head.len() < QCOW2_V3_HEADER_LEN => return Err(truncated(QCOW2_V3_HEADER_LEN)),
            3 => be_u64(head, 72),
            // Version 1 (old qcow) shares the magic but not the layout.
            other => {
                return Err(Error::Unsupported(format!(
                    "qcow2 upper {} has header version {other} (only 2 and 3 are supported)",
                    path.display()
                )))
            }
        };
        Ok(Qcow2Header {
            backing_file_offset: be_u64(head, 8),
            backing_file_size: be_u32(head, 16),
            virtual_size: be_u64(head, 24),
            incompatible_features,
        })
    }
}

/// The backing file's name, for the error message only: `None` if it cannot
/// be read sensibly.
fn backing_file_name(file: &File, header: &Qcow2Header) -> Option<String> {
    if header.backing_file_size == 0 || header.backing_file_size > QCOW2_MAX_BACKING_NAME {
        return None;
    }
    let name = read_at_most(
        file,
        header.backing_file_offset,
        header.backing_file_size as usize,
    )
    .ok()?;
    Some(String::from_utf8_lossy(&name).into_owned())
}

fn format_of_prefix(head: &[u8]) -> DiskFormat {
    if head.starts_with(&QCOW2_MAGIC) {
        DiskFormat::Qcow2
    } else {
        DiskFormat::Raw
    }
}

/// Up to `len` bytes from the current position; fewer only at end of file.
fn read_prefix(file: &mut File, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(len);
    file.take(len as u64).read_to_end(&mut buf)?;
    Ok(buf)
}

/// The first `len` bytes (fewer only at end of file), by `pread`.
fn read_prefix_at(file: &File, len: usize) -> io::Result<Vec<u8>> {
    read_at_most(file, 0, len)
}

/// Up to `len` bytes at `offset`, by `pread`; fewer only at end of file.
fn read_at_most(file: &File, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; len];
    let mut got = 0;
    while got < len {
        match file.read_at(&mut buf[got..], offset + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(got);
    Ok(buf)
}

// Callers check the slice is long enough first; the fixed-size copies below
// cannot go out of bounds for the offsets used in this file.
fn be_u32(b: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&b[at..at + 4]);
    u32::from_be_bytes(word)
}

fn be_u64(b: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(word)
}
