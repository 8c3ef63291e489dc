//! The `oci-archive:FILE` store: a tar of an OCI image layout, as skopeo
//! writes it (members `oci-layout`, `index.json`, `blobs/sha256/<hex>`;
//! `./`-prefixed names and directory entries are accepted too).
//!
//! - Read: the tar's headers are walked once and each member's offset and
//!   size noted; nothing is extracted, and every blob read (a range too) is
//!   a `pread` at its offset. Anything hostile is `invalid_archive`: a link,
//!   a device or any member that is not a regular file or a directory, an
//!   absolute name or one with `..`, a name that appears twice (refused
//!   rather than taking the last, so no two readers of the file can
//!   disagree on it), a member that runs past the end of the file, a tar
//!   without its end-of-archive block (cut at a member boundary).
//! - Write: the layout is assembled in a unique directory under the home's
//!   scratch by the `oci:` store, and `commit` writes the tar next to FILE
//!   (`FILE.tmp-<unique>`, regular members in a fixed order — `oci-layout`,
//!   `index.json`, blobs by digest — mode 0644, mtime 0, uid/gid 0), fsyncs
//!   it and renames it over FILE. A failed or cancelled push leaves FILE as
//!   it was. Pushing into an existing archive keeps it: its index entries
//!   and blobs are carried into the new file (blobs are copied straight
//!   from the old file at commit, not through the scratch), so pushing a
//!   child into an archive holding its parent adds to it. Two pushes into
//!   one FILE at once do not merge: the last to commit wins, each file
//!   whole.
use super::layout::{
    check_digest_of, check_layout_marker, check_max, check_range, digest_hex, manifest_descriptor,
    parse_index, read_exact_at, read_exact_into, sync_dir, tagged_manifest, unique_suffix,
    LayoutStore, MAX_INDEX_BYTES, MAX_MARKER_BYTES, OCI_LAYOUT_CONTENT, TEMP_MARKER,
};
use super::reference::check_tag;
use super::store::{Access, Store};
use crate::error::{Error, IoContext, Result};
use crate::progress::Monitor;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

const BLOCK: u64 = 512;

pub fn open(file: &Path, access: Access, scratch: &Path) -> Result<Box<dyn Store>> {
    match access {
        Access::Read => Ok(Box::new(ArchiveReader::open(file)?)),
        Access::Write => Ok(Box::new(ArchiveWriter::open(file, scratch)?)),
    }
}

fn place_of(file: &Path) -> String {
    format!("oci-archive:{}", file.display())
}

/// Where a member's data is in the tar.
#[derive(Clone, Copy, Debug)]
struct Member {
    offset: u64,
    size: u64,
}

/// An archive indexed for reading.
struct ArchiveReader {
    path: PathBuf,
    file: File,
    index_bytes: Vec<u8>,
    index: Value,
    /// Hex digest -> member.
    blobs: HashMap<String, Member>,
}

