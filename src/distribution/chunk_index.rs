//! The chunk index blob (layers[0] of a snapshot's image manifest): for an
//! upper of logical size S, every non-zero 64 KiB chunk with its leaf hash
//! and where its zstd frame is. Chunks absent from it are all zeros.
//!
//! From the index alone a reader recomputes the `microsnap-merkle-sha256-v1`
//! root (zero subtrees are constants), so the index is checked against the
//! manifest's annotation and the recorded integrity before any pack is read.
//!
//! Encoding (docs/registry.md, "Chunk index"): zstd (level 3, one frame) of
//!
//! ```text
//! magic "MSNAPIDX" | version u32 = 1 | chunk_size u32 = 65536
//! upper_size u64 | pack_count u32 | chunk_count u64
//! pack_count  x { sha256 [32] | size u64 }                          40 bytes
//! chunk_count x { number u64 | leaf [32] | pack u32 | offset u64 | length u32 }  56 bytes
//! ```
//!
//! all integers little-endian; packs in the order the manifest lists them
//! (layers[1..]); chunks sorted by strictly increasing number.
use crate::error::{Error, Result};
use crate::integrity::{self, LeafHash, MERKLE_LEAF_SIZE};
use std::io::Read;

const MAGIC: &[u8; 8] = b"MSNAPIDX";
const VERSION: u32 = 1;
const HEADER_LEN: usize = 8 + 4 + 4 + 8 + 4 + 8;
const PACK_RECORD: usize = 32 + 8;
const CHUNK_RECORD: usize = 8 + 32 + 4 + 8 + 4;
/// zstd level of the index blob: fixed, so the same index is the same blob.
const LEVEL: i32 = 3;

/// Largest decoded index accepted: 4.8 million chunks (300 GiB of data).
pub const MAX_DECODED: u64 = 256 * 1024 * 1024;
/// Largest compressed frame of one 64 KiB chunk: zstd's bound for 64 KiB
/// is under 65,800 bytes; anything bigger is not a frame we wrote.
pub const MAX_FRAME: u32 = 72 * 1024;

/// A pack: a blob of concatenated zstd frames.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackRef {
    /// Raw SHA-256 of the pack blob.
    pub sha256: [u8; 32],
    pub size: u64,
}

impl PackRef {
    /// The blob digest, `sha256:<hex>`.
    pub fn digest(&self) -> String {
        format!("sha256:{}", hex(&self.sha256))
    }
}

/// Where one non-zero chunk's frame is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkEntry {
    /// Chunk number: its offset in the upper is `number * 64 KiB`.
    pub number: u64,
    /// `microsnap-merkle-sha256-v1` leaf hash of the chunk's bytes.
    pub leaf: LeafHash,
    /// Index into `ChunkIndex::packs`.
    pub pack: u32,
    /// Offset of the frame in the pack.
    pub offset: u64,
    /// Compressed length of the frame.
    pub length: u32,
}

/// A decoded, checked chunk index.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ChunkIndex {
    pub upper_size: u64,
    pub packs: Vec<PackRef>,
    pub chunks: Vec<ChunkEntry>,
}

impl ChunkIndex {
    /// Chunks an upper of `size` bytes has (at least one, as the merkle tree).
    pub fn chunk_count_for(size: u64) -> u64 {
        size.div_ceil(MERKLE_LEAF_SIZE).max(1)
    }

    /// Bytes of the upper chunk `number` covers (the last may be short).
    pub fn chunk_len(&self, number: u64) -> u64 {
        let start = number * MERKLE_LEAF_SIZE;
        MERKLE_LEAF_SIZE.min(self.upper_size.saturating_sub(start))
    }

    /// The `microsnap-merkle-sha256-v1` digest of the upper this index
    /// describes, from the leaf hashes alone.
    pub fn merkle_root(&self) -> Result<String> {
        let zero = integrity::merkle_sha256_zero_leaf();
        let leaves: Vec<(u64, LeafHash)> = self
            .chunks
            .iter()
            .filter(|c| c.leaf != zero)
            .map(|c| (c.number, c.leaf))
            .collect();
        integrity::merkle_sha256_digest_of_leaves(self.upper_size, &leaves)
    }

