//! A streaming tar reader for untrusted archives.
//!
//! It reads exactly what each header declares and never more, so the bytes
//! pulled from a (possibly compressed) stream are bounded by the headers plus
//! the declared sizes: data past the end-of-archive marker is never touched.
//!
//! The archive must end with its marker, two zero blocks. A stream that stops
//! without it is refused as truncated: cut at an entry boundary, a chain
//! archive is otherwise a well-formed tar of its first snapshots, and the
//! import would install an ancestor as the head (microsandbox accepts such
//! a tar, vector `hostile/a17`; this is a deliberate divergence).
//! GNU long names, PAX `path`/`size` records and GNU old sparse maps are
//! decoded; everything else about an entry is left to `entry_check`.
use super::sparse_entry::{self, SparseMap, SparseRun, MAX_RUNS};
use super::tar_format::{decode_header, is_zero_block, padding_after, EntryType, BLOCK};
use crate::error::{Error, Result};
use std::io::{self, Read};

/// Longest GNU long name or link name we read.
const MAX_LONG_NAME: u64 = 64 * 1024;
/// Largest PAX header we read.
const MAX_PAX_HEADER: u64 = 1024 * 1024;

/// One entry's header, decoded. Its data is read with [`TarReader::read_data`].
#[derive(Clone, Debug)]
pub struct Entry {
    /// Raw path bytes (long name / PAX path applied); not validated.
    pub name: Vec<u8>,
    pub kind: EntryType,
    pub mode: u32,
    pub mtime: u64,
    /// Bytes of data stored after the header.
    pub size: u64,
    /// The map of a GNU sparse entry (already checked against `size`).
    pub sparse: Option<SparseMap>,
    /// The extended header that came before this entry, if any: "GNU long
    /// name", "GNU long link name", "PAX header" or "PAX global header".
    pub extended: Option<&'static str>,
}

impl Entry {
    /// The name for messages (lossy for non-UTF-8 names).
    pub fn display_name(&self) -> String {
        String::from_utf8_lossy(&self.name).into_owned()
    }

    /// Size of the file this entry restores, holes included.
    pub fn logical_size(&self) -> u64 {
        self.sparse.as_ref().map_or(self.size, |m| m.real_size)
    }
}

/// Marks an error of the archive *file* (as opposed to a corrupt stream), so
/// a disk read error is reported as `io`, not as `invalid_archive`.
#[derive(Debug)]
pub struct SourceIoError(pub io::Error);

impl std::fmt::Display for SourceIoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}
impl std::error::Error for SourceIoError {}

/// Wraps the archive file so its read errors can be told apart.
pub struct SourceReader<R>(pub R);

impl<R: Read> Read for SourceReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0
            .read(buf)
            .map_err(|e| io::Error::new(e.kind(), SourceIoError(e)))
    }
}

pub struct TarReader<R> {
    inner: R,
    /// Bytes of the tar stream consumed so far (headers, data, padding).
    consumed: u64,
    /// Data bytes of the current entry not yet read.
    remaining: u64,
    /// Padding bytes after the current entry's data.
    padding: usize,
    current: String,
    finished: bool,
}

impl<R: Read> TarReader<R> {
    pub fn new(inner: R) -> Self {
        TarReader {
            inner,
            consumed: 0,
            remaining: 0,
            padding: 0,
            current: String::new(),
            finished: false,
        }
    }

    /// Bytes of the (decompressed) tar stream read so far.
    pub fn consumed(&self) -> u64 {
        self.consumed
    }

