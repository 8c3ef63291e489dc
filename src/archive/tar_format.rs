//! The 512-byte tar header: tar-rs's `Header`/`GnuHeader` for the layout,
//! the numeric encodings on write (octal, GNU base-256) and the checksum;
//! our own strict reading of numbers; GNU long-name entries.
//!
//! We write GNU-format headers (magic `"ustar  \0"`) like microsandbox v0.6.3's
//! tar writer does (SPEC-NOTES §8), and read GNU, POSIX ustar and v7 headers.
//! Nothing here trusts a number it decodes: callers bound every size. That is
//! why numbers are read with [`parse_numeric`] rather than tar-rs's getters,
//! which keep only the low 64 bits of a base-256 field (a negative or
//! oversized value reads as some other number) and refuse the all-blank
//! field GNU tar reads as 0.
use tar::Header;

/// Size of one tar block; headers are one block, data is padded to blocks.
pub const BLOCK: usize = 512;

/// GNU magic + version, bytes 257..265 of a GNU header.
pub const GNU_MAGIC: &[u8; 8] = b"ustar  \0";

/// Name of the pseudo-entry that carries a GNU long name.
pub const GNU_LONG_NAME_ENTRY: &[u8] = b"././@LongLink";

/// The length of the name field; longer names need a long-name entry.
const NAME_LEN: usize = 100;

/// What an entry is, from its typeflag byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryType {
    /// `'0'`, NUL (old tars) or `'7'` (contiguous file): a plain file.
    Regular,
    Directory,
    /// `'S'`: GNU old-format sparse file.
    GnuSparse,
    /// `'L'`: the data is the long name of the next entry.
    GnuLongName,
    /// `'K'`: the data is the long link target of the next entry.
    GnuLongLink,
    /// `'x'`: PAX extended header for the next entry.
    PaxLocal,
    /// `'g'`: PAX global header.
    PaxGlobal,
    HardLink,
    Symlink,
    CharDevice,
    BlockDevice,
    Fifo,
    Other(u8),
}

impl EntryType {
    pub fn from_flag(flag: u8) -> EntryType {
        match flag {
            b'0' | 0 | b'7' => EntryType::Regular,
            b'1' => EntryType::HardLink,
            b'2' => EntryType::Symlink,
            b'3' => EntryType::CharDevice,
            b'4' => EntryType::BlockDevice,
            b'5' => EntryType::Directory,
            b'6' => EntryType::Fifo,
            b'S' => EntryType::GnuSparse,
            b'L' => EntryType::GnuLongName,
            b'K' => EntryType::GnuLongLink,
            b'x' => EntryType::PaxLocal,
            b'g' => EntryType::PaxGlobal,
            other => EntryType::Other(other),
        }
    }

    pub fn flag(self) -> u8 {
        match self {
            EntryType::Regular => b'0',
            EntryType::HardLink => b'1',
            EntryType::Symlink => b'2',
            EntryType::CharDevice => b'3',
            EntryType::BlockDevice => b'4',
            EntryType::Directory => b'5',
            EntryType::Fifo => b'6',
            EntryType::GnuSparse => b'S',
            EntryType::GnuLongName => b'L',
            EntryType::GnuLongLink => b'K',
            EntryType::PaxLocal => b'x',
            EntryType::PaxGlobal => b'g',
            EntryType::Other(b) => b,
        }
    }

    /// Human words for error messages ("symlink", "FIFO", ...).
    pub fn describe(self) -> String {
        match self {
            EntryType::Regular => "regular file".into(),
            EntryType::Directory => "directory".into(),
            EntryType::GnuSparse => "GNU sparse file".into(),
            EntryType::GnuLongName => "GNU long name".into(),
            EntryType::GnuLongLink => "GNU long link name".into(),
            EntryType::PaxLocal => "PAX header".into(),
            EntryType::PaxGlobal => "PAX global header".into(),
            EntryType::HardLink => "hard link".into(),
            EntryType::Symlink => "symlink".into(),
            EntryType::CharDevice => "character device".into(),
            EntryType::BlockDevice => "block device".into(),
            EntryType::Fifo => "FIFO".into(),
            EntryType::Other(b) => format!("unknown type {:?}", b as char),
        }
    }
}

