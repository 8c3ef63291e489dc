//! The 512-byte tar header: field layout, numeric encodings (octal and GNU
//! base-256), the header checksum, and GNU long-name entries.
//!
//! We write GNU-format headers (magic `"ustar  \0"`) like microsandbox v0.6.3's
//! tar writer does (SPEC-NOTES §8), and read GNU, POSIX ustar and v7 headers.
//! Nothing here trusts a number it decodes: callers bound every size.

/// Size of one tar block; headers are one block, data is padded to blocks.
pub const BLOCK: usize = 512;

/// GNU magic + version, bytes 257..265 of a GNU header.
pub const GNU_MAGIC: &[u8; 8] = b"ustar  \0";
const USTAR_MAGIC: &[u8; 6] = b"ustar\0";

/// Name of the pseudo-entry that carries a GNU long name.
pub const GNU_LONG_NAME_ENTRY: &[u8] = b"././@LongLink";

// Field offsets shared by every header flavour.
const NAME: (usize, usize) = (0, 100);
const MODE: (usize, usize) = (100, 8);
const UID: (usize, usize) = (108, 8);
const GID: (usize, usize) = (116, 8);
const SIZE: (usize, usize) = (124, 12);
const MTIME: (usize, usize) = (136, 12);
const CHECKSUM: (usize, usize) = (148, 8);
const TYPEFLAG: usize = 156;
const MAGIC: (usize, usize) = (257, 8);
const DEVMAJOR: (usize, usize) = (329, 8);
const DEVMINOR: (usize, usize) = (337, 8);
/// POSIX ustar only: a path prefix joined to the name with `/`.
const USTAR_PREFIX: (usize, usize) = (345, 155);
/// GNU only: four inline sparse map slots, the "more follows" flag, the real size.
pub const GNU_SPARSE_SLOTS: usize = 386;
pub const GNU_IS_EXTENDED: usize = 482;
pub const GNU_REAL_SIZE: (usize, usize) = (483, 12);

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
    let computed = checksum_of(block);
    let stored = parse_numeric(field(block, CHECKSUM));
    // Some historic tars summed signed chars; accept either sum.
    if stored != Some(computed) && stored != Some(signed_checksum_of(block)) {
        return Err(HeaderError::Checksum { stored, computed });
    }
    let magic = field(block, MAGIC);
    let is_gnu = magic == GNU_MAGIC;
    let is_ustar = magic.starts_with(USTAR_MAGIC);
    let mut name = until_nul(field(block, NAME)).to_vec();
    if is_ustar {
        let prefix = until_nul(field(block, USTAR_PREFIX));
        if !prefix.is_empty() {
            let mut joined = prefix.to_vec();
            joined.push(b'/');
            joined.extend_from_slice(&name);
            name = joined;
        }
    }
    let num = |range, what| parse_numeric(field(block, range)).ok_or(HeaderError::Field(what));
    let mode = num(MODE, "mode")?;
    Ok(HeaderFields {
        name,
        kind: EntryType::from_flag(block[TYPEFLAG]),
        mode: (mode & 0o7777) as u32,
        mtime: num(MTIME, "mtime")?,
        size: num(SIZE, "size")?,
        is_gnu,
    })
}

/// The bytes of a fixed field.
pub fn field(block: &[u8; BLOCK], (start, len): (usize, usize)) -> &[u8] {
    &block[start..start + len]
}

fn until_nul(bytes: &[u8]) -> &[u8] {
    match bytes.iter().position(|&b| b == 0) {
        Some(end) => &bytes[..end],
        None => bytes,
    }
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
    let text = bytes.iter().skip_while(|&&b| b == b' ');
    let mut value: u64 = 0;
    let mut digits = 0;
    for &b in text {
        match b {
            b'0'..=b'7' => {
                value = value.checked_mul(8)?.checked_add(u64::from(b - b'0'))?;
                digits += 1;
            }
            0 | b' ' => break,
            _ => return None,
        }
    }
    // An all-blank field reads as 0, which GNU tar also does.
    let _ = digits;
    Some(value)
}