    /// The next entry, skipping whatever is left of the current one.
    /// `None` at the end-of-archive marker; a stream that ends without the
    /// marker is a truncated archive.
    pub fn next_entry(&mut self) -> Result<Option<Entry>> {
        if self.finished {
            return Ok(None);
        }
        self.skip_rest_of_entry()?;
        let mut long_name: Option<Vec<u8>> = None;
        let mut pax_path: Option<Vec<u8>> = None;
        let mut pax_size: Option<u64> = None;
        let mut extended_kind: Option<&'static str> = None;
        loop {
            let at = self.consumed;
            let extended = long_name.is_some() || pax_path.is_some() || pax_size.is_some();
            let block = match self.read_header_block()? {
                Some(b) => b,
                None if extended => {
                    return Err(truncated("the archive ends after an extended header"))
                }
                None => return Err(no_end_marker(at, "at an entry boundary")),
            };
            if is_zero_block(&block) {
                if extended {
                    return Err(Error::InvalidArchive(format!(
                        "the end-of-archive marker at byte {at} follows an extended header \
                         that names no entry"
                    )));
                }
                self.end_marker(at)?;
                self.finished = true;
                // An error after the marker is not in the last entry.
                self.current.clear();
                return Ok(None);
            }
            let fields = decode_header(&block).map_err(|e| {
                if at == 0 {
                    Error::InvalidArchive(format!(
                        "not a tar or tar.zst archive ({e} in the first header)"
                    ))
                } else {
                    Error::InvalidArchive(format!("corrupt tar header at byte {at}: {e}"))
                }
            })?;
            let mut name = fields.name.clone();
            let shown = String::from_utf8_lossy(&name).into_owned();
            match fields.kind {
                EntryType::GnuLongName | EntryType::GnuLongLink => {
                    extended_kind = Some(if fields.kind == EntryType::GnuLongName {
                        "GNU long name"
                    } else {
                        "GNU long link name"
                    });
                    let data = self.read_meta(fields.size, MAX_LONG_NAME, &shown)?;
                    if fields.kind == EntryType::GnuLongName {
                        let end = data.iter().position(|&b| b == 0).unwrap_or(data.len());
                        long_name = Some(data[..end].to_vec());
                    }
                    continue;
                }
                EntryType::PaxLocal => {
                    extended_kind = Some("PAX header");
                    let data = self.read_meta(fields.size, MAX_PAX_HEADER, &shown)?;
                    for (key, value) in parse_pax(&data)? {
                        match key.as_str() {
                            "path" => pax_path = Some(value),
                            "size" => pax_size = Some(parse_pax_number(&value, "size")?),
                            k if k.starts_with("GNU.sparse.") => {
                                return Err(Error::InvalidArchive(format!(
                                    "PAX sparse entries are not supported (record {k} before byte {at})"
                                )))
                            }
                            _ => {}
                        }
                    }
                    continue;
                }
                EntryType::PaxGlobal => {
                    extended_kind = Some("PAX global header");
                    self.read_meta(fields.size, MAX_PAX_HEADER, &shown)?;
                    continue;
                }
                _ => {}
            }
            if let Some(n) = pax_path.take().or(long_name.take()) {
                name = n;
            }
            let size = pax_size.take().unwrap_or(fields.size);
            let display = String::from_utf8_lossy(&name).into_owned();
            let sparse = if fields.kind == EntryType::GnuSparse {
                if !fields.is_gnu {
                    return Err(Error::InvalidArchive(format!(
                        "{display}: sparse entry without a GNU header"
                    )));
                }
                let map = self.read_sparse_map(&block, &display)?;
                map.validate(size)
                    .map_err(|e| Error::InvalidArchive(format!("{display}: {e}")))?;
                Some(map)
            } else {
                None
            };
            self.remaining = size;
            self.padding = padding_after(size);
            self.current = display;
            return Ok(Some(Entry {
                name,
                kind: fields.kind,
                mode: fields.mode,
                mtime: fields.mtime,
                size,
                sparse,
                extended: extended_kind,
            }));
        }
    }

    /// The rest of the end-of-archive marker that starts with the zero block
    /// at `at`: a second zero block. A lone zero block followed by a header
    /// would hide the entries after it, so it is refused too.
    fn end_marker(&mut self, at: u64) -> Result<()> {
        match self.read_header_block()? {
            None => Err(no_end_marker(
                self.consumed,
                "one zero block into the marker",
            )),
            Some(block) if is_zero_block(&block) => Ok(()),
            Some(_) => Err(Error::InvalidArchive(format!(
                "a lone zero block at byte {at} inside the entry stream \
                 (the end-of-archive marker is two)"
            ))),
        }
    }

