//! Every `shared/vectors/sparse/*.json` file, built both sparse and dense,
//! must give the digests recorded in `digests.tsv` (sha256 and
//! msb-sparse-sha256-v1, checked against microsandbox v0.6.3) and
//! `merkle.tsv` (microsnap-merkle-sha256-v1).
use microsnap::integrity::{compute, Algorithm};
use microsnap::progress::Monitor;
use microsnap::sparse::{allocated_bytes, data_extents};
use serde_json::Value;
use std::collections::HashMap;
use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/vectors");

struct Vector {
    name: String,
    size: u64,
    /// (offset, bytes) for each described extent.
    extents: Vec<(u64, Vec<u8>)>,
}

fn decode_hex(s: &str) -> Vec<u8> {
    assert!(s.len() % 2 == 0, "odd hex length: {s}");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digit"))
        .collect()
}

fn load_vector(path: &Path) -> Vector {
    let v: Value = serde_json::from_slice(&fs::read(path).unwrap()).unwrap();
    let extents = v["extents"]
        .as_array()
        .expect("extents array")
        .iter()
        .map(|e| {
            let offset = e["offset"].as_u64().expect("offset");
            let bytes = if let Some(hex) = e["data_hex"].as_str() {
                decode_hex(hex)
            } else {
                let byte = decode_hex(e["repeat_byte"].as_str().expect("repeat_byte"));
                assert_eq!(byte.len(), 1);
                vec![byte[0]; e["length"].as_u64().expect("length") as usize]
            };
            (offset, bytes)
        })
        .collect();
    Vector {
        name: v["name"].as_str().expect("name").to_string(),
        size: v["logical_size"].as_u64().expect("logical_size"),
        extents,
    }
}

/// Rows of a TSV keyed by its `name` column, each row as column -> value.
fn load_tsv(path: &Path) -> HashMap<String, HashMap<String, String>> {
    let text = fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header").split('\t').collect();
    lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let row: HashMap<String, String> = header
                .iter()
                .zip(l.split('\t'))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            (row["name"].clone(), row)
        })
        .collect()
}

/// set_len, then write only the described extents: holes everywhere else.
fn build_sparse(v: &Vector, path: &Path) {
    let f = File::create(path).unwrap();
    f.set_len(v.size).unwrap();
    for (offset, bytes) in &v.extents {
        f.write_all_at(bytes, *offset).unwrap();
    }
    f.sync_all().unwrap();
}

/// Write every byte, zeros included, so nothing is a hole.
fn build_dense(v: &Vector, path: &Path) {
    let f = File::create(path).unwrap();
    let chunk = vec![0u8; 1 << 20];
    let mut at = 0;
    while at < v.size {
        let n = (v.size - at).min(chunk.len() as u64) as usize;
        f.write_all_at(&chunk[..n], at).unwrap();
        at += n as u64;
    }
    for (offset, bytes) in &v.extents {
        f.write_all_at(bytes, *offset).unwrap();
    }
    f.sync_all().unwrap();
}

fn vector_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(Path::new(VECTORS).join("sparse"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
}

#[test]
fn sparse_vectors_match_recorded_digests_sparse_and_dense() {
    let digests = load_tsv(&Path::new(VECTORS).join("sparse/digests.tsv"));
    let merkle = load_tsv(&Path::new(VECTORS).join("sparse/merkle.tsv"));
    let files = vector_files();
    assert!(
        files.len() >= 3,
        "expected the sparse vectors, found {files:?}"
    );
    let dir = tempfile::tempdir().unwrap();
    let monitor = Monitor::none();
    for file in files {
        let v = load_vector(&file);
        let recorded = &digests[&v.name];
        assert_eq!(recorded["logical_size"], v.size.to_string(), "{}", v.name);
        let expected = [
            (Algorithm::Sha256, recorded["plain_sha256"].clone()),
            (
                Algorithm::MsbSparseSha256V1,
                recorded["msb_sparse_sha256_v1"].clone(),
            ),
            (
                Algorithm::MerkleSha256V1,
                merkle[&v.name]["microsnap_merkle_sha256_v1"].clone(),
            ),
        ];

        let sparse = dir.path().join(format!("{}.sparse", v.name));
        let dense = dir.path().join(format!("{}.dense", v.name));
        build_sparse(&v, &sparse);
        build_dense(&v, &dense);

        // The sparse build must really have holes, or this test would not
        // exercise the hole path at all.
        let described: u64 = v.extents.iter().map(|(_, b)| b.len() as u64).sum();
        let slack = 4096 * 2 * (v.extents.len() as u64 + 1);
        let allocated = allocated_bytes(&sparse).unwrap();
        assert!(
            allocated <= described + slack,
            "{}: sparse file allocates {allocated} bytes for {described} described",
            v.name
        );
        let extents = data_extents(&File::open(&sparse).unwrap()).unwrap();
        let extent_bytes: u64 = extents.iter().map(|e| e.len).sum();
        assert!(extent_bytes <= described + slack, "{}: {extents:?}", v.name);
        assert!(
            allocated_bytes(&dense).unwrap() >= v.size,
            "{}: dense file has holes",
            v.name
        );

        for (algorithm, want) in &expected {
            for path in [&sparse, &dense] {
                let got = compute(path, *algorithm, &monitor).unwrap();
                assert_eq!(&got, want, "{} {algorithm} {}", v.name, path.display());
            }
        }
        fs::remove_file(&dense).unwrap();
    }
}
