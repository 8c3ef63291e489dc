//! The sparse-file vectors (`tests/vectors/msb-0.6.3/sparse/`): each JSON file
//! describes a file (logical size and data extents), and `digests.tsv` /
//! `merkle.tsv` record its digests under each algorithm.
#![allow(dead_code)]
use microsnap::integrity::Algorithm;
use serde_json::Value;
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

/// The v0.6.3 set, which holds the sparse vectors.
pub use crate::support::vector_sets::MSB_V063 as VECTORS;

pub struct Vector {
    pub name: String,
    pub size: u64,
    /// (offset, bytes) for each described extent, in file order.
    pub extents: Vec<(u64, Vec<u8>)>,
}

pub fn decode_hex(s: &str) -> Vec<u8> {
    assert!(s.len() % 2 == 0, "odd hex length: {s}");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digit"))
        .collect()
}

pub fn load_vector(path: &Path) -> Vector {
    let v: Value = serde_json::from_slice(&fs::read(path).unwrap()).unwrap();
    let mut extents: Vec<(u64, Vec<u8>)> = v["extents"]
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
    extents.sort_by_key(|(offset, _)| *offset);
    Vector {
        name: v["name"].as_str().expect("name").to_string(),
        size: v["logical_size"].as_u64().expect("logical_size"),
        extents,
    }
}

/// Rows of a TSV keyed by its `name` column, each row as column -> value.
pub fn load_tsv(path: &Path) -> HashMap<String, HashMap<String, String>> {
    load_tsv_by(path, "name")
}

/// Rows of a TSV keyed by its `key` column, each row as column -> value.
pub fn load_tsv_by(path: &Path, key: &str) -> HashMap<String, HashMap<String, String>> {
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
            (row[key].clone(), row)
        })
        .collect()
}

pub fn vector_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(Path::new(VECTORS).join("sparse"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
}

/// Every vector with the digest recorded for it under each algorithm.
pub fn vectors_with_digests() -> Vec<(Vector, Vec<(Algorithm, String)>)> {
    let digests = load_tsv(&Path::new(VECTORS).join("sparse/digests.tsv"));
    let merkle = load_tsv(&Path::new(VECTORS).join("sparse/merkle.tsv"));
    let files = vector_files();
    assert!(
        files.len() >= 3,
        "expected the sparse vectors, found {files:?}"
    );
    files
        .iter()
        .map(|file| {
            let v = load_vector(file);
            let recorded = &digests[&v.name];
            assert_eq!(recorded["logical_size"], v.size.to_string(), "{}", v.name);
            let expected = vec![
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
            (v, expected)
        })
        .collect()
}