    /// After the end-of-archive marker: read and drop what is left of the
    /// stream, at most `limit` bytes, so that a decompressor reaches the end
    /// of its frame and reports a frame cut short or a bad checksum. Past
    /// `limit` it stops without error: what follows is never decompressed.
    pub fn check_stream_end(&mut self, limit: u64) -> Result<()> {
        let mut scratch = [0u8; 8 * 1024];
        let mut left = limit;
        while left > 0 {
            let want = scratch
                .len()
                .min(usize::try_from(left).unwrap_or(usize::MAX));
            match self.inner.read(&mut scratch[..want]) {
                Ok(0) => return Ok(()),
                Ok(n) => {
                    left -= n as u64;
                    self.consumed += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.stream_error(e)),
            }
        }
        Ok(())
    }

    /// Read up to `buf.len()` bytes of the current entry's data; 0 once all
    /// of it has been read. A stream that ends early is a truncated archive.
    pub fn read_data(&mut self, buf: &mut [u8]) -> Result<usize> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n = loop {
            match self.inner.read(&mut buf[..want]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.stream_error(e)),
            }
        };
        if n == 0 {
            return Err(truncated(&format!(
                "entry {} ends {} bytes early",
                self.current, self.remaining
            )));
        }
        self.remaining -= n as u64;
        self.consumed += n as u64;
        Ok(n)
    }

    /// Read the whole current entry into `out`, refusing more than `limit`.
    pub fn read_data_to_vec(&mut self, limit: u64) -> Result<Vec<u8>> {
        if self.remaining > limit {
            return Err(Error::InvalidArchive(format!(
                "{}: {} bytes is more than the {limit} byte limit for this entry",
                self.current, self.remaining
            )));
        }
        let mut out = vec![0u8; self.remaining as usize];
        let mut filled = 0;
        while filled < out.len() {
            filled += self.read_data(&mut out[filled..])?;
        }
        Ok(out)
    }

    fn skip_rest_of_entry(&mut self) -> Result<()> {
        let mut scratch = vec![0u8; 64 * 1024];
        while self.remaining > 0 {
            self.read_data(&mut scratch)?;
        }
        if self.padding > 0 {
            let pad = self.padding;
            self.read_exact_counted(&mut scratch[..pad], "padding")?;
            self.padding = 0;
        }
        Ok(())
    }

    fn read_meta(&mut self, size: u64, limit: u64, shown: &str) -> Result<Vec<u8>> {
        if size > limit {
            return Err(Error::InvalidArchive(format!(
                "extended header {shown} declares {size} bytes, more than the {limit} byte limit"
            )));
        }
        let mut data = vec![0u8; size as usize];
        self.read_exact_counted(&mut data, shown)?;
        let pad = padding_after(size);
        let mut scratch = [0u8; BLOCK];
        self.read_exact_counted(&mut scratch[..pad], shown)?;
        Ok(data)
    }

    fn read_sparse_map(&mut self, header: &[u8; BLOCK], display: &str) -> Result<SparseMap> {
        let bad = |e: String| Error::InvalidArchive(format!("{display}: {e}"));
        let (real_size, mut runs, mut more) = sparse_entry::decode_header(header).map_err(bad)?;
        while more {
            if runs.len() > MAX_RUNS {
                return Err(bad(format!("sparse map has more than {MAX_RUNS} runs")));
            }
            let block = self
                .read_header_block()?
                .ok_or_else(|| truncated(&format!("sparse map of {display} is cut off")))?;
            let (r, m): (Vec<SparseRun>, bool) =
                sparse_entry::decode_extension(&block).map_err(bad)?;
            runs.extend(r);
            more = m;
        }
        Ok(SparseMap { real_size, runs })
    }

    /// One block, or `None` at a clean end of stream before it.
    fn read_header_block(&mut self) -> Result<Option<[u8; BLOCK]>> {
        let mut block = [0u8; BLOCK];
        let mut filled = 0;
        while filled < BLOCK {
            match self.inner.read(&mut block[filled..]) {
                Ok(0) if filled == 0 => return Ok(None),
                Ok(0) => {
                    return Err(truncated(&format!(
                        "the stream ends inside a header at byte {}",
                        self.consumed
                    )))
                }
                Ok(n) => {
                    filled += n;
                    self.consumed += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.stream_error(e)),
            }
        }
        Ok(Some(block))
    }

    fn read_exact_counted(&mut self, buf: &mut [u8], what: &str) -> Result<()> {
        let mut filled = 0;
        while filled < buf.len() {
            match self.inner.read(&mut buf[filled..]) {
                Ok(0) => return Err(truncated(&format!("the stream ends inside {what}"))),
                Ok(n) => {
                    filled += n;
                    self.consumed += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.stream_error(e)),
            }
        }
        Ok(())
    }

    /// A read error: the archive file's own failure is `io`; anything the
    /// decompressor reports is a corrupt or truncated archive.
    fn stream_error(&self, e: io::Error) -> Error {
        if e.get_ref().is_some_and(|inner| inner.is::<SourceIoError>()) {
            return Error::Io {
                context: format!("reading the archive at byte {}", self.consumed),
                source: e,
            };
        }
        let entry = if self.current.is_empty() {
            String::new()
        } else {
            format!(" (in entry {})", self.current)
        };
        Error::InvalidArchive(format!(
            "corrupt or truncated compressed stream after {} bytes{entry}: {e}",
            self.consumed
        ))
    }
}

