//! GNU old-format sparse entries (typeflag `'S'`): the map of data runs kept
//! in the header (4 slots) and in extension blocks (21 slots each), and the
//! checks that make a map from an untrusted archive safe to replay.
//!
//! Why this format: GNU tar 1.34 (`tar -xf`) restores it as a sparse file, it
//! needs no PAX support from the reader, and its map streams ahead of the
//! data, so export can write it from SEEK_DATA/SEEK_HOLE without buffering.
//!
//! The bytes are tar-rs's `GnuHeader` and `GnuExtSparseHeader` fields and
//! setters; the framing (splitting a map over extension blocks, reading it
//! back under a run limit) is ours: tar-rs reads sparse maps only inside its
//! own `Archive`, with no limit on their size, and writes them only for a
//! whole `File` whose extents it finds itself.
use super::tar_format::{self, parse_numeric, BLOCK};
use tar::{GnuExtSparseHeader, GnuSparseHeader, Header};

/// Map slots in a GNU header and in one extension block.
const HEADER_SLOTS: usize = 4;
const EXTENSION_SLOTS: usize = 21;

/// Most runs a map may have: about 48k extension blocks. A real upper with
/// more extents than this is pathological; a hostile one is refused.
pub const MAX_RUNS: usize = 1 << 20;
/// Largest logical size we accept for any file in an archive.
pub const MAX_REAL_SIZE: u64 = 16 << 40;

/// One run of data at `offset` of `len` bytes; everything else is a hole.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SparseRun {
    pub offset: u64,
    pub len: u64,
}

/// The whole map of a sparse entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SparseMap {
    /// Logical size of the file, holes included.
    pub real_size: u64,
    pub runs: Vec<SparseRun>,
}

impl SparseMap {
    /// The map we write for a file of `real_size` with these data runs.
    /// A final zero-length run at `real_size` is always added: GNU tar
    /// extends the file to that offset when it meets one, which is how a
    /// file that ends in a hole gets its full length back.
    pub fn for_data(real_size: u64, data: impl IntoIterator<Item = SparseRun>) -> SparseMap {
        let mut runs: Vec<SparseRun> = data.into_iter().filter(|r| r.len > 0).collect();
        runs.push(SparseRun {
            offset: real_size,
            len: 0,
        });
        SparseMap { real_size, runs }
    }

    /// Bytes of data stored in the archive for this map.
    pub fn stored_bytes(&self) -> u64 {
        self.runs.iter().map(|r| r.len).sum()
    }

    /// Check a map read from an archive against the entry's stored size.
    /// Runs must be in order, must not overlap, must lie inside the file, and
    /// must add up to exactly the stored data.
    pub fn validate(&self, stored_size: u64) -> Result<(), String> {
        if self.real_size > MAX_REAL_SIZE {
            return Err(format!(
                "sparse file size {} is beyond the {} byte limit",
                self.real_size, MAX_REAL_SIZE
            ));
        }
        if self.runs.len() > MAX_RUNS {
            return Err(format!("sparse map has more than {MAX_RUNS} runs"));
        }
        let mut next_free: u64 = 0;
        let mut total: u64 = 0;
        for (i, run) in self.runs.iter().enumerate() {
            let end = run.offset.checked_add(run.len).ok_or_else(|| {
                format!(
                    "sparse run {i} overflows (offset {}, length {})",
                    run.offset, run.len
                )
            })?;
            if end > self.real_size {
                return Err(format!(
                    "sparse run {i} (offset {}, length {}) points past the end of the {} byte file",
                    run.offset, run.len, self.real_size
                ));
            }
            if run.offset < next_free {
                return Err(format!(
                    "sparse run {i} at offset {} overlaps or precedes the previous run ending at {next_free}",
                    run.offset
                ));
            }
            next_free = end;
            total += run.len; // cannot overflow: runs are disjoint inside real_size
        }
        if total != stored_size {
            return Err(format!(
                "sparse map describes {total} data bytes but the entry stores {stored_size}"
            ));
        }
        Ok(())
    }
}

/// Write the map into a GNU header made by `encode_header` (slots,
/// extended flag, real size) and return the extension blocks that must
/// follow the header. A header without the GNU magic gets no map.
pub fn encode(map: &SparseMap, header: &mut [u8; BLOCK]) -> Vec<[u8; BLOCK]> {
    let (inline, rest) = map.runs.split_at(map.runs.len().min(HEADER_SLOTS));
    debug_assert!(Header::from_byte_slice(header).as_gnu().is_some());
    tar_format::edit(header, |h| {
        if let Some(gnu) = h.as_gnu_mut() {
            gnu.set_real_size(map.real_size);
            put_slots(&mut gnu.sparse, inline);
            gnu.set_is_extended(!rest.is_empty());
        }
    });
    let chunks: Vec<&[SparseRun]> = rest.chunks(EXTENSION_SLOTS).collect();
    let count = chunks.len();
    chunks
        .into_iter()
        .enumerate()
        .map(|(n, chunk)| {
            let mut block = GnuExtSparseHeader::new();
            put_slots(block.sparse_mut(), chunk);
            block.set_is_extended(n + 1 < count);
            *block.as_bytes()
        })
        .collect()
}