impl ArchiveReader {
    fn open(path: &Path) -> Result<ArchiveReader> {
        let place = place_of(path);
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::InvalidArgument(format!(
                    "{place}: the file does not exist"
                )))
            }
            Err(e) => return Err(Error::io("open", path, e)),
        };
        let meta = file.metadata().ctx("stat", path)?;
        if !meta.is_file() {
            return Err(Error::InvalidArgument(format!(
                "{place}: not a regular file"
            )));
        }
        let members = walk(&file, meta.len(), &place)?;
        let read_member = |name: &str, max: u64| -> Result<Vec<u8>> {
            let member = members.files.get(name).ok_or_else(|| {
                Error::InvalidArchive(format!("{place} has no {name}: not an OCI layout archive"))
            })?;
            if member.size > max {
                return Err(Error::InvalidArchive(format!(
                    "{place}: {name} is {} bytes, more than the {max} accepted",
                    member.size
                )));
            }
            read_exact_at(
                &file,
                member.offset,
                member.size,
                &place,
                name,
                &Monitor::none(),
            )
        };
        check_layout_marker(&place, &read_member("oci-layout", MAX_MARKER_BYTES)?)?;
        let index_bytes = read_member("index.json", MAX_INDEX_BYTES)?;
        let index = parse_index(&place, &index_bytes)?;
        Ok(ArchiveReader {
            path: path.to_path_buf(),
            file,
            index_bytes,
            index,
            blobs: members.blobs,
        })
    }

    fn place(&self) -> String {
        place_of(&self.path)
    }

    fn member(&self, digest: &str) -> Result<Option<Member>> {
        Ok(self.blobs.get(digest_hex(digest)?).copied())
    }

    fn present(&self, digest: &str) -> Result<Member> {
        self.member(digest)?
            .ok_or_else(|| Error::InvalidArchive(format!("{} has no blob {digest}", self.place())))
    }

    fn manifest_blob(&self, digest: &str, max: u64, named: bool) -> Result<Option<Vec<u8>>> {
        let Some(member) = self.member(digest)? else {
            if named {
                return Err(Error::InvalidArchive(format!(
                    "index.json of {} names manifest {digest}, which it does not hold",
                    self.place()
                )));
            }
            return Ok(None);
        };
        check_max(&self.place(), digest, member.size, max)?;
        let bytes = read_exact_at(
            &self.file,
            member.offset,
            member.size,
            &self.place(),
            digest,
            &Monitor::none(),
        )?;
        check_digest_of(&self.place(), digest, &bytes)?;
        Ok(Some(bytes))
    }

    /// A reader of member `m`'s bytes (`pread`s, so any number at once).
    fn reader(&self, m: Member) -> MemberReader<'_> {
        MemberReader {
            file: &self.file,
            pos: m.offset,
            end: m.offset + m.size,
        }
    }
}

fn read_only(place: &str) -> Error {
    Error::Internal(format!("{place} was opened for reading, not writing"))
}

impl Store for ArchiveReader {
    fn describe(&self) -> String {
        self.place()
    }

    fn blob_size(&self, digest: &str) -> Result<Option<u64>> {
        Ok(self.member(digest)?.map(|m| m.size))
    }

    fn put_blob_file(&self, _: &str, _: &Path, _: u64, _: &Monitor) -> Result<u64> {
        Err(read_only(&self.place()))
    }

    fn put_blob_bytes(&self, _: &str, _: &[u8], _: &Monitor) -> Result<u64> {
        Err(read_only(&self.place()))
    }

    fn get_blob(&self, digest: &str, max: u64, monitor: &Monitor) -> Result<Vec<u8>> {
        let m = self.present(digest)?;
        check_max(&self.place(), digest, m.size, max)?;
        read_exact_at(&self.file, m.offset, m.size, &self.place(), digest, monitor)
    }

    fn read_blob_range(
        &self,
        digest: &str,
        offset: u64,
        len: u64,
        out: &mut Vec<u8>,
        monitor: &Monitor,
    ) -> Result<()> {
        let m = self.present(digest)?;
        check_range(&self.place(), digest, m.size, offset, len)?;
        read_exact_into(
            &self.file,
            m.offset + offset,
            len,
            &self.place(),
            digest,
            out,
            monitor,
        )
    }

    fn get_manifest(&self, tag_or_digest: &str, max: u64) -> Result<Option<Vec<u8>>> {
        if tag_or_digest.starts_with("sha256:") {
            return self.manifest_blob(tag_or_digest, max, false);
        }
        check_tag(tag_or_digest).map_err(Error::InvalidArgument)?;
        match tagged_manifest(&self.place(), &self.index, tag_or_digest)? {
            Some(digest) => self.manifest_blob(&digest, max, true),
            None => Ok(None),
        }
    }

    fn put_manifest(&self, _: &str, _: &[u8], _: &str) -> Result<()> {
        Err(read_only(&self.place()))
    }
}

