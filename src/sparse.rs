//! Hole-aware file I/O (Linux).
//!
//! Sandbox upper disks are large raw images that are mostly holes: a 4 GiB
//! disk typically holds a few hundred MiB of data. Everything that touches
//! them has to cost O(allocated data), not O(logical size), and must not turn
//! holes into allocated zeros:
//!
//! - [`data_extents`] asks the filesystem where the data is
//!   (`SEEK_DATA`/`SEEK_HOLE`), so callers read only allocated ranges.
//! - [`copy_sparse`] tries a reflink (`FICLONE`) first: on btrfs/xfs the copy
//!   is then O(metadata) and shares blocks with the source. Otherwise it
//!   copies only the data extents with `copy_file_range` (in-kernel, no
//!   userspace buffer), and falls back to `pread`/`pwrite` where that is not
//!   available. Holes are never read and stay holes in the copy.
//! - [`SparseWriter`] restores files from archives: all-zero blocks are not
//!   written, so they stay holes whatever the archive entry looked like.
use crate::error::{Error, IoContext, Result};
use crate::progress::Monitor;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::os::unix::io::AsRawFd;

use rustix::fs::SeekFrom;
use rustix::io::Errno;
use std::path::{Path, PathBuf};

/// The block size holes are tracked at. 4 KiB is the allocation unit of
/// ext4/xfs/btrfs on x86_64, so a skipped 4 KiB-aligned zero block really
/// becomes a hole.
pub const BLOCK_SIZE: u64 = 4096;

/// Largest single copy step. Bounded so cancellation and progress stay
/// prompt even for one huge extent.
const COPY_CHUNK: u64 = 64 * 1024 * 1024;

/// Buffer for the `pread`/`pwrite` fallback, allocated once per copy.
const FALLBACK_BUFFER: usize = 1024 * 1024;

/// A range of a file that the filesystem reports as holding data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    pub offset: u64,
    pub len: u64,
}

impl Extent {
    /// One past the last byte of the extent.
    pub fn end(&self) -> u64 {
        self.offset + self.len
    }
}

/// The data extents of `file`, sorted, non-overlapping, adjacent ones merged,
/// clipped to the file's size. Holes are everything else.
///
/// Uses `lseek(SEEK_DATA/SEEK_HOLE)`, so it moves the file's position; read
/// with positional I/O (`read_at`). If the filesystem does not support those
/// seeks, the whole file is reported as one extent (correct, just not sparse).
pub fn data_extents(file: &File) -> io::Result<Vec<Extent>> {
    let size = file.metadata()?.len();
    let whole_file = || {
        if size == 0 {
            Vec::new()
        } else {
            vec![Extent {
                offset: 0,
                len: size,
            }]
        }
    };
    let mut extents: Vec<Extent> = Vec::new();
    let mut pos = 0u64;
    while pos < size {
        let start = match rustix::fs::seek(file, SeekFrom::Data(pos)) {
            Ok(start) => start,
            Err(Errno::NXIO) => break,
            Err(e) if seek_unsupported(e) => return Ok(whole_file()),
            Err(e) => return Err(e.into()),
        };
        if start >= size {
            break;
        }
        let end = match rustix::fs::seek(file, SeekFrom::Hole(start)) {
            Ok(end) => end,
            // The file shrank between the two seeks; there is no hole after
            // `start` any more, so the data runs to the size we measured.
            Err(Errno::NXIO) => size,
            Err(e) if seek_unsupported(e) => return Ok(whole_file()),
            Err(e) => return Err(e.into()),
        };
        // A concurrent writer could make SEEK_HOLE answer at or before
        // `start`; never loop forever on it.
        let end = if end <= start { size } else { end.min(size) };
        match extents.last_mut() {
            Some(last) if last.end() == start => last.len = end - last.offset,
            _ => extents.push(Extent {
                offset: start,
                len: end - start,
            }),
        }
        pos = end;
    }
    Ok(extents)
}