/// Write `value` into a numeric field: octal with a NUL terminator when it
/// fits, else GNU base-256 (as GNU tar and microsandbox's writer do for sizes
/// of 8 GiB and more).
pub fn put_numeric(block: &mut [u8; BLOCK], (start, len): (usize, usize), value: u64) {
    let dst = &mut block[start..start + len];
    let octal_digits = len - 1;
    if octal_digits * 3 >= 64 || value < (1u64 << (3 * octal_digits)) {
        let text = format!("{value:0width$o}", width = octal_digits);
        dst[..octal_digits].copy_from_slice(text.as_bytes());
        dst[octal_digits] = 0;
    } else {
        // Base-256: big-endian in the field with the first byte's high bit
        // set. An 8-byte field holds 56 bits, far beyond anything we write.
        dst.fill(0);
        let be = value.to_be_bytes();
        let take = (len - 1).min(8);
        dst[len - take..].copy_from_slice(&be[8 - take..]);
        dst[0] |= 0x80;
    }
}

fn checksum_of(block: &[u8; BLOCK]) -> u64 {
    let (start, len) = CHECKSUM;
    block
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (start..start + len).contains(&i) {
                u64::from(b' ')
            } else {
                u64::from(b)
            }
        })
        .sum()
}

fn signed_checksum_of(block: &[u8; BLOCK]) -> u64 {
    let (start, len) = CHECKSUM;
    let sum: i64 = block
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (start..start + len).contains(&i) {
                i64::from(b' ')
            } else {
                i64::from(b as i8)
            }
        })
        .sum();
    sum as u64
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

/// Encode a GNU header block without its checksum (see [`seal`]).
pub fn encode_header(spec: &HeaderSpec<'_>) -> [u8; BLOCK] {
    let mut block = [0u8; BLOCK];
    let n = spec.name.len().min(NAME.1);
    block[..n].copy_from_slice(&spec.name[..n]);
    put_numeric(&mut block, MODE, u64::from(spec.mode));
    put_numeric(&mut block, UID, spec.uid);
    put_numeric(&mut block, GID, spec.gid);
    put_numeric(&mut block, SIZE, spec.size);
    put_numeric(&mut block, MTIME, spec.mtime);
    block[TYPEFLAG] = spec.kind.flag();
    block[MAGIC.0..MAGIC.0 + MAGIC.1].copy_from_slice(GNU_MAGIC);
    put_numeric(&mut block, DEVMAJOR, 0);
    put_numeric(&mut block, DEVMINOR, 0);
    block
}

/// Fill in the checksum; call after every other byte of the header is final.
pub fn seal(block: &mut [u8; BLOCK]) {
    let sum = checksum_of(block);
    put_numeric(block, CHECKSUM, sum);
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
    out.extend(std::iter::repeat(0).take(pad));
    out
}

/// The name stored in the 100-byte field when the real one needs a long-name
/// entry: GNU tar stores the first 100 bytes, readers use the long name.
pub fn fits_in_header(name: &[u8]) -> bool {
    name.len() <= NAME.1
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
        let mut block = [0u8; BLOCK];
        put_numeric(&mut block, UID, 3_000_000);
        assert_eq!(block[UID.0] & 0x80, 0x80);
        assert_eq!(parse_numeric(field(&block, UID)), Some(3_000_000));
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
        let mut block = [0u8; BLOCK];
        block[..4].copy_from_slice(b"file");
        put_numeric(&mut block, MODE, 0o644);
        put_numeric(&mut block, SIZE, 0);
        put_numeric(&mut block, MTIME, 0);
        block[TYPEFLAG] = b'0';
        block[257..263].copy_from_slice(b"ustar\0");
        block[263..265].copy_from_slice(b"00");
        block[345..348].copy_from_slice(b"dir");
        seal(&mut block);
        assert_eq!(decode_header(&block).unwrap().name, b"dir/file");
    }
}
