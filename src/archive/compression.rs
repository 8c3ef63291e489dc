//! Which compression an archive uses, and the zstd settings we write with.
//!
//! Import decides by the first four bytes only (zstd magic or not), whatever
//! the file is called, as microsandbox v0.6.3 does.
use std::io::{self, Read, Write};

/// The zstd frame magic, little-endian 0xFD2FB528.
pub const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// Default zstd level. Measured (release build, 2-core shared machine)
/// exporting a 1 GiB upper holding 256 MiB of mixed data (text-like, random,
/// mostly-zero), 2 workers: level 1 0.78 s / 144 MiB, level 3 1.68 s /
/// 145 MiB, level 6 5.2 s / 144 MiB, level 9 10.6 s / 143 MiB. Higher levels
/// cost 3-6x the time for ~1%; level 1 was 2x faster on this synthetic data,
/// but real filesystem images (binaries, libraries) usually gain 5-10% from
/// 3 over 1, and 3 is zstd's and microsandbox's default, so 3 it is. Callers
/// who want speed pass `level: Some(1)`.
pub const DEFAULT_LEVEL: i32 = 3;

/// Most workers we start by default. Same measurement at level 3: no worker
/// thread (compression inline) 4.2 s, 1 worker 2.2 s (compression overlaps
/// reading), 2 workers 1.7 s. Past a few workers the single reader/framer
/// thread is the bottleneck and each worker adds its buffers to memory.
const MAX_DEFAULT_THREADS: u32 = 4;

/// Bytes of input per zstd worker job. zstd's own choice at level 3 is
/// 4 x the 2 MiB window = 8 MiB, and its multithreaded encoder holds about
/// (2 x workers + 3) input sections plus one output buffer per job in
/// flight: ~70 MiB at 2 workers, which made export's peak RSS ~100 MiB.
/// Smaller jobs compress worse, because each job only sees the data before
/// it through its overlap (by default 1/8 of the window at level 3); with
/// the whole window as overlap ([`OVERLAP_LOG`]) they lose nothing.
/// Measured on F1's tar stream (378 MiB of ext4 data, level 3, 2 workers):
/// 2 MiB jobs, default overlap: 93.5 MB, peak RSS 22 MiB;
/// 2 MiB, full overlap: 90.3 MB, 22 MiB; 4 MiB, full overlap: 89.8 MB,
/// 37 MiB; zstd's defaults: 91.1 MB, 62 MiB (the zstd CLI's archive of the
/// same stream: 91.7 MB). Fewer, larger jobs also spend less time setting up
/// match tables per job.
const JOB_SIZE: u32 = 4 << 20;

/// Each job starts with the whole window of data before it in its tables
/// (overlap = window >> (9 - OVERLAP_LOG)), so job boundaries cost almost
/// no compression.
const OVERLAP_LOG: u32 = 9;

/// Default worker count: the available cores, at most 4.
pub fn default_threads() -> u32 {
    std::thread::available_parallelism()
        .map(|n| n.get() as u32)
        .unwrap_or(1)
        .clamp(1, MAX_DEFAULT_THREADS)
}

/// True when `head` starts with the zstd magic.
pub fn is_zstd(head: &[u8]) -> bool {
    head.len() >= 4 && head[..4] == ZSTD_MAGIC
}

/// A zstd encoder over `out` with a content checksum (so corruption in
/// transit is caught on import) and `threads` workers (0 = in the caller's
/// thread).
pub fn encoder<W: Write>(
    out: W,
    level: i32,
    threads: u32,
) -> io::Result<zstd::stream::write::Encoder<'static, W>> {
    let mut enc = zstd::stream::write::Encoder::new(out, level)?;
    enc.include_checksum(true)?;
    if threads > 0 {
        enc.multithread(threads)?;
        enc.set_parameter(zstd::stream::raw::CParameter::JobSize(JOB_SIZE))?;
        enc.set_parameter(zstd::stream::raw::CParameter::OverlapSizeLog(OVERLAP_LOG))?;
    }
    Ok(enc)
}

/// A zstd decoder over `input`. The window limit stays at zstd's default
/// (128 MiB): memory stays bounded whatever a hostile frame header claims,
/// and every level we write (≤ 19 without long mode) fits.
pub fn decoder<R: Read>(
    input: R,
) -> io::Result<zstd::stream::read::Decoder<'static, io::BufReader<R>>> {
    zstd::stream::read::Decoder::new(input)
}

/// Check a user-supplied level.
pub fn check_level(level: i32) -> Result<i32, String> {
    let range = zstd::compression_level_range();
    if range.contains(&level) {
        Ok(level)
    } else {
        Err(format!(
            "zstd level {level} is outside {}..={}",
            range.start(),
            range.end()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multithreaded_output_is_one_decodable_frame() {
        let data: Vec<u8> = (0..4_000_000u32).map(|i| (i % 251) as u8).collect();
        let mut enc = encoder(Vec::new(), 3, 2).unwrap();
        enc.write_all(&data).unwrap();
        let compressed = enc.finish().unwrap();
        assert!(is_zstd(&compressed));
        let mut out = Vec::new();
        decoder(&compressed[..])
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        assert!(out == data);
    }

    #[test]
    fn truncated_frame_is_an_error_not_a_short_read() {
        let mut enc = encoder(Vec::new(), 3, 0).unwrap();
        enc.write_all(&[1u8; 100_000]).unwrap();
        let compressed = enc.finish().unwrap();
        let cut = &compressed[..compressed.len() / 2];
        let mut out = Vec::new();
        assert!(decoder(cut).unwrap().read_to_end(&mut out).is_err());
    }

    #[test]
    fn level_range_is_checked() {
        assert!(check_level(3).is_ok());
        assert!(check_level(99).is_err());
    }
}