fn seek_unsupported(e: Errno) -> bool {
    matches!(e, Errno::INVAL | Errno::OPNOTSUPP)
}

/// Bytes the file occupies on disk (`st_blocks * 512`).
pub fn allocated_bytes(path: &Path) -> io::Result<u64> {
    Ok(fs::metadata(path)?.blocks() * 512)
}

/// True if every byte of `buf` is zero. Written so LLVM vectorizes it: the
/// OR-fold over a fixed 64-byte chunk has no early exit inside the chunk.
pub(crate) fn is_all_zero(buf: &[u8]) -> bool {
    let mut chunks = buf.chunks_exact(64);
    let full_chunks_zero = chunks
        .by_ref()
        .all(|chunk| chunk.iter().fold(0u8, |acc, &b| acc | b) == 0);
    full_chunks_zero && chunks.remainder().iter().all(|&b| b == 0)
}

/// Copy `src` to the new file `dst` (which must not exist), keeping holes.
/// Tries a reflink, then `copy_file_range` over each data extent, then
/// `pread`/`pwrite`. Sets the length, fsyncs `dst`, and returns the number of
/// data bytes copied (the sum of the source's data extents). Progress phase
/// `"copy"`; on error or cancellation the partial `dst` is removed.
pub fn copy_sparse(src: &Path, dst: &Path, monitor: &Monitor) -> Result<u64> {
    let src_file = File::open(src).ctx("open", src)?;
    copy_sparse_from(&src_file, src, dst, monitor)
}

/// [`copy_sparse`] from an open source file (`src` names it in errors).
pub fn copy_sparse_from(src_file: &File, src: &Path, dst: &Path, monitor: &Monitor) -> Result<u64> {
    let src_meta = src_file.metadata().ctx("stat", src)?;
    if !src_meta.is_file() {
        return Err(Error::InvalidArgument(format!(
            "copy source is not a regular file: {}",
            src.display()
        )));
    }
    monitor.check()?;
    let dst_file = CopyDestination::create(dst)?;
    let copy = SparseCopy {
        src: src_file,
        src_path: src,
        dst: dst_file.file(),
        dst_path: dst,
        monitor,
    };
    let copied = copy.run(CopyMethod::Reflink)?;
    dst_file.finish(src_meta.len())?;
    Ok(copied)
}

/// Copy the data of `src` into `dst` the way [`copy_sparse`] does (reflink,
/// else `copy_file_range` over data extents, else read/write; writeback
/// started as it goes) but leave the length and the fsync to
/// [`CopyDestination::finish`], so a caller can do more work, such as
/// hashing, while the disk writes. Returns the data bytes copied.
pub(crate) fn copy_data(
    src: &File,
    src_path: &Path,
    dst: &CopyDestination,
    monitor: &Monitor,
) -> Result<u64> {
    let copy = SparseCopy {
        src,
        src_path,
        dst: dst.file(),
        dst_path: dst.path(),
        monitor,
    };
    copy.run(CopyMethod::Reflink)
}

/// The new file a copy writes: created exclusively, and removed again when
/// dropped before [`CopyDestination::finish`], so a failed or cancelled copy
/// leaves nothing behind.
pub struct CopyDestination {
    file: File,
    path: PathBuf,
    finished: bool,
}

impl CopyDestination {
    /// Create `path`; `Error::AlreadyExists` if something is there.
    pub fn create(path: &Path) -> Result<CopyDestination> {
        let file = match OpenOptions::new().write(true).create_new(true).open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(Error::AlreadyExists(path.display().to_string()))
            }
            Err(e) => return Err(Error::io("create", path, e)),
        };
        Ok(CopyDestination {
            file,
            path: path.to_path_buf(),
            finished: false,
        })
    }

    pub fn file(&self) -> &File {
        &self.file
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Make the destination share all of `src`'s blocks (`FICLONE`): an
    /// O(metadata) copy on btrfs/xfs. `Ok(false)` where the filesystem cannot.
    pub fn reflink_from(&self, src: &File) -> Result<bool> {
        match ficlone(src, &self.file) {
            Ok(()) => Ok(true),
            Err(e) if reflink_unsupported(&e) => Ok(false),
            Err(e) => Err(Error::io("reflink to", &self.path, e)),
        }
    }

    /// Set the final length (a trailing hole stays a hole), fsync, and keep
    /// the file.
    pub fn finish(mut self, len: u64) -> Result<()> {
        self.file.set_len(len).ctx("set length of", &self.path)?;
        self.file.sync_all().ctx("fsync", &self.path)?;
        self.finished = true;
        Ok(())
    }
}

