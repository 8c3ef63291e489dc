//! A streaming tar writer producing GNU-format entries the way microsandbox
//! v0.6.3 does (SPEC-NOTES §8), plus GNU old sparse entries for uppers.
//!
//! The writer only frames data; callers stream each entry's bytes through
//! [`TarWriter::write_data`] and the writer checks that exactly the declared
//! number of bytes arrived before the next header.
use super::sparse_entry::{self, SparseMap};
use super::tar_format::{
    encode_header, fits_in_header, long_name_blocks, padding_after, seal, EntryType, HeaderSpec,
    BLOCK,
};
use std::io::{self, Write};

/// Header fields taken from the source file's metadata.
#[derive(Clone, Copy, Debug)]
pub struct FileMeta {
    /// Full `st_mode` (microsandbox writes the file-type bits too: 0100644).
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
}

impl FileMeta {
    pub fn of(meta: &std::fs::Metadata) -> FileMeta {
        use std::os::unix::fs::MetadataExt;
        FileMeta {
            mode: meta.mode(),
            uid: u64::from(meta.uid()),
            gid: u64::from(meta.gid()),
            mtime: u64::try_from(meta.mtime()).unwrap_or(0),
        }
    }
}

pub struct TarWriter<W: Write> {
    out: W,
    /// Data bytes the current entry still expects.
    remaining: u64,
    /// Padding owed once the current entry's data is complete.
    padding: usize,
}

impl<W: Write> TarWriter<W> {
    pub fn new(out: W) -> Self {
        TarWriter {
            out,
            remaining: 0,
            padding: 0,
        }
    }

    /// Start a plain regular entry of `size` bytes.
    pub fn begin_regular(&mut self, name: &[u8], meta: &FileMeta, size: u64) -> io::Result<()> {
        let header = self.header(name, EntryType::Regular, meta, size)?;
        self.out.write_all(&header)?;
        self.expect(size);
        Ok(())
    }

    /// Start a GNU sparse entry: its data is the bytes of each run of `map`,
    /// in order, with nothing between them.
    pub fn begin_sparse(
        &mut self,
        name: &[u8],
        meta: &FileMeta,
        map: &SparseMap,
    ) -> io::Result<()> {
        let stored = map.stored_bytes();
        let mut header = self.header(name, EntryType::GnuSparse, meta, stored)?;
        let extensions = sparse_entry::encode(map, &mut header);
        seal(&mut header);
        self.out.write_all(&header)?;
        for block in &extensions {
            self.out.write_all(block)?;
        }
        self.expect(stored);
        Ok(())
    }

    /// A whole small entry at once (manifests, OCI metadata).
    pub fn append(&mut self, name: &[u8], meta: &FileMeta, data: &[u8]) -> io::Result<()> {
        self.begin_regular(name, meta, data.len() as u64)?;
        self.write_data(data)
    }

    /// microsandbox v0.6.14's `archive.json` member: `Header::new_gnu()` with
    /// only name, mode `0644`, size and mtime 0 set, so typeflag, uid, gid
    /// and device fields stay NUL bytes (SPEC-NOTES §9).
    pub fn append_bare(&mut self, name: &[u8], data: &[u8]) -> io::Result<()> {
        self.check_complete()?;
        if !fits_in_header(name) {
            return Err(io::Error::other("bare entry name longer than 100 bytes"));
        }
        let mut header = tar::Header::new_gnu();
        header.as_old_mut().name[..name.len()].copy_from_slice(name);
        header.set_mode(0o644);
        header.set_size(data.len() as u64);
        header.set_mtime(0);
        header.set_cksum();
        self.out.write_all(header.as_bytes())?;
        self.expect(data.len() as u64);
        self.write_data(data)
    }

    /// Stream data of the current entry. Writing more than declared is an error.
    pub fn write_data(&mut self, data: &[u8]) -> io::Result<()> {
        if data.len() as u64 > self.remaining {
            return Err(io::Error::other(format!(
                "tar entry data exceeds its declared size by {} bytes",
                data.len() as u64 - self.remaining
            )));
        }
        self.out.write_all(data)?;
        self.remaining -= data.len() as u64;
        if self.remaining == 0 && self.padding > 0 {
            let zeros = [0u8; BLOCK];
            self.out.write_all(&zeros[..self.padding])?;
            self.padding = 0;
        }
        Ok(())
    }

    /// Push what was written so far through the output (for zstd: end the
    /// current block).
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// End the archive (two zero blocks, like microsandbox; no record padding).
    pub fn finish(mut self) -> io::Result<W> {
        self.check_complete()?;
        self.out.write_all(&[0u8; 2 * BLOCK])?;
        self.out.flush()?;
        Ok(self.out)
    }

    fn expect(&mut self, size: u64) {
        self.remaining = size;
        self.padding = padding_after(size);
    }

    fn check_complete(&self) -> io::Result<()> {
        if self.remaining > 0 {
            return Err(io::Error::other(format!(
                "tar entry is {} bytes short of its declared size",
                self.remaining
            )));
        }
        Ok(())
    }

