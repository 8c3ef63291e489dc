//! A file's extent map from the filesystem (`ioctl(FS_IOC_FIEMAP)`), for
//! counting bytes whose extents are shared with other files
//! (`FIEMAP_EXTENT_SHARED`: reflink copies on XFS and btrfs, or snapshots of
//! a btrfs subvolume). ext4 never shares extents, so there it is always 0.
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// `_IOWR('f', 11, struct fiemap)`.
const FS_IOC_FIEMAP: libc::c_ulong = 0xC020_660B;
pub const FIEMAP_EXTENT_LAST: u32 = 0x1;
pub const FIEMAP_EXTENT_UNWRITTEN: u32 = 0x800;
pub const FIEMAP_EXTENT_SHARED: u32 = 0x2000;
/// Extents asked for per ioctl call.
const BATCH: usize = 256;

/// `struct fiemap_extent` (linux/fiemap.h).
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct RawExtent {
    fe_logical: u64,
    fe_physical: u64,
    fe_length: u64,
    fe_reserved64: [u64; 2],
    fe_flags: u32,
    fe_reserved: [u32; 3],
}

/// `struct fiemap` followed by room for [`BATCH`] extents.
#[repr(C)]
struct RawMap {
    fm_start: u64,
    fm_length: u64,
    fm_flags: u32,
    fm_mapped_extents: u32,
    fm_extent_count: u32,
    fm_reserved: u32,
    fm_extents: [RawExtent; BATCH],
}

/// One extent of a file, clipped to the file's size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MappedExtent {
    /// Offset in the file.
    pub logical: u64,
    /// Offset on the device (0 when the filesystem does not say).
    pub physical: u64,
    pub length: u64,
    /// `FIEMAP_EXTENT_*` flags.
    pub flags: u32,
}

impl MappedExtent {
    pub fn is_shared(&self) -> bool {
        self.flags & FIEMAP_EXTENT_SHARED != 0
    }
    /// Allocated but never written (reads as zeros; `SEEK_DATA` may call it a hole).
    pub fn is_unwritten(&self) -> bool {
        self.flags & FIEMAP_EXTENT_UNWRITTEN != 0
    }
}

/// The extents of `file` in file order, or `None` when its filesystem has no
/// FIEMAP (tmpfs, some network filesystems).
pub fn mapped_extents(file: &File) -> io::Result<Option<Vec<MappedExtent>>> {
    let size = file.metadata()?.len();
    let mut out = Vec::new();
    let mut start = 0u64;
    // Boxed: the batch is 14 KiB.
    let mut map = Box::new(RawMap {
        fm_start: 0,
        fm_length: 0,
        fm_flags: 0,
        fm_mapped_extents: 0,
        fm_extent_count: 0,
        fm_reserved: 0,
        fm_extents: [RawExtent::default(); BATCH],
    });
    while start < size {
        map.fm_start = start;
        map.fm_length = u64::MAX - start;
        // No FIEMAP_FLAG_SYNC: it would force writeback of a running
        // sandbox's dirty upper just for a report. Data not yet written back
        // shows as delalloc extents, which are never shared, so the shared
        // count does not need them to be real.
        map.fm_flags = 0;
        map.fm_mapped_extents = 0;
        map.fm_extent_count = BATCH as u32;
        // SAFETY: `map` is a valid, writable `struct fiemap` with room for
        // `fm_extent_count` extents, as the ioctl requires.
        let rc = unsafe {
            libc::ioctl(
                file.as_raw_fd(),
                FS_IOC_FIEMAP as _,
                &mut *map as *mut RawMap,
            )
        };
        if rc < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                // All the ways a filesystem or kernel says "no FIEMAP here"
                // (ENOSYS and EINVAL from some FUSE and network filesystems).
                Some(libc::EOPNOTSUPP | libc::ENOTTY | libc::ENOSYS | libc::EINVAL) => Ok(None),
                Some(libc::EINTR) => continue,
                _ => Err(e),
            };
        }
        let n = (map.fm_mapped_extents as usize).min(BATCH);
        if n == 0 {
            break;
        }
        let mut last = false;
        let batch_start = start;
        for raw in &map.fm_extents[..n] {
            last |= raw.fe_flags & FIEMAP_EXTENT_LAST != 0;
            let end = raw.fe_logical.saturating_add(raw.fe_length).min(size);
            if end > raw.fe_logical {
                out.push(MappedExtent {
                    logical: raw.fe_logical,
                    physical: raw.fe_physical,
                    length: end - raw.fe_logical,
                    flags: raw.fe_flags,
                });
            }
            start = start.max(raw.fe_logical.saturating_add(raw.fe_length));
        }
        // A filesystem that neither flags the last extent nor moves past
        // the ones it returned would loop here forever: stop instead.
        if last || start <= batch_start {
            break;
        }
    }
    Ok(Some(out))
}

/// Bytes of `file` in extents the filesystem marks shared; 0 where FIEMAP
/// is not available. These are logical bytes (extent lengths in the file):
/// on btrfs a compressed extent occupies less on disk than its length, so
/// a file's shared bytes can exceed its allocated bytes there.
pub fn shared_bytes(file: &File) -> io::Result<u64> {
    Ok(mapped_extents(file)?
        .unwrap_or_default()
        .iter()
        .filter(|e| e.is_shared())
        .map(|e| e.length)
        .sum())
}