impl Drop for CopyDestination {
    fn drop(&mut self) {
        if !self.finished {
            // Best effort: the copy already failed, and its error is the one
            // worth reporting.
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Start writing back `len` dirty bytes at `offset` of `file` now, without
/// waiting. A copy calls this after each step so the disk writes while the
/// next step copies; the final fsync then only waits for the tail, instead
/// of the whole file's writeback starting at fsync time. Only a hint: an
/// error (an old kernel, a filesystem without it) changes nothing about
/// correctness, since fsync follows.
pub(crate) fn start_writeback(file: &File, offset: u64, len: u64) {
    let (Ok(offset), Ok(len)) = (
        libc::off64_t::try_from(offset),
        libc::off64_t::try_from(len),
    ) else {
        return;
    };
    // rustix has no sync_file_range, so this one stays raw libc.
    // SAFETY: sync_file_range only reads its integer arguments; the
    // descriptor is borrowed from a live File for the duration of the call.
    let _ = unsafe {
        libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE)
    };
}

/// How data gets from source to destination; each step falls back to the next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CopyMethod {
    Reflink,
    CopyFileRange,
    ReadWrite,
}

struct SparseCopy<'a, 'm> {
    src: &'a File,
    src_path: &'a Path,
    dst: &'a File,
    dst_path: &'a Path,
    monitor: &'a Monitor<'m>,
}

impl SparseCopy<'_, '_> {
    /// Copy everything, starting with `method`.
    fn run(&self, mut method: CopyMethod) -> Result<u64> {
        let extents = data_extents(self.src).ctx("find data extents of", self.src_path)?;
        let total: u64 = extents.iter().map(|e| e.len).sum();
        self.monitor.phase(crate::progress::Phase::Copy, total)?;
        if method == CopyMethod::Reflink {
            match ficlone(self.src, self.dst) {
                Ok(()) => {
                    self.monitor.advance(total)?;
                    return Ok(total);
                }
                Err(e) if reflink_unsupported(&e) => method = CopyMethod::CopyFileRange,
                Err(e) => return Err(Error::io("reflink to", self.dst_path, e)),
            }
        }
        let mut buffer = Vec::new();
        for extent in &extents {
            let mut offset = extent.offset;
            while offset < extent.end() {
                self.monitor.check()?;
                crate::fault::point("sparse.copy_chunk")?;
                let want = (extent.end() - offset).min(COPY_CHUNK);
                let done = match method {
                    CopyMethod::CopyFileRange => match self.copy_range(offset, want) {
                        Ok(n) => n,
                        Err(e) if copy_range_unsupported(&e) => {
                            method = CopyMethod::ReadWrite;
                            continue;
                        }
                        Err(e) => return Err(Error::io("copy_file_range to", self.dst_path, e)),
                    },
                    _ => self.read_write(offset, want, &mut buffer)?,
                };
                start_writeback(self.dst, offset, done);
                offset += done;
                self.monitor.advance(done)?;
            }
        }
        Ok(total)
    }

    /// Copy up to `len` bytes at `offset` with `copy_file_range`, looping on
    /// short copies. A zero return means the source shrank under us.
    fn copy_range(&self, offset: u64, len: u64) -> io::Result<u64> {
        let mut copied = 0;
        while copied < len {
            let n = copy_file_range(self.src, self.dst, offset + copied, len - copied)?;
            if n == 0 {
                return Err(source_shrank());
            }
            copied += n;
        }
        Ok(copied)
    }