fn put_slots(slots: &mut [GnuSparseHeader], runs: &[SparseRun]) {
    for (slot, run) in slots.iter_mut().zip(runs) {
        slot.set_offset(run.offset);
        slot.set_length(run.len);
    }
}

/// The real size and inline runs of a GNU sparse header, and whether
/// extension blocks follow.
pub fn decode_header(header: &[u8; BLOCK]) -> Result<(u64, Vec<SparseRun>, bool), String> {
    let gnu = Header::from_byte_slice(header)
        .as_gnu()
        .ok_or("sparse entry header is not a GNU header")?;
    let real_size = parse_numeric(&gnu.realsize).ok_or("sparse real size is not a number")?;
    let runs = decode_slots(&gnu.sparse)?;
    Ok((real_size, runs, gnu.isextended[0] != 0))
}

/// The runs of one extension block, and whether another block follows.
pub fn decode_extension(block: &[u8; BLOCK]) -> Result<(Vec<SparseRun>, bool), String> {
    let mut ext = GnuExtSparseHeader::new();
    ext.as_mut_bytes().copy_from_slice(block);
    let runs = decode_slots(ext.sparse())?;
    Ok((runs, ext.isextended[0] != 0))
}

fn decode_slots(slots: &[GnuSparseHeader]) -> Result<Vec<SparseRun>, String> {
    let mut runs = Vec::new();
    for (i, slot) in slots.iter().enumerate() {
        // GNU tar ends the list at the first slot whose field is empty.
        if slot.offset[0] == 0 {
            break;
        }
        let offset = parse_numeric(&slot.offset)
            .ok_or_else(|| format!("sparse map slot {i}: offset is not a number"))?;
        let len = parse_numeric(&slot.numbytes)
            .ok_or_else(|| format!("sparse map slot {i}: length is not a number"))?;
        runs.push(SparseRun { offset, len });
    }
    Ok(runs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(offset: u64, len: u64) -> SparseRun {
        SparseRun { offset, len }
    }

    #[test]
    fn map_with_many_runs_round_trips_through_extension_blocks() {
        let data: Vec<SparseRun> = (0..30).map(|i| run(i * 8192, 4096)).collect();
        let map = SparseMap::for_data(1 << 20, data);
        assert_eq!(map.runs.len(), 31, "30 data runs and the terminal run");
        let mut header = tar_format::encode_header(&tar_format::HeaderSpec {
            name: b"a/upper.ext4",
            kind: tar_format::EntryType::GnuSparse,
            mode: 0o100644,
            uid: 0,
            gid: 0,
            mtime: 0,
            size: map.stored_bytes(),
        });
        let ext = encode(&map, &mut header);
        assert_eq!(
            ext.len(),
            2,
            "27 runs after the 4 inline ones need 2 blocks"
        );
        let (real, mut runs, mut more) = decode_header(&header).unwrap();
        assert_eq!(real, 1 << 20);
        for block in &ext {
            assert!(more);
            let (r, m) = decode_extension(block).unwrap();
            runs.extend(r);
            more = m;
        }
        assert!(!more);
        assert_eq!(runs, map.runs);
        assert!(map.validate(30 * 4096).is_ok());
    }

    #[test]
    fn validation_refuses_bad_maps() {
        let past_end = SparseMap {
            real_size: 8192,
            runs: vec![run(4096, 8192)],
        };
        assert!(past_end
            .validate(8192)
            .unwrap_err()
            .contains("past the end"));
        let overlap = SparseMap {
            real_size: 1 << 20,
            runs: vec![run(0, 8192), run(4096, 4096)],
        };
        assert!(overlap.validate(12288).unwrap_err().contains("overlaps"));
        let unordered = SparseMap {
            real_size: 1 << 20,
            runs: vec![run(8192, 10), run(0, 10)],
        };
        assert!(unordered.validate(20).unwrap_err().contains("overlaps"));
        let wrong_total = SparseMap {
            real_size: 1 << 20,
            runs: vec![run(0, 10)],
        };
        assert!(wrong_total.validate(11).unwrap_err().contains("stores 11"));
        let overflow = SparseMap {
            real_size: u64::MAX,
            runs: vec![run(u64::MAX, 1)],
        };
        assert!(overflow.validate(1).is_err());
        let huge = SparseMap {
            real_size: MAX_REAL_SIZE + 1,
            runs: vec![],
        };
        assert!(huge.validate(0).unwrap_err().contains("limit"));
    }

    #[test]
    fn all_hole_file_is_one_terminal_run() {
        let map = SparseMap::for_data(1 << 30, []);
        assert_eq!(map.runs, vec![run(1 << 30, 0)]);
        assert_eq!(map.stored_bytes(), 0);
        assert!(map.validate(0).is_ok());
    }
}