/// Reads a member with `pread`; fails rather than return fewer bytes than
/// the member holds.
struct MemberReader<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
}

impl Read for MemberReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = (self.end - self.pos).min(buf.len() as u64) as usize;
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the archive ended inside a member",
            ));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

/// What a walk of the tar found.
struct Members {
    /// `oci-layout` and `index.json`.
    files: HashMap<String, Member>,
    blobs: HashMap<String, Member>,
}

/// Walk the tar's headers (no data is read), refusing anything hostile.
fn walk(file: &File, file_len: u64, place: &str) -> Result<Members> {
    let bad = |why: String| Error::InvalidArchive(format!("{place}: {why}"));
    let mut archive = tar::Archive::new(file);
    let entries = archive
        .entries_with_seek()
        .map_err(|e| bad(format!("not a tar: {e}")))?;
    let mut members = Members {
        files: HashMap::new(),
        blobs: HashMap::new(),
    };
    // Where the block after the last member starts.
    let mut end = 0u64;
    for entry in entries {
        let entry = entry.map_err(|e| bad(format!("not a valid tar: {e}")))?;
        let raw = entry
            .path()
            .map_err(|e| bad(format!("a member name is not valid: {e}")))?;
        let name = member_name(raw.as_os_str().as_bytes())
            .map_err(|why| bad(format!("member {raw:?} has {why}")))?;
        let offset = entry.raw_file_position();
        let size = entry.size();
        let data_end = offset
            .checked_add(size)
            .filter(|&e| e <= file_len)
            .ok_or_else(|| {
                bad(format!(
                    "member {name:?} of {size} bytes at offset {offset} runs past the end of the \
                     {file_len}-byte file (truncated?)"
                ))
            })?;
        end = data_end.div_ceil(BLOCK) * BLOCK;
        match entry.header().entry_type() {
            tar::EntryType::Regular => {}
            tar::EntryType::Directory | tar::EntryType::XGlobalHeader => continue,
            other => {
                return Err(bad(format!(
                    "member {name:?} is a {other:?}, not a regular file or directory"
                )))
            }
        }
        let (map, key) = match name.as_str() {
            "oci-layout" | "index.json" => (&mut members.files, name.clone()),
            _ => match name.strip_prefix("blobs/sha256/") {
                Some(hex) if digest_hex(&format!("sha256:{hex}")).is_ok() => {
                    (&mut members.blobs, hex.to_string())
                }
                // Not part of the layout (another algorithm, a stray file):
                // never read, so harmless.
                _ => continue,
            },
        };
        if map.insert(key, Member { offset, size }).is_some() {
            return Err(bad(format!("member {name:?} appears twice")));
        }
    }
    // A tar ends with a zero block; without one it was cut short.
    let mut block = [0u8; BLOCK as usize];
    match file.read_exact_at(&mut block, end) {
        Ok(()) if block.iter().all(|&b| b == 0) => Ok(members),
        Ok(()) => Err(bad(format!("no end-of-archive block at offset {end}"))),
        Err(_) => Err(bad(
            "the file ends at its last member without an end-of-archive block (truncated?)".into(),
        )),
    }
}

/// A member name as `a/b/c`, without `./` and trailing `/`; refuses an
/// absolute name, `..` and a name that is not UTF-8.
fn member_name(raw: &[u8]) -> std::result::Result<String, &'static str> {
    let text = std::str::from_utf8(raw).map_err(|_| "a name that is not UTF-8")?;
    if text.starts_with('/') {
        return Err("an absolute name");
    }
    let mut parts = Vec::new();
    for part in text.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err("a name with a `..` component"),
            part => parts.push(part),
        }
    }
    if parts.is_empty() && !text.is_empty() && text.chars().all(|c| c == '.' || c == '/') {
        // `./` itself: the archive's root directory entry.
        return Ok(String::new());
    }
    if parts.is_empty() {
        return Err("an empty name");
    }
    Ok(parts.join("/"))
}