    /// Copy `len` bytes at `offset` through `buffer` (allocated on first use).
    fn read_write(&self, offset: u64, len: u64, buffer: &mut Vec<u8>) -> Result<u64> {
        if buffer.is_empty() {
            buffer.resize(FALLBACK_BUFFER, 0);
        }
        let mut copied = 0;
        while copied < len {
            self.monitor.check()?;
            let step = (len - copied).min(buffer.len() as u64) as usize;
            let chunk = &mut buffer[..step];
            let at = offset + copied;
            self.src
                .read_exact_at(chunk, at)
                .ctx("read", self.src_path)?;
            self.dst
                .write_all_at(chunk, at)
                .ctx("write", self.dst_path)?;
            copied += step as u64;
        }
        Ok(copied)
    }
}

fn source_shrank() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "source ended before its data extents (changed during copy?)",
    )
}

fn reflink_unsupported(e: &io::Error) -> bool {
    matches!(
        Errno::from_io_error(e),
        Some(Errno::OPNOTSUPP | Errno::XDEV | Errno::INVAL | Errno::NOTTY | Errno::NOSYS)
    )
}

fn copy_range_unsupported(e: &io::Error) -> bool {
    matches!(
        Errno::from_io_error(e),
        Some(Errno::XDEV | Errno::NOSYS | Errno::OPNOTSUPP | Errno::INVAL)
    )
}

/// `ioctl(dst, FICLONE, src)`: make `dst` share all of `src`'s blocks.
fn ficlone(src: &File, dst: &File) -> io::Result<()> {
    Ok(rustix::fs::ioctl_ficlone(dst, src)?)
}

/// One `copy_file_range` call copying up to `len` bytes at the same `offset`
/// in both files; returns the bytes copied (0 at end of source).
fn copy_file_range(src: &File, dst: &File, offset: u64, len: u64) -> io::Result<u64> {
    // The kernel takes loff_t offsets; rustix passes ours as they are.
    if i64::try_from(offset).is_err() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "offset beyond loff_t",
        ));
    }
    let (mut off_in, mut off_out) = (offset, offset);
    let len = usize::try_from(len).unwrap_or(usize::MAX);
    let copied = rustix::fs::copy_file_range(src, Some(&mut off_in), dst, Some(&mut off_out), len)?;
    Ok(copied as u64)
}

/// Writes file content at given offsets but skips every all-zero block, so
/// those blocks stay holes. For restoring files from archives into a new (or
/// freshly truncated) file: a skipped range must already read as zeros, so
/// each byte should be written at most once.
///
/// Blocks are the file's 4 KiB-aligned blocks. A block only partly covered by
/// one `write_at` (unaligned head or tail) is treated the same way: its
/// covered bytes are written unless they are all zero.
pub struct SparseWriter {
    file: File,
    path: PathBuf,
    /// Bytes written since writeback was last started.
    unflushed: u64,
}

/// A [`SparseWriter`] starts writeback after this many bytes, so the disk
/// writes while the caller produces more and `finish`'s fsync waits for the
/// tail only (as copies do, see [`start_writeback`]).
const WRITER_WRITEBACK_STEP: u64 = 32 * 1024 * 1024;

impl SparseWriter {
    pub fn new(file: File) -> Self {
        SparseWriter::with_path(file, "<sparse output>")
    }

    /// Like [`SparseWriter::new`], naming `path` in error messages.
    pub fn with_path(file: File, path: impl Into<PathBuf>) -> Self {
        SparseWriter {
            file,
            path: path.into(),
            unflushed: 0,
        }
    }