    /// Write a long-name entry if needed and return the (unsealed for sparse,
    /// sealed otherwise) header block.
    fn header(
        &mut self,
        name: &[u8],
        kind: EntryType,
        meta: &FileMeta,
        size: u64,
    ) -> io::Result<[u8; BLOCK]> {
        self.check_complete()?;
        if !fits_in_header(name) {
            self.out.write_all(&long_name_blocks(name))?;
        }
        let mut header = encode_header(&HeaderSpec {
            name,
            kind,
            mode: meta.mode,
            uid: meta.uid,
            gid: meta.gid,
            mtime: meta.mtime,
            size,
        });
        if kind != EntryType::GnuSparse {
            seal(&mut header);
        }
        Ok(header)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::sparse_entry::SparseRun;
    use crate::archive::tar_reader::TarReader;

    const META: FileMeta = FileMeta {
        mode: 0o100644,
        uid: 0,
        gid: 0,
        mtime: 1777636800,
    };

    #[test]
    fn writer_output_reads_back_including_sparse_map_and_long_names() {
        let mut w = TarWriter::new(Vec::new());
        w.append(b"d/manifest.json", &META, b"{}").unwrap();
        let runs: Vec<SparseRun> = (0..10)
            .map(|i| SparseRun {
                offset: i * 65536,
                len: 4096,
            })
            .collect();
        let map = SparseMap::for_data(1 << 20, runs);
        w.begin_sparse(b"d/upper.ext4", &META, &map).unwrap();
        for _ in 0..10 {
            w.write_data(&[0xab; 4096]).unwrap();
        }
        let long = "d/".to_string() + &"x".repeat(120);
        w.append(long.as_bytes(), &META, b"z").unwrap();
        let tar = w.finish().unwrap();

        let mut r = TarReader::new(&tar[..]);
        let e = r.next_entry().unwrap().unwrap();
        assert_eq!(r.read_data_to_vec(100).unwrap(), b"{}");
        assert_eq!(e.kind, EntryType::Regular);
        let e = r.next_entry().unwrap().unwrap();
        assert_eq!(e.kind, EntryType::GnuSparse);
        assert_eq!(e.sparse.as_ref().unwrap(), &map);
        assert_eq!(e.logical_size(), 1 << 20);
        assert_eq!(r.read_data_to_vec(1 << 20).unwrap(), vec![0xab; 40960]);
        let e = r.next_entry().unwrap().unwrap();
        assert_eq!(e.display_name(), long);
        assert!(r.next_entry().unwrap().is_none());
    }

    #[test]
    fn declared_sizes_are_enforced() {
        let mut w = TarWriter::new(Vec::new());
        w.begin_regular(b"a/b", &META, 3).unwrap();
        assert!(w.write_data(b"four").is_err());
        w.write_data(b"tw").unwrap();
        assert!(w.finish().is_err(), "one byte short");
    }

    #[test]
    fn plain_entries_match_microsandbox_bytes() {
        // The real v0.6.3 export of single.tar: our header for the same
        // fields must decode identically and the framing must line up.
        // Stored as .tar.zst only (tests/vectors/README.md); same bytes.
        let real = zstd::decode_all(
            std::fs::File::open(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/vectors/msb-0.6.3/archives/single.tar.zst"
            ))
            .unwrap(),
        )
        .unwrap();
        let manifest = &real[512..512 + 490];
        let mut w = TarWriter::new(Vec::new());
        w.append(b"sha256-a8f09605e98d1105/manifest.json", &META, manifest)
            .unwrap();
        let ours = w.finish().unwrap();
        // Same header except the checksum field's formatting; same data and padding.
        assert_eq!(&ours[..148], &real[..148]);
        assert_eq!(&ours[156..1024], &real[156..1024]);
    }

    /// GNU tar must restore our 'S' entries byte-identical and still sparse,
    /// including a file that ends in a hole (the terminal zero-length run).
    #[test]
    fn gnu_tar_restores_our_sparse_entries() {
        let dir = tempfile::tempdir().unwrap();
        let size: u64 = 64 << 20;
        let runs = [
            SparseRun {
                offset: 0,
                len: 4096,
            },
            SparseRun {
                offset: 8 << 20,
                len: 65536,
            },
            SparseRun {
                offset: 40 << 20,
                len: 4096,
            },
        ];
        let mut w = TarWriter::new(Vec::new());
        w.begin_sparse(b"d/upper.ext4", &META, &SparseMap::for_data(size, runs))
            .unwrap();
        let mut expected = vec![0u8; size as usize];
        for (i, r) in runs.iter().enumerate() {
            let data: Vec<u8> = (0..r.len).map(|j| (j as u8) ^ (i as u8 + 1)).collect();
            expected[r.offset as usize..(r.offset + r.len) as usize].copy_from_slice(&data);
            w.write_data(&data).unwrap();
        }
        let tar = w.finish().unwrap();
        std::fs::write(dir.path().join("a.tar"), &tar).unwrap();
        let status = std::process::Command::new("tar")
            .args(["-xf", "a.tar"])
            .current_dir(dir.path())
            .status()
            .expect("GNU tar must be installed for this test");
        assert!(status.success());
        let out = dir.path().join("d/upper.ext4");
        let got = std::fs::read(&out).unwrap();
        assert_eq!(got.len() as u64, size);
        assert!(got == expected, "restored bytes differ");
        use std::os::unix::fs::MetadataExt;
        let allocated = std::fs::metadata(&out).unwrap().blocks() * 512;
        assert!(
            allocated < 1 << 20,
            "restored file is not sparse: {allocated} bytes allocated"
        );
    }
}