/// An archive being written: a scratch layout, plus the archive FILE held
/// before (if any), whose blobs and tags the new file keeps.
struct ArchiveWriter {
    path: PathBuf,
    existing: Option<ArchiveReader>,
    scratch_dir: PathBuf,
    layout: LayoutStore,
    /// The tar being written by `commit`, until renamed.
    temp: Mutex<Option<PathBuf>>,
}

impl ArchiveWriter {
    fn open(path: &Path, scratch: &Path) -> Result<ArchiveWriter> {
        let place = place_of(path);
        if path.file_name().is_none() {
            return Err(Error::InvalidArgument(format!("{place}: not a file name")));
        }
        let existing = match fs::metadata(path) {
            Ok(m) if m.is_file() => Some(ArchiveReader::open(path).map_err(|e| match e {
                Error::InvalidArchive(why) => Error::InvalidArgument(format!(
                    "{place} exists and is not an OCI layout archive to add to \
                     (it is left as it is): {why}"
                )),
                other => other,
            })?),
            Ok(_) => {
                return Err(Error::InvalidArgument(format!(
                    "{place}: not a regular file"
                )))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::io("stat", path, e)),
        };
        let dir = parent_dir(path);
        if !fs::metadata(&dir).is_ok_and(|m| m.is_dir()) {
            return Err(Error::InvalidArgument(format!(
                "{place}: the directory {} does not exist",
                dir.display()
            )));
        }
        // What a push killed while writing this archive left beside it.
        let file_name = path.file_name().expect("checked above").to_string_lossy();
        let temp_prefix = format!("{file_name}{TEMP_MARKER}");
        super::layout::remove_stale_temps(&dir, |name| name.starts_with(&temp_prefix));
        fs::create_dir_all(scratch).ctx("create directory", scratch)?;
        let scratch_dir = scratch.join(format!("oci-archive{TEMP_MARKER}{}", unique_suffix()));
        fs::create_dir(&scratch_dir).ctx("create directory", &scratch_dir)?;
        let layout = match LayoutStore::open(&scratch_dir, Access::Write) {
            Ok(layout) => layout,
            Err(e) => {
                let _ = fs::remove_dir_all(&scratch_dir);
                return Err(e);
            }
        };
        // From here Drop removes the scratch directory.
        let writer = ArchiveWriter {
            path: path.to_path_buf(),
            existing,
            scratch_dir,
            layout,
            temp: Mutex::new(None),
        };
        if let Some(existing) = &writer.existing {
            writer.layout.replace_index(&existing.index_bytes)?;
        }
        Ok(writer)
    }

    fn place(&self) -> String {
        place_of(&self.path)
    }

    fn existing_member(&self, digest: &str) -> Result<Option<Member>> {
        match &self.existing {
            Some(e) => e.member(digest),
            None => Ok(None),
        }
    }

    fn manifest_blob(&self, digest: &str, max: u64, named: bool) -> Result<Option<Vec<u8>>> {
        if let Some(bytes) = self.layout.manifest_blob(digest, max, false)? {
            return Ok(Some(bytes));
        }
        match &self.existing {
            Some(e) => e.manifest_blob(digest, max, named),
            None if named => Err(Error::InvalidArchive(format!(
                "index.json of {} names manifest {digest}, which it does not hold",
                self.place()
            ))),
            None => Ok(None),
        }
    }

