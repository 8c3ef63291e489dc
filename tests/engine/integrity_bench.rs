//! Throughput benchmark, run by hand (it writes 5 GiB of files):
//!
//!     cargo test --release --test engine -- --ignored --nocapture integrity_bench::
//!
//! Prints merkle vs plain sha256 vs `openssl dgst -sha256` on a 1 GiB dense
//! random file, and merkle vs msb-sparse on a 4 GiB file holding 64 MiB of
//! data. It prints ratios and asserts no timings: machines differ.
use microsnap::integrity::{compute, Algorithm};
use microsnap::progress::Monitor;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

fn fill_random(buf: &mut [u8], seed: &mut u64) {
    for chunk in buf.chunks_exact_mut(8) {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        chunk.copy_from_slice(&seed.to_le_bytes());
    }
}

fn write_random(file: &File, offset: u64, len: u64, seed: &mut u64) {
    let mut buf = vec![0u8; (8 * MIB) as usize];
    let mut at = 0;
    while at < len {
        let n = (len - at).min(buf.len() as u64) as usize;
        fill_random(&mut buf[..n], seed);
        file.write_all_at(&buf[..n], offset + at).unwrap();
        at += n as u64;
    }
}

/// Best of three, so the page cache is warm for every contender.
fn best_of_three(mut f: impl FnMut()) -> Duration {
    (0..3)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .min()
        .unwrap()
}

fn rate(bytes: u64, d: Duration) -> String {
    format!(
        "{:8.3} s  {:7.0} MiB/s",
        d.as_secs_f64(),
        bytes as f64 / MIB as f64 / d.as_secs_f64()
    )
}

fn time_algorithm(path: &Path, algorithm: Algorithm) -> Duration {
    best_of_three(|| {
        compute(path, algorithm, &Monitor::none()).unwrap();
    })
}

#[test]
#[ignore = "benchmark: writes 5 GiB; run by hand with --release --ignored --nocapture"]
fn merkle_throughput() {
    let dir = tempfile::tempdir().unwrap();
    let mut seed = 0x1234_5678_9abc_def1u64;

    let dense = dir.path().join("dense-1g");
    let f = File::create(&dense).unwrap();
    write_random(&f, 0, GIB, &mut seed);
    f.sync_all().unwrap();
    drop(f);
    let merkle = time_algorithm(&dense, Algorithm::MerkleSha256V1);
    let plain = time_algorithm(&dense, Algorithm::Sha256);
    let openssl = best_of_three(|| {
        let out = Command::new("openssl")
            .arg("dgst")
            .arg("-sha256")
            .arg(&dense)
            .output()
            .expect("run openssl");
        assert!(out.status.success());
    });
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("1 GiB dense random file ({cores} cores available):");
    println!("  merkle (parallel)      {}", rate(GIB, merkle));
    println!("  sha256 (this crate)    {}", rate(GIB, plain));
    println!("  openssl dgst -sha256   {}", rate(GIB, openssl));
    println!(
        "  merkle / openssl speed ratio: {:.2}x",
        openssl.as_secs_f64() / merkle.as_secs_f64()
    );
    std::fs::remove_file(&dense).unwrap();

    let sparse = dir.path().join("sparse-4g");
    let f = File::create(&sparse).unwrap();
    f.set_len(4 * GIB).unwrap();
    // 64 MiB of data: 16 extents of 4 MiB, one every 256 MiB, some unaligned.
    for i in 0..16u64 {
        write_random(&f, i * 256 * MIB + (i % 3) * 12345, 4 * MIB, &mut seed);
    }
    f.sync_all().unwrap();
    drop(f);
    let merkle = time_algorithm(&sparse, Algorithm::MerkleSha256V1);
    let msb = time_algorithm(&sparse, Algorithm::MsbSparseSha256V1);
    println!("4 GiB sparse file, 64 MiB data:");
    println!("  merkle                 {:8.3} s", merkle.as_secs_f64());
    println!("  msb-sparse-sha256-v1   {:8.3} s", msb.as_secs_f64());
    println!(
        "  msb-sparse / merkle time ratio: {:.1}x",
        msb.as_secs_f64() / merkle.as_secs_f64()
    );
}