fn truncated(what: &str) -> Error {
    Error::InvalidArchive(format!("truncated archive: {what}"))
}

/// The tar stream stopped cleanly after `stopped_at` bytes, `how` saying
/// where, before its end-of-archive marker was complete.
fn no_end_marker(stopped_at: u64, how: &str) -> Error {
    Error::InvalidArchive(format!(
        "the archive ends without its end-of-archive marker: truncated? \
         (the tar stream stops after {stopped_at} bytes, {how})"
    ))
}

/// PAX records: `"<len> <key>=<value>\n"`, `len` counting the whole record.
fn parse_pax(data: &[u8]) -> Result<Vec<(String, Vec<u8>)>> {
    let bad = |why: &str| Error::InvalidArchive(format!("malformed PAX header: {why}"));
    let mut records = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        if rest.iter().all(|&b| b == 0) {
            break;
        }
        let space = rest
            .iter()
            .position(|&b| b == b' ')
            .ok_or_else(|| bad("no length"))?;
        let len: usize = std::str::from_utf8(&rest[..space])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("length is not a number"))?;
        if len <= space + 1 || len > rest.len() || rest[len - 1] != b'\n' {
            return Err(bad("record length does not match"));
        }
        let record = &rest[space + 1..len - 1];
        let eq = record
            .iter()
            .position(|&b| b == b'=')
            .ok_or_else(|| bad("record without '='"))?;
        let key = String::from_utf8(record[..eq].to_vec()).map_err(|_| bad("key is not UTF-8"))?;
        records.push((key, record[eq + 1..].to_vec()));
        rest = &rest[len..];
    }
    Ok(records)
}

