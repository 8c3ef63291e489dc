#![allow(dead_code)]
//! Where to cut an archive for the truncation tests. The tar is walked here
//! by hand (not with the crate's reader) so the cut points do not share a bug
//! with the code under test.
use std::ops::Range;

const BLOCK: usize = 512;

/// The byte layout of a plain tar: each entry (its extended headers, header,
/// sparse extension blocks, data and padding) and where the end-of-archive
/// marker starts.
pub struct TarLayout {
    pub entries: Vec<Range<usize>>,
    pub end_marker: usize,
    pub len: usize,
}

/// A header's size field: octal, or GNU base-256 when the top bit is set.
fn size_field(header: &[u8]) -> usize {
    let field = &header[124..136];
    if field[0] & 0x80 != 0 {
        let mut v = u64::from(field[0] & 0x7f);
        for &b in &field[1..] {
            v = (v << 8) | u64::from(b);
        }
        return usize::try_from(v).unwrap();
    }
    let text = std::str::from_utf8(field).unwrap();
    usize::from_str_radix(text.trim_matches(|c| c == '\0' || c == ' '), 8).unwrap()
}

pub fn layout(tar: &[u8]) -> TarLayout {
    let mut entries = Vec::new();
    let mut at = 0;
    let mut entry_start = 0;
    loop {
        let header = &tar[at..at + BLOCK];
        if header.iter().all(|&b| b == 0) {
            assert_eq!(entry_start, at, "the archive ends after an extended header");
            break;
        }
        let flag = header[156];
        let mut next = at + BLOCK;
        if flag == b'S' {
            // GNU old sparse: `isextended` at 482, then at 504 of each extension.
            let mut extended = header[482] != 0;
            while extended {
                extended = tar[next + 504] != 0;
                next += BLOCK;
            }
        }
        next += size_field(header).div_ceil(BLOCK) * BLOCK;
        // Long names and PAX records belong to the entry that follows them.
        if !matches!(flag, b'L' | b'K' | b'x' | b'g') {
            entries.push(entry_start..next);
            entry_start = next;
        }
        at = next;
    }
    assert!(
        tar[at..].len() >= 2 * BLOCK && tar[at..].iter().all(|&b| b == 0),
        "a complete archive ends with two zero blocks"
    );
    TarLayout {
        entries,
        end_marker: at,
        len: tar.len(),
    }
}

/// One way of cutting an archive short.
pub struct Cut {
    pub what: String,
    pub at: usize,
    /// Whether `at` is an entry boundary (the stream then holds only whole
    /// entries, and only the missing end-of-archive marker says it is cut).
    pub boundary: bool,
}

/// Every entry boundary (the start of each entry, and the end of the last
/// one where the marker should begin), then offsets that are not boundaries:
/// inside the second header, in the middle of each entry, between the two
/// zero blocks of the marker and one byte before the end.
pub fn cuts(layout: &TarLayout) -> Vec<Cut> {
    let mut out = Vec::new();
    for (i, entry) in layout.entries.iter().enumerate() {
        out.push(Cut {
            what: format!("before entry {i} (byte {})", entry.start),
            at: entry.start,
            boundary: true,
        });
    }
    out.push(Cut {
        what: format!("after the last entry (byte {})", layout.end_marker),
        at: layout.end_marker,
        boundary: true,
    });
    if let Some(second) = layout.entries.get(1) {
        out.push(Cut {
            what: "inside the second entry's header".into(),
            at: second.start + 100,
            boundary: false,
        });
    }
    for (i, entry) in layout.entries.iter().enumerate() {
        out.push(Cut {
            what: format!("in the middle of entry {i}"),
            at: (entry.start + entry.end) / 2,
            boundary: false,
        });
    }
    out.push(Cut {
        what: "after the first zero block of the marker".into(),
        at: layout.end_marker + BLOCK,
        boundary: false,
    });
    out.push(Cut {
        what: "one byte before the end".into(),
        at: layout.len - 1,
        boundary: false,
    });
    out
}