    /// The uncompressed encoding.
    fn encode_raw(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            HEADER_LEN + self.packs.len() * PACK_RECORD + self.chunks.len() * CHUNK_RECORD,
        );
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&(MERKLE_LEAF_SIZE as u32).to_le_bytes());
        out.extend_from_slice(&self.upper_size.to_le_bytes());
        out.extend_from_slice(&(self.packs.len() as u32).to_le_bytes());
        out.extend_from_slice(&(self.chunks.len() as u64).to_le_bytes());
        for pack in &self.packs {
            out.extend_from_slice(&pack.sha256);
            out.extend_from_slice(&pack.size.to_le_bytes());
        }
        for chunk in &self.chunks {
            out.extend_from_slice(&chunk.number.to_le_bytes());
            out.extend_from_slice(&chunk.leaf);
            out.extend_from_slice(&chunk.pack.to_le_bytes());
            out.extend_from_slice(&chunk.offset.to_le_bytes());
            out.extend_from_slice(&chunk.length.to_le_bytes());
        }
        out
    }

    /// The blob: the zstd frame of the encoding. Deterministic.
    pub fn encode(&self) -> Result<Vec<u8>> {
        zstd::bulk::compress(&self.encode_raw(), LEVEL)
            .map_err(|e| Error::Internal(format!("compress the chunk index: {e}")))
    }

    /// Decode and check a blob: every malformation is `InvalidArchive`.
    pub fn decode(blob: &[u8]) -> Result<ChunkIndex> {
        let bad = |why: String| Error::InvalidArchive(format!("chunk index: {why}"));
        let mut raw = Vec::new();
        zstd::stream::read::Decoder::new(blob)
            .map_err(|e| bad(format!("not zstd: {e}")))?
            .take(MAX_DECODED + 1)
            .read_to_end(&mut raw)
            .map_err(|e| bad(format!("not a zstd frame: {e}")))?;
        if raw.len() as u64 > MAX_DECODED {
            return Err(bad(format!("decodes to more than {MAX_DECODED} bytes")));
        }
        let mut r = Fields { bytes: &raw, at: 0 };
        if r.take(8).map_err(bad)? != MAGIC {
            return Err(bad("wrong magic (not a microsnap chunk index)".into()));
        }
        let version = r.u32().map_err(bad)?;
        if version != VERSION {
            return Err(Error::Unsupported(format!(
                "chunk index version {version} (this microsnap reads version {VERSION})"
            )));
        }
        let chunk_size = r.u32().map_err(bad)?;
        if u64::from(chunk_size) != MERKLE_LEAF_SIZE {
            return Err(bad(format!(
                "chunk size {chunk_size}, not {MERKLE_LEAF_SIZE}"
            )));
        }
        let upper_size = r.u64().map_err(bad)?;
        let pack_count = r.u32().map_err(bad)?;
        let chunk_count = r.u64().map_err(bad)?;
        let expected_len = (HEADER_LEN as u64)
            .checked_add(u64::from(pack_count) * PACK_RECORD as u64)
            .and_then(|n| n.checked_add(chunk_count.checked_mul(CHUNK_RECORD as u64)?));
        if expected_len != Some(raw.len() as u64) {
            return Err(bad(format!(
                "{} bytes do not hold the {pack_count} packs and {chunk_count} chunks the header declares",
                raw.len()
            )));
        }
        let mut packs = Vec::with_capacity(pack_count as usize);
        for _ in 0..pack_count {
            let sha256: [u8; 32] = r.take(32).map_err(bad)?.try_into().expect("32 bytes");
            let size = r.u64().map_err(bad)?;
            packs.push(PackRef { sha256, size });
        }
        let max_number = Self::chunk_count_for(upper_size);
        let mut chunks = Vec::with_capacity(chunk_count as usize);
        for _ in 0..chunk_count {
            let number = r.u64().map_err(bad)?;
            let leaf: LeafHash = r.take(32).map_err(bad)?.try_into().expect("32 bytes");
            let pack = r.u32().map_err(bad)?;
            let offset = r.u64().map_err(bad)?;
            let length = r.u32().map_err(bad)?;
            if number >= max_number {
                return Err(bad(format!(
                    "chunk {number} is past the {max_number} chunks of a {upper_size}-byte upper"
                )));
            }
            if chunks
                .last()
                .is_some_and(|c: &ChunkEntry| c.number >= number)
            {
                return Err(bad(format!("chunk {number} is out of order or repeated")));
            }
            let Some(pack_ref) = packs.get(pack as usize) else {
                return Err(bad(format!(
                    "chunk {number} names pack {pack} of {pack_count}"
                )));
            };
            if length == 0 || length > MAX_FRAME {
                return Err(bad(format!("chunk {number} has a {length}-byte frame")));
            }
            if offset
                .checked_add(u64::from(length))
                .is_none_or(|end| end > pack_ref.size)
            {
                return Err(bad(format!(
                    "chunk {number}'s frame ends past its {}-byte pack",
                    pack_ref.size
                )));
            }
            chunks.push(ChunkEntry {
                number,
                leaf,
                pack,
                offset,
                length,
            });
        }
        Ok(ChunkIndex {
            upper_size,
            packs,
            chunks,
        })
    }
}