    /// Write the whole archive to `temp`, fsynced. A cancel stops it
    /// within 1 MiB of copying.
    fn write_tar(&self, temp: &Path, monitor: &Monitor) -> Result<()> {
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(temp)
            .ctx("create", temp)?;
        let mut tar = tar::Builder::new(BufWriter::with_capacity(1 << 20, file));
        let index = self.layout.index_bytes()?;
        append(
            &mut tar,
            temp,
            monitor,
            "oci-layout",
            OCI_LAYOUT_CONTENT.len() as u64,
            &mut &OCI_LAYOUT_CONTENT[..],
        )?;
        append(
            &mut tar,
            temp,
            monitor,
            "index.json",
            index.len() as u64,
            &mut &index[..],
        )?;
        // Every blob once, by digest; one written in this push wins over
        // the old file's copy (it was checked as it was written).
        let mut blobs: BTreeMap<String, Option<Member>> = BTreeMap::new();
        if let Some(existing) = &self.existing {
            blobs.extend(
                existing
                    .blobs
                    .iter()
                    .map(|(hex, m)| (hex.clone(), Some(*m))),
            );
        }
        blobs.extend(self.layout.blob_hexes()?.into_iter().map(|hex| (hex, None)));
        for (hex, member) in blobs {
            let name = format!("blobs/sha256/{hex}");
            match (member, &self.existing) {
                (Some(m), Some(existing)) => append(
                    &mut tar,
                    temp,
                    monitor,
                    &name,
                    m.size,
                    &mut existing.reader(m),
                )?,
                _ => {
                    let path = self.layout.blob_path(&format!("sha256:{hex}"))?;
                    let mut blob = File::open(&path).ctx("open", &path)?;
                    let size = blob.metadata().ctx("stat", &path)?.len();
                    append(&mut tar, temp, monitor, &name, size, &mut blob)?
                }
            }
        }
        let out = tar.into_inner().ctx("write", temp)?;
        let file = out
            .into_inner()
            .map_err(|e| Error::io("write", temp, e.into_error()))?;
        file.sync_all().ctx("fsync", temp)
    }
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Append one regular member of exactly `size` bytes from `data`.
fn append<W: Write>(
    tar: &mut tar::Builder<W>,
    temp: &Path,
    monitor: &Monitor,
    name: &str,
    size: u64,
    data: &mut dyn Read,
) -> Result<()> {
    let mut header = tar::Header::new_ustar();
    header.set_path(name).ctx("write", temp)?;
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(size);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    header.set_cksum();
    let mut exact = Exact {
        inner: data,
        left: size,
        monitor,
    };
    let appended = tar.append(&header, &mut exact);
    monitor.check()?;
    appended.ctx("write", temp)?;
    if exact.left != 0 {
        return Err(Error::Internal(format!(
            "{name} ended {} bytes early",
            exact.left
        )));
    }
    Ok(())
}

/// At most `left` bytes of `inner`; an error if it ends before. Read 1 MiB
/// at most at a time; a cancel of `monitor` ends it with an error (`append`
/// then says `Cancelled`).
struct Exact<'a, 'm> {
    inner: &'a mut dyn Read,
    left: u64,
    monitor: &'a Monitor<'m>,
}

impl Read for Exact<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        if self.monitor.is_cancelled() {
            // Not `Interrupted`: io::copy would retry that forever.
            return Err(io::Error::other("cancelled"));
        }
        let want = self.left.min(buf.len() as u64).min(1 << 20) as usize;
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("a blob ended {} bytes early", self.left),
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

impl Store for ArchiveWriter {
    fn describe(&self) -> String {
        self.place()
    }

    fn blob_size(&self, digest: &str) -> Result<Option<u64>> {
        match self.layout.blob_size(digest)? {
            Some(size) => Ok(Some(size)),
            None => Ok(self.existing_member(digest)?.map(|m| m.size)),
        }
    }

    fn put_blob_file(&self, digest: &str, path: &Path, len: u64, monitor: &Monitor) -> Result<u64> {
        if self.existing_member(digest)?.is_some_and(|m| m.size == len) {
            return Ok(0);
        }
        self.layout.put_blob_file(digest, path, len, monitor)
    }