/// The fields of one header block that import uses, decoded and checksummed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderFields {
    /// Raw name bytes (ustar prefix already joined); not yet validated.
    pub name: Vec<u8>,
    pub kind: EntryType,
    pub mode: u32,
    pub mtime: u64,
    /// The size field: bytes of data that follow the header (for `'S'`, the
    /// stored data only, not the logical size).
    pub size: u64,
    pub is_gnu: bool,
}

/// Why a header block could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeaderError {
    Checksum { stored: Option<u64>, computed: u64 },
    Field(&'static str),
}

impl std::fmt::Display for HeaderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeaderError::Checksum {
                stored: Some(s),
                computed,
            } => write!(
                f,
                "header checksum mismatch (stored {s:o}, computed {computed:o})"
            ),
            HeaderError::Checksum { stored: None, .. } => {
                write!(f, "header checksum field is not a number")
            }
            HeaderError::Field(name) => write!(f, "header field {name} is not a valid number"),
        }
    }
}

pub fn is_zero_block(block: &[u8; BLOCK]) -> bool {
    block.iter().all(|&b| b == 0)
}

/// Decode and checksum one header block.
pub fn decode_header(block: &[u8; BLOCK]) -> Result<HeaderFields, HeaderError> {
    let header = Header::from_byte_slice(block);
    let computed = checksum_of(block);
    let stored = parse_numeric(&header.as_old().cksum);
    // Some historic tars summed signed chars; accept either sum.
    if stored != Some(computed) && stored != Some(signed_checksum_of(block)) {
        return Err(HeaderError::Checksum { stored, computed });
    }
    let old = header.as_old();
    let num = |bytes: &[u8], what| parse_numeric(bytes).ok_or(HeaderError::Field(what));
    let mode = num(&old.mode, "mode")?;
    Ok(HeaderFields {
        // The ustar prefix is joined with `/` by tar-rs for ustar headers.
        name: header.path_bytes().into_owned(),
        kind: EntryType::from_flag(old.linkflag[0]),
        mode: (mode & 0o7777) as u32,
        mtime: num(&old.mtime, "mtime")?,
        size: num(&old.size, "size")?,
        is_gnu: header.as_gnu().is_some(),
    })
}

/// Parse a numeric field: octal text (leading spaces, NUL/space terminated),
/// or GNU base-256 (high bit of the first byte set). Negative base-256
/// values and values beyond u64 are refused (`None`).
pub fn parse_numeric(bytes: &[u8]) -> Option<u64> {
    let first = *bytes.first()?;
    if first & 0x80 != 0 {
        if first != 0x80 {
            return None; // 0xff marks a negative number: never valid for us
        }
        let mut value: u64 = 0;
        for &b in &bytes[1..] {
            value = value.checked_mul(256)?.checked_add(u64::from(b))?;
        }
        return Some(value);
    }
    let mut value: u64 = 0;
    for &b in bytes.iter().skip_while(|&&b| b == b' ') {
        match b {
            b'0'..=b'7' => value = value.checked_mul(8)?.checked_add(u64::from(b - b'0'))?,
            0 | b' ' => break,
            _ => return None,
        }
    }
    // An all-blank field reads as 0, which GNU tar also does.
    Some(value)
}

/// The standard (unsigned) header checksum, as tar-rs computes it for
/// `set_cksum` (its sum itself is private, so we seal a copy and read it).
fn checksum_of(block: &[u8; BLOCK]) -> u64 {
    let mut copy = [0u8; BLOCK];
    copy.copy_from_slice(block);
    seal(&mut copy);
    // Seven octal digits always parse.
    parse_numeric(&Header::from_byte_slice(&copy).as_old().cksum).unwrap_or(0)
}

/// The sum of the header bytes as signed chars (checksum field as spaces),
/// which some historic tars wrote; tar-rs does not accept it.
fn signed_checksum_of(block: &[u8; BLOCK]) -> u64 {
    let header = Header::from_byte_slice(block);
    let cksum = &header.as_old().cksum;
    let field_start = cksum.as_ptr() as usize - block.as_ptr() as usize;
    let sum: i64 = block
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (field_start..field_start + cksum.len()).contains(&i) {
                i64::from(b' ')
            } else {
                i64::from(b as i8)
            }
        })
        .sum();
    sum as u64
}