fn parse_pax_number(value: &[u8], key: &str) -> Result<u64> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Error::InvalidArchive(format!("PAX {key} is not a number")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::tar_format::{encode_header, long_name_blocks, seal, HeaderSpec};

    fn entry_bytes(name: &[u8], kind: EntryType, data: &[u8]) -> Vec<u8> {
        let mut header = encode_header(&HeaderSpec {
            name,
            kind,
            mode: 0o100644,
            uid: 0,
            gid: 0,
            mtime: 0,
            size: data.len() as u64,
        });
        seal(&mut header);
        let mut out = header.to_vec();
        out.extend_from_slice(data);
        out.resize(out.len() + padding_after(data.len() as u64), 0);
        out
    }

    fn names(tar: &[u8]) -> Result<Vec<(String, Vec<u8>)>> {
        let mut reader = TarReader::new(tar);
        let mut out = Vec::new();
        while let Some(e) = reader.next_entry()? {
            let data = reader.read_data_to_vec(1 << 20)?;
            out.push((e.display_name(), data));
        }
        Ok(out)
    }

    #[test]
    fn reads_entries_and_stops_at_zero_block_without_reading_beyond() {
        let mut tar = entry_bytes(b"d/a", EntryType::Regular, b"hello");
        tar.extend(entry_bytes(b"d/b", EntryType::Regular, b""));
        tar.extend([0u8; 1024]);
        tar.extend(b"garbage after the end that must never be parsed");
        let got = names(&tar).unwrap();
        assert_eq!(
            got,
            vec![("d/a".into(), b"hello".to_vec()), ("d/b".into(), vec![])]
        );
    }

    #[test]
    fn long_name_and_pax_path_are_applied() {
        let long = vec![b'n'; 180];
        let mut tar = long_name_blocks(&long);
        tar.extend(entry_bytes(&long[..100], EntryType::Regular, b"x"));
        let pax = b"18 path=pax/named\n";
        tar.extend(entry_bytes(b"PaxHeader", EntryType::PaxLocal, pax));
        tar.extend(entry_bytes(b"short", EntryType::Regular, b"y"));
        tar.extend([0u8; 1024]);
        let got = names(&tar).unwrap();
        assert_eq!(got[0].0, String::from_utf8(long).unwrap());
        assert_eq!(got[1].0, "pax/named");
    }

    #[test]
    fn truncated_data_and_headers_are_refused() {
        let tar = entry_bytes(b"d/a", EntryType::Regular, &[7u8; 2000]);
        let cut = &tar[..1000];
        let err = names(cut).unwrap_err();
        assert!(err.to_string().contains("truncated archive"), "{err}");
        assert!(err.to_string().contains("d/a"), "{err}");
        let err = names(&tar[..300]).unwrap_err();
        assert!(err.to_string().contains("inside a header"), "{err}");
    }

    #[test]
    fn a_stream_that_stops_before_its_end_marker_is_truncated() {
        let mut tar = entry_bytes(b"d/a", EntryType::Regular, b"hello");
        let first_end = tar.len();
        tar.extend(entry_bytes(b"d/b", EntryType::Regular, b"world"));
        let marker = tar.len();
        tar.extend([0u8; 1024]);
        assert_eq!(names(&tar).unwrap().len(), 2);
        // Cut at each entry boundary, and one zero block into the marker.
        for cut in [0, first_end, marker, marker + 512] {
            let err = names(&tar[..cut]).unwrap_err();
            let msg = err.to_string();
            assert!(matches!(err, Error::InvalidArchive(_)), "{cut}: {msg}");
            assert!(
                msg.contains("ends without its end-of-archive marker: truncated?"),
                "{cut}: {msg}"
            );
        }
        // Cut inside the second zero block: a partial header.
        let err = names(&tar[..marker + 600]).unwrap_err();
        assert!(err.to_string().contains("truncated archive"), "{err}");
    }

    #[test]
    fn a_lone_zero_block_does_not_hide_the_entries_after_it() {
        let mut tar = entry_bytes(b"d/a", EntryType::Regular, b"hello");
        tar.extend([0u8; 512]);
        tar.extend(entry_bytes(b"d/b", EntryType::Regular, b"world"));
        tar.extend([0u8; 1024]);
        let err = names(&tar).unwrap_err();
        assert!(
            err.to_string().contains("lone zero block at byte 1024"),
            "{err}"
        );
    }

    #[test]
    fn an_extended_header_before_the_end_marker_is_refused() {
        let mut tar = long_name_blocks(&[b'n'; 180]);
        tar.extend([0u8; 1024]);
        let err = names(&tar).unwrap_err();
        assert!(err.to_string().contains("extended header"), "{err}");
        let err = names(&long_name_blocks(&[b'n'; 180])).unwrap_err();
        assert!(err.to_string().contains("extended header"), "{err}");
    }

    #[test]
    fn non_archive_is_named_as_such() {
        let junk = vec![b'#'; 600];
        let err = names(&junk).unwrap_err();
        assert!(err.to_string().contains("not a tar"), "{err}");
    }

    #[test]
    fn oversized_extended_headers_are_refused_before_reading() {
        let mut header = encode_header(&HeaderSpec {
            name: b"././@LongLink",
            kind: EntryType::GnuLongName,
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: 0,
            size: 1 << 40,
        });
        seal(&mut header);
        let err = names(&header).unwrap_err();
        assert!(err.to_string().contains("limit"), "{err}");
    }

    #[test]
    fn pax_sparse_is_refused() {
        let pax = b"30 GNU.sparse.major=1\n";
        let mut fixed = pax.to_vec();
        fixed[0] = b'2';
        fixed[1] = b'2';
        let tar = entry_bytes(b"PaxHeader", EntryType::PaxLocal, &fixed);
        let err = names(&tar).unwrap_err();
        assert!(err.to_string().contains("PAX sparse"), "{err}");
    }
}