    /// Write `data` at `offset`, skipping its all-zero blocks. Consecutive
    /// non-zero blocks go out in one write.
    pub fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<()> {
        let end = offset.checked_add(data.len() as u64).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "write of {} bytes at offset {offset} overflows the file size in {}",
                data.len(),
                self.path.display()
            ))
        })?;
        // The pending run of non-zero blocks, as offsets into `data`.
        let mut run: Option<(usize, usize)> = None;
        let mut pos = offset;
        while pos < end {
            let block_end = ((pos / BLOCK_SIZE) + 1).saturating_mul(BLOCK_SIZE).min(end);
            let from = (pos - offset) as usize;
            let to = (block_end - offset) as usize;
            if is_all_zero(&data[from..to]) {
                if let Some((start, stop)) = run.take() {
                    self.write_run(offset, data, start, stop)?;
                }
            } else {
                run = match run {
                    Some((start, _)) => Some((start, to)),
                    None => Some((from, to)),
                };
            }
            pos = block_end;
        }
        if let Some((start, stop)) = run {
            self.write_run(offset, data, start, stop)?;
        }
        Ok(())
    }

    fn write_run(&mut self, offset: u64, data: &[u8], start: usize, stop: usize) -> Result<()> {
        self.file
            .write_all_at(&data[start..stop], offset + start as u64)
            .ctx("write", &self.path)?;
        self.unflushed += (stop - start) as u64;
        if self.unflushed >= WRITER_WRITEBACK_STEP {
            // Length 0: from offset 0 to the end, whatever is dirty and not yet queued.
            start_writeback(&self.file, 0, 0);
            self.unflushed = 0;
        }
        Ok(())
    }

    /// Set the final length (trailing zeros become a hole), fsync, and hand
    /// the file back.
    pub fn finish(self, len: u64) -> Result<File> {
        self.file.set_len(len).ctx("set length of", &self.path)?;
        self.file.sync_all().ctx("fsync", &self.path)?;
        Ok(self.file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sparse_source(dir: &Path) -> PathBuf {
        let path = dir.join("src");
        let f = File::create(&path).unwrap();
        f.set_len(8 * 1024 * 1024).unwrap();
        f.write_all_at(&[7u8; 5000], 4096 * 3).unwrap();
        f.write_all_at(&[9u8; 3 * 1024 * 1024 + 17], 4 * 1024 * 1024)
            .unwrap();
        path
    }

    /// The pread/pwrite fallback cannot be forced through the public API on
    /// a filesystem that supports copy_file_range, so test it directly.
    #[test]
    fn read_write_fallback_copies_extents_only() {
        let dir = tempfile::tempdir().unwrap();
        let src = sparse_source(dir.path());
        let dst = dir.path().join("dst");
        let src_file = File::open(&src).unwrap();
        let dst_file = File::create(&dst).unwrap();
        let monitor = Monitor::none();
        let copy = SparseCopy {
            src: &src_file,
            src_path: &src,
            dst: &dst_file,
            dst_path: &dst,
            monitor: &monitor,
        };
        let copied = copy.run(CopyMethod::ReadWrite).unwrap();
        // What copy_sparse's CopyDestination::finish does after run().
        dst_file
            .set_len(src_file.metadata().unwrap().len())
            .unwrap();
        let expected: u64 = data_extents(&src_file).unwrap().iter().map(|e| e.len).sum();
        assert_eq!(copied, expected);
        assert_eq!(fs::read(&src).unwrap(), fs::read(&dst).unwrap());
        assert!(allocated_bytes(&dst).unwrap() <= allocated_bytes(&src).unwrap() + 64 * 1024);
    }

    #[test]
    fn zero_detection_handles_every_length_and_position() {
        for len in [0usize, 1, 63, 64, 65, 127, 128, 4095, 4096, 4097] {
            let buf = vec![0u8; len];
            assert!(is_all_zero(&buf), "len {len}");
            for i in [0, len / 2, len.saturating_sub(1)] {
                if i < len {
                    let mut b = buf.clone();
                    b[i] = 1;
                    assert!(!is_all_zero(&b), "len {len} nonzero at {i}");
                }
            }
        }
    }
}