/// Run `f` on `block` as tar-rs's `Header`. tar-rs has no mutable view of a
/// borrowed block, so this copies the 512 bytes in and back out.
pub fn edit(block: &mut [u8; BLOCK], f: impl FnOnce(&mut Header)) {
    let mut header = Header::new_old();
    header.as_mut_bytes().copy_from_slice(block);
    f(&mut header);
    block.copy_from_slice(header.as_bytes());
}

/// What goes into a header we write.
pub struct HeaderSpec<'a> {
    /// At most 100 bytes; longer names need [`long_name_blocks`] first.
    pub name: &'a [u8],
    pub kind: EntryType,
    /// Full `st_mode`, file-type bits included, as microsandbox writes it.
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    pub size: u64,
}

/// Encode a GNU header block without its checksum (see [`seal`]). Numbers
/// are octal when they fit and GNU base-256 beyond (sizes of 8 GiB and
/// more), as GNU tar, tar-rs and microsandbox's writer do.
pub fn encode_header(spec: &HeaderSpec<'_>) -> [u8; BLOCK] {
    let mut header = Header::new_gnu();
    // The raw bytes, as given: tar-rs's set_path would normalize them.
    let n = spec.name.len().min(NAME_LEN);
    header.as_old_mut().name[..n].copy_from_slice(&spec.name[..n]);
    header.set_mode(spec.mode);
    header.set_uid(spec.uid);
    header.set_gid(spec.gid);
    header.set_size(spec.size);
    header.set_mtime(spec.mtime);
    header.set_entry_type(tar::EntryType::new(spec.kind.flag()));
    if let Some(gnu) = header.as_gnu_mut() {
        gnu.set_device_major(0);
        gnu.set_device_minor(0);
    }
    *header.as_bytes()
}

/// Fill in the checksum; call after every other byte of the header is final.
pub fn seal(block: &mut [u8; BLOCK]) {
    edit(block, Header::set_cksum);
}