/// Reads fixed-size little-endian fields; running out is an error message.
struct Fields<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Fields<'a> {
    fn take(&mut self, n: usize) -> std::result::Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| "truncated".to_string())?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }
    fn u32(&mut self) -> std::result::Result<u32, String> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn u64(&mut self) -> std::result::Result<u64, String> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The raw 32 bytes of a `sha256:<64 lowercase hex>` digest.
pub(crate) fn sha256_bytes(digest: &str) -> Option<[u8; 32]> {
    let hex = digest.strip_prefix("sha256:")?;
    if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ChunkIndex {
        let leaf = |b: u8, n: usize| integrity::merkle_sha256_leaf(&vec![b; n]);
        ChunkIndex {
            upper_size: 5 * MERKLE_LEAF_SIZE + 10,
            packs: vec![
                PackRef {
                    sha256: [1; 32],
                    size: 1000,
                },
                PackRef {
                    sha256: [2; 32],
                    size: 50,
                },
            ],
            chunks: vec![
                ChunkEntry {
                    number: 0,
                    leaf: leaf(1, 100),
                    pack: 0,
                    offset: 0,
                    length: 500,
                },
                ChunkEntry {
                    number: 3,
                    leaf: leaf(2, 100),
                    pack: 0,
                    offset: 500,
                    length: 500,
                },
                ChunkEntry {
                    number: 5,
                    leaf: leaf(3, 10),
                    pack: 1,
                    offset: 0,
                    length: 50,
                },
            ],
        }
    }

    #[test]
    fn an_index_round_trips_through_its_blob() {
        let index = sample();
        let blob = index.encode().unwrap();
        assert_eq!(ChunkIndex::decode(&blob).unwrap(), index);
        assert_eq!(index.encode().unwrap(), blob, "encoding is deterministic");
    }

    #[test]
    fn the_root_equals_the_merkle_digest_of_the_file() {
        let index = sample();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("upper");
        let file = std::fs::File::create(&path).unwrap();
        file.set_len(index.upper_size).unwrap();
        use std::os::unix::fs::FileExt;
        for (number, byte, len) in [(0u64, 1u8, 100), (3, 2, 100), (5, 3, 10)] {
            file.write_at(&vec![byte; len], number * MERKLE_LEAF_SIZE)
                .unwrap();
        }
        assert_eq!(file.metadata().unwrap().len(), index.upper_size);
        let expected = integrity::compute(
            &path,
            integrity::Algorithm::MerkleSha256V1,
            &crate::progress::Monitor::none(),
        )
        .unwrap();
        assert_eq!(index.merkle_root().unwrap(), expected);
    }

    #[test]
    fn malformed_indexes_are_invalid_archives() {
        let good = sample();
        let mut cases: Vec<(&str, Vec<u8>)> = vec![
            ("not zstd", b"hello".to_vec()),
            ("empty frame", zstd::bulk::compress(b"", 3).unwrap()),
        ];
        let mut raw = good.encode_raw();
        raw.truncate(raw.len() - 1);
        cases.push(("truncated", zstd::bulk::compress(&raw, 3).unwrap()));
        let mutate = |f: &dyn Fn(&mut ChunkIndex)| {
            let mut index = good.clone();
            f(&mut index);
            index.encode().unwrap()
        };
        cases.push(("out of order", mutate(&|i| i.chunks.swap(0, 1))));
        cases.push(("past the end", mutate(&|i| i.chunks[2].number = 6)));
        cases.push(("bad pack", mutate(&|i| i.chunks[2].pack = 2)));
        cases.push(("frame past pack", mutate(&|i| i.chunks[1].offset = 600)));
        cases.push(("zero frame", mutate(&|i| i.chunks[0].length = 0)));
        let mut wrong_magic = good.encode_raw();
        wrong_magic[0] = b'X';
        cases.push(("magic", zstd::bulk::compress(&wrong_magic, 3).unwrap()));
        for (what, blob) in cases {
            let err = ChunkIndex::decode(&blob).unwrap_err();
            assert_eq!(
                err.code(),
                crate::error::ErrorCode::InvalidArchive,
                "{what}: {err}"
            );
        }
    }

    #[test]
    fn sha256_bytes_parses_only_the_digest_form() {
        let d = format!("sha256:{}", "0f".repeat(32));
        assert_eq!(sha256_bytes(&d), Some([0x0f; 32]));
        assert_eq!(sha256_bytes("sha256:0F"), None);
        assert_eq!(sha256_bytes(&d.to_uppercase()), None);
    }
}