    fn put_blob_bytes(&self, digest: &str, bytes: &[u8], monitor: &Monitor) -> Result<u64> {
        if self
            .existing_member(digest)?
            .is_some_and(|m| m.size == bytes.len() as u64)
        {
            return Ok(0);
        }
        self.layout.put_blob_bytes(digest, bytes, monitor)
    }

    fn get_blob(&self, digest: &str, max: u64, monitor: &Monitor) -> Result<Vec<u8>> {
        match (self.layout.blob_size(digest)?, &self.existing) {
            (None, Some(existing)) => existing.get_blob(digest, max, monitor),
            _ => self.layout.get_blob(digest, max, monitor),
        }
    }

    fn read_blob_range(
        &self,
        digest: &str,
        offset: u64,
        len: u64,
        out: &mut Vec<u8>,
        monitor: &Monitor,
    ) -> Result<()> {
        match (self.layout.blob_size(digest)?, &self.existing) {
            (None, Some(existing)) => existing.read_blob_range(digest, offset, len, out, monitor),
            _ => self
                .layout
                .read_blob_range(digest, offset, len, out, monitor),
        }
    }

    fn get_manifest(&self, tag_or_digest: &str, max: u64) -> Result<Option<Vec<u8>>> {
        if tag_or_digest.starts_with("sha256:") {
            return self.manifest_blob(tag_or_digest, max, false);
        }
        check_tag(tag_or_digest).map_err(Error::InvalidArgument)?;
        let index = self.layout.read_index()?;
        match tagged_manifest(&self.place(), &index, tag_or_digest)? {
            Some(digest) => self.manifest_blob(&digest, max, true),
            None => Ok(None),
        }
    }

    fn put_manifest(&self, tag: &str, bytes: &[u8], media_type: &str) -> Result<()> {
        let descriptor = manifest_descriptor(tag, bytes, media_type)?;
        let digest = descriptor["digest"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        self.put_blob_bytes(&digest, bytes, &Monitor::none())?;
        self.layout.tag_in_index(tag, descriptor)
    }

    fn commit(&self, monitor: &Monitor) -> Result<()> {
        let name = self
            .path
            .file_name()
            .expect("checked at open")
            .to_string_lossy();
        let dir = parent_dir(&self.path);
        let temp = dir.join(format!("{name}{TEMP_MARKER}{}", unique_suffix()));
        *lock(&self.temp) = Some(temp.clone());
        let written = self
            .write_tar(&temp, monitor)
            .and_then(|()| fs::rename(&temp, &self.path).ctx("rename into place", &self.path));
        if let Err(e) = written {
            let _ = fs::remove_file(&temp);
            *lock(&self.temp) = None;
            return Err(e);
        }
        *lock(&self.temp) = None;
        sync_dir(&dir)?;
        let _ = fs::remove_dir_all(&self.scratch_dir);
        Ok(())
    }

    fn abandon(&self) {
        self.layout.abandon();
        if let Some(temp) = lock(&self.temp).take() {
            let _ = fs::remove_file(temp);
        }
        let _ = fs::remove_dir_all(&self.scratch_dir);
    }
}

impl Drop for ArchiveWriter {
    fn drop(&mut self) {
        // The scratch layout is never worth keeping: committed, it is in
        // FILE; not committed, the push failed or was dropped.
        self.abandon();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_names_are_normalized_and_hostile_ones_refused() {
        assert_eq!(member_name(b"./index.json").unwrap(), "index.json");
        assert_eq!(member_name(b"blobs/sha256/").unwrap(), "blobs/sha256");
        assert_eq!(
            member_name(b"./blobs//sha256/ab").unwrap(),
            "blobs/sha256/ab"
        );
        assert_eq!(member_name(b"./").unwrap(), "");
        for bad in [
            &b"/index.json"[..],
            b"../x",
            b"blobs/../../x",
            b"a/..",
            b"",
            b"\xff",
        ] {
            assert!(member_name(bad).is_err(), "{bad:?}");
        }
    }
}