/// Bytes of padding that follow `size` bytes of data.
pub fn padding_after(size: u64) -> usize {
    ((BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64) as usize
}

/// The blocks of a GNU `././@LongLink` entry carrying `name` (NUL-terminated),
/// to be written before the header of the entry it names.
pub fn long_name_blocks(name: &[u8]) -> Vec<u8> {
    let mut data = name.to_vec();
    data.push(0);
    let mut header = encode_header(&HeaderSpec {
        name: GNU_LONG_NAME_ENTRY,
        kind: EntryType::GnuLongName,
        mode: 0o644,
        uid: 0,
        gid: 0,
        mtime: 0,
        size: data.len() as u64,
    });
    seal(&mut header);
    let mut out = header.to_vec();
    let pad = padding_after(data.len() as u64);
    out.extend_from_slice(&data);
    out.extend(std::iter::repeat_n(0, pad));
    out
}

/// The name stored in the 100-byte field when the real one needs a long-name
/// entry: GNU tar stores the first 100 bytes, readers use the long name.
pub fn fits_in_header(name: &[u8]) -> bool {
    name.len() <= NAME_LEN
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &[u8], size: u64) -> HeaderSpec<'_> {
        HeaderSpec {
            name,
            kind: EntryType::Regular,
            mode: 0o100644,
            uid: 0,
            gid: 0,
            mtime: 1777636800,
            size,
        }
    }

    #[test]
    fn header_round_trips_and_matches_microsandbox_layout() {
        let mut block = encode_header(&spec(b"sha256-a8f09605e98d1105/manifest.json", 490));
        seal(&mut block);
        assert_eq!(&block[257..265], b"ustar  \0");
        assert_eq!(&block[100..108], b"0100644\0");
        let fields = decode_header(&block).unwrap();
        assert_eq!(fields.name, b"sha256-a8f09605e98d1105/manifest.json");
        assert_eq!(fields.size, 490);
        assert_eq!(fields.mtime, 1777636800);
        assert_eq!(fields.mode, 0o644);
        assert_eq!(fields.kind, EntryType::Regular);
        assert!(fields.is_gnu);
    }

    #[test]
    fn decodes_the_real_v063_export_header() {
        // Stored as .tar.zst only (tests/vectors/README.md); same bytes.
        let tar = zstd::decode_all(
            std::fs::File::open(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/vectors/msb-0.6.3/archives/single.tar.zst"
            ))
            .unwrap(),
        )
        .unwrap();
        let block: [u8; BLOCK] = tar[..BLOCK].try_into().unwrap();
        let fields = decode_header(&block).unwrap();
        assert_eq!(fields.name, b"sha256-a8f09605e98d1105/manifest.json");
        assert_eq!(fields.size, 490);
        // Re-encoding the same fields gives the same bytes except the
        // checksum formatting, which readers do not care about.
        let mut ours = encode_header(&spec(&fields.name, 490));
        seal(&mut ours);
        assert_eq!(decode_header(&ours).unwrap(), fields);
    }

    #[test]
    fn checksum_mismatch_is_detected() {
        let mut block = encode_header(&spec(b"a/b", 1));
        seal(&mut block);
        block[0] ^= 1;
        assert!(matches!(
            decode_header(&block),
            Err(HeaderError::Checksum { .. })
        ));
    }

    #[test]
    fn sizes_of_8_gib_and_more_use_base_256() {
        let big = 8u64 << 30;
        let mut block = encode_header(&spec(b"a/upper.ext4", big));
        seal(&mut block);
        assert_eq!(block[124], 0x80);
        assert_eq!(decode_header(&block).unwrap().size, big);
        let just_below = big - 1;
        let mut block = encode_header(&spec(b"a/upper.ext4", just_below));
        seal(&mut block);
        assert_eq!(&block[124..136], b"77777777777\0");
        assert_eq!(decode_header(&block).unwrap().size, just_below);
    }

    #[test]
    fn large_ids_use_base_256_in_short_fields() {
        let mut s = spec(b"a/b", 0);
        s.uid = 3_000_000;
        let block = encode_header(&s);
        assert_eq!(block[108] & 0x80, 0x80, "uid field at 108..116");
        assert_eq!(parse_numeric(&block[108..116]), Some(3_000_000));
    }

    #[test]
    fn numeric_parsing_refuses_garbage_and_negatives() {
        assert_eq!(parse_numeric(b"  0017\0 "), Some(0o17));
        assert_eq!(parse_numeric(b"\0\0\0"), Some(0));
        assert_eq!(parse_numeric(b"12x"), None);
        assert_eq!(parse_numeric(b"9"), None);
        assert_eq!(parse_numeric(&[0xff, 0xff, 0xff]), None);
        let mut huge = [0xffu8; 12];
        huge[0] = 0x80;
        assert_eq!(parse_numeric(&huge), None, "more than 64 bits");
    }

    #[test]
    fn long_name_entry_is_gnu_longlink() {
        let name = vec![b'x'; 150];
        let blocks = long_name_blocks(&name);
        assert_eq!(blocks.len(), 2 * BLOCK);
        let header: [u8; BLOCK] = blocks[..BLOCK].try_into().unwrap();
        let fields = decode_header(&header).unwrap();
        assert_eq!(fields.kind, EntryType::GnuLongName);
        assert_eq!(fields.name, GNU_LONG_NAME_ENTRY);
        assert_eq!(fields.size, 151);
        assert_eq!(&blocks[BLOCK..BLOCK + 150], &name[..]);
        assert!(!fits_in_header(&name));
    }

    #[test]
    fn ustar_prefix_is_joined() {
        let mut header = Header::new_ustar();
        header.as_old_mut().name[..4].copy_from_slice(b"file");
        if let Some(ustar) = header.as_ustar_mut() {
            ustar.prefix[..3].copy_from_slice(b"dir");
        }
        header.set_mode(0o644);
        header.set_size(0);
        header.set_entry_type(tar::EntryType::Regular);
        let mut block = *header.as_bytes();
        seal(&mut block);
        assert_eq!(&block[345..348], b"dir", "prefix at 345");
        assert_eq!(decode_header(&block).unwrap().name, b"dir/file");
    }

    #[test]
    fn signed_checksums_of_historic_tars_are_accepted() {
        // A name byte >= 0x80 makes the signed and unsigned sums differ.
        let mut block = encode_header(&spec("a/\u{e9}".as_bytes(), 1));
        let signed = signed_checksum_of(&block);
        assert_ne!(signed, checksum_of(&block));
        let text = format!("{signed:06o}\0 ");
        block[148..156].copy_from_slice(text.as_bytes());
        assert_eq!(decode_header(&block).unwrap().name, "a/\u{e9}".as_bytes());
    }
}
