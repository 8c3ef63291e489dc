//! Upper image detection and the qcow2 header checks, on real files: qcow2
//! headers built byte by byte here, and by `qemu-img` when the machine has it.
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Command;

use microsnap::disk::{check_upper, detect_format, qcow2_virtual_size, QCOW2_MAGIC};
use microsnap::error::ErrorCode;
use microsnap::manifest::DiskFormat;

const GIB: u64 = 1 << 30;

/// The fields of a qcow2 header we vary; the rest get realistic values.
struct Header {
    version: u32,
    backing_file_offset: u64,
    backing_file_size: u32,
    virtual_size: u64,
    incompatible_features: u64,
}

impl Default for Header {
    fn default() -> Self {
        Header {
            version: 3,
            backing_file_offset: 0,
            backing_file_size: 0,
            virtual_size: 4 * GIB,
            incompatible_features: 0,
        }
    }
}

impl Header {
    /// The fixed header as qemu lays it out (big-endian throughout).
    fn bytes(&self) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&QCOW2_MAGIC);
        b.extend_from_slice(&self.version.to_be_bytes());
        b.extend_from_slice(&self.backing_file_offset.to_be_bytes());
        b.extend_from_slice(&self.backing_file_size.to_be_bytes());
        b.extend_from_slice(&16u32.to_be_bytes()); // cluster_bits: 64 KiB clusters
        b.extend_from_slice(&self.virtual_size.to_be_bytes());
        b.extend_from_slice(&0u32.to_be_bytes()); // crypt_method
        b.extend_from_slice(&8u32.to_be_bytes()); // l1_size
        b.extend_from_slice(&0x30000u64.to_be_bytes()); // l1_table_offset
        b.extend_from_slice(&0x10000u64.to_be_bytes()); // refcount_table_offset
        b.extend_from_slice(&1u32.to_be_bytes()); // refcount_table_clusters
        b.extend_from_slice(&0u32.to_be_bytes()); // nb_snapshots
        b.extend_from_slice(&0u64.to_be_bytes()); // snapshots_offset
        assert_eq!(b.len(), 72);
        if self.version >= 3 {
            b.extend_from_slice(&self.incompatible_features.to_be_bytes());
            b.extend_from_slice(&0u64.to_be_bytes()); // compatible_features
            b.extend_from_slice(&0u64.to_be_bytes()); // autoclear_features
            b.extend_from_slice(&4u32.to_be_bytes()); // refcount_order
            b.extend_from_slice(&104u32.to_be_bytes()); // header_length
            assert_eq!(b.len(), 104);
        }
        b
    }
}

/// A sparse 192 KiB image file starting with `head`, plus `tail` at `tail_at`.
fn image(dir: &Path, name: &str, head: &[u8], tail_at: u64, tail: &[u8]) -> PathBuf {
    use std::os::unix::fs::FileExt;
    let path = dir.join(name);
    let file = File::create(&path).unwrap();
    file.set_len(192 * 1024).unwrap();
    file.write_all_at(head, 0).unwrap();
    file.write_all_at(tail, tail_at).unwrap();
    path
}

fn code_and_message(err: microsnap::error::Error) -> (ErrorCode, String) {
    (err.code(), err.to_string())
}

#[test]
fn detects_qcow2_by_magic_and_everything_else_as_raw() {
    let dir = tempfile::tempdir().unwrap();
    let qcow2 = image(dir.path(), "a.qcow2", &Header::default().bytes(), 0, &[]);
    assert_eq!(detect_format(&qcow2).unwrap(), DiskFormat::Qcow2);

    let ext4_like = image(dir.path(), "upper.ext4", &[0; 1024], 1080, &[0x53, 0xef]);
    assert_eq!(detect_format(&ext4_like).unwrap(), DiskFormat::Raw);

    // Shorter than the magic, and a near-miss of it: raw.
    for (name, bytes) in [("empty", &b""[..]), ("short", b"QFI"), ("near", b"QFI\xfa")] {
        let path = dir.path().join(name);
        fs::write(&path, bytes).unwrap();
        assert_eq!(detect_format(&path).unwrap(), DiskFormat::Raw, "{name}");
    }
}

#[test]
fn missing_file_is_an_io_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.ext4");
    for err in [
        detect_format(&missing).unwrap_err(),
        check_upper(&missing, DiskFormat::Raw).unwrap_err(),
        qcow2_virtual_size(&missing).unwrap_err(),
    ] {
        let (code, msg) = code_and_message(err);
        assert_eq!(code, ErrorCode::Io);
        assert!(msg.contains("nope.ext4"), "{msg}");
    }
}

#[test]
fn declared_format_must_match_the_magic() {
    let dir = tempfile::tempdir().unwrap();
    let qcow2 = image(
        dir.path(),
        "upper.qcow2",
        &Header::default().bytes(),
        0,
        &[],
    );
    let raw = image(dir.path(), "upper.ext4", b"not a qcow2", 0, &[]);

    check_upper(&qcow2, DiskFormat::Qcow2).unwrap();
    check_upper(&raw, DiskFormat::Raw).unwrap();

    let (code, msg) = code_and_message(check_upper(&qcow2, DiskFormat::Raw).unwrap_err());
    assert_eq!(code, ErrorCode::InvalidManifest);
    assert!(msg.contains("raw") && msg.contains("upper.qcow2"), "{msg}");

    let (code, msg) = code_and_message(check_upper(&raw, DiskFormat::Qcow2).unwrap_err());
    assert_eq!(code, ErrorCode::InvalidManifest);
    assert!(msg.contains("qcow2") && msg.contains("upper.ext4"), "{msg}");
}

#[test]
fn qcow2_with_a_backing_file_is_unsupported() {
    let dir = tempfile::tempdir().unwrap();
    let name = b"/etc/shadow";
    let header = Header {
        backing_file_offset: 0x200,
        backing_file_size: name.len() as u32,
        ..Header::default()
    };
    let path = image(dir.path(), "backed.qcow2", &header.bytes(), 0x200, name);
    let (code, msg) = code_and_message(check_upper(&path, DiskFormat::Qcow2).unwrap_err());
    assert_eq!(code, ErrorCode::Unsupported);
    assert!(
        msg.contains("backing file") && msg.contains("/etc/shadow"),
        "{msg}"
    );

    // Even with a nonsense name length, the offset alone is enough to refuse.
    let header = Header {
        backing_file_offset: 1 << 40,
        backing_file_size: u32::MAX,
        version: 2,
        ..Header::default()
    };
    let path = image(dir.path(), "backed-v2.qcow2", &header.bytes(), 0, &[]);
    let (code, msg) = code_and_message(check_upper(&path, DiskFormat::Qcow2).unwrap_err());
    assert_eq!(code, ErrorCode::Unsupported);
    assert!(msg.contains("backing file"), "{msg}");
}

#[test]
fn qcow2_with_an_external_data_file_is_unsupported() {
    let dir = tempfile::tempdir().unwrap();
    let header = Header {
        incompatible_features: 1 << 2,
        ..Header::default()
    };
    let path = image(dir.path(), "data-file.qcow2", &header.bytes(), 0, &[]);
    let (code, msg) = code_and_message(check_upper(&path, DiskFormat::Qcow2).unwrap_err());
    assert_eq!(code, ErrorCode::Unsupported);
    assert!(msg.contains("external data file"), "{msg}");

    // Other incompatible bits (dirty, corrupt...) are not ours to judge here.
    let header = Header {
        incompatible_features: 1,
        ..Header::default()
    };
    let path = image(dir.path(), "dirty.qcow2", &header.bytes(), 0, &[]);
    check_upper(&path, DiskFormat::Qcow2).unwrap();
}

#[test]
fn truncated_or_unknown_qcow2_headers_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let v3 = Header::default().bytes();
    for (name, len) in [("magic-only", 4), ("v2-short", 71), ("v3-short", 100)] {
        let path = dir.path().join(name);
        fs::write(&path, &v3[..len]).unwrap();
        let (code, msg) = code_and_message(check_upper(&path, DiskFormat::Qcow2).unwrap_err());
        assert_eq!(code, ErrorCode::InvalidManifest, "{name}");
        assert!(
            msg.contains("truncated header") && msg.contains(name),
            "{msg}"
        );
        let (code, _) = code_and_message(qcow2_virtual_size(&path).unwrap_err());
        assert_eq!(code, ErrorCode::InvalidManifest, "{name}");
    }

    // A v2 header is complete at 72 bytes.
    let v2 = Header {
        version: 2,
        ..Header::default()
    };
    let path = dir.path().join("v2-exact");
    fs::write(&path, v2.bytes()).unwrap();
    check_upper(&path, DiskFormat::Qcow2).unwrap();

    // Version 1 (old qcow) shares the magic but not the layout.
    let v1 = Header {
        version: 1,
        ..Header::default()
    };
    let path = image(dir.path(), "v1.qcow", &v1.bytes(), 0, &[]);
    let (code, msg) = code_and_message(check_upper(&path, DiskFormat::Qcow2).unwrap_err());
    assert_eq!(code, ErrorCode::Unsupported);
    assert!(msg.contains("version 1"), "{msg}");
}

#[test]
fn reads_the_virtual_size() {
    let dir = tempfile::tempdir().unwrap();
    for size in [0, 4 * GIB, u64::MAX - 1] {
        let header = Header {
            virtual_size: size,
            ..Header::default()
        };
        let path = image(dir.path(), "sized.qcow2", &header.bytes(), 0, &[]);
        assert_eq!(qcow2_virtual_size(&path).unwrap(), size);
    }
    let raw = image(dir.path(), "raw.ext4", b"raw", 0, &[]);
    let (code, msg) = code_and_message(qcow2_virtual_size(&raw).unwrap_err());
    assert_eq!(code, ErrorCode::InvalidManifest);
    assert!(msg.contains("not a qcow2"), "{msg}");
}

/// Cross-check against qemu's own writer when it is installed.
#[test]
fn agrees_with_qemu_img_when_available() {
    let Ok(probe) = Command::new("qemu-img").arg("--version").output() else {
        eprintln!("qemu-img not installed; skipping");
        return;
    };
    assert!(probe.status.success());
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base.qcow2");
    let child = dir.path().join("child.qcow2");
    let run = |args: &[&str]| {
        let status = Command::new("qemu-img").args(args).status().unwrap();
        assert!(status.success(), "qemu-img {args:?}");
    };
    run(&["create", "-q", "-f", "qcow2", base.to_str().unwrap(), "3G"]);
    run(&[
        "create",
        "-q",
        "-f",
        "qcow2",
        "-F",
        "qcow2",
        "-b",
        base.to_str().unwrap(),
        child.to_str().unwrap(),
    ]);
    assert_eq!(detect_format(&base).unwrap(), DiskFormat::Qcow2);
    assert_eq!(qcow2_virtual_size(&base).unwrap(), 3 * GIB);
    check_upper(&base, DiskFormat::Qcow2).unwrap();
    let (code, msg) = code_and_message(check_upper(&child, DiskFormat::Qcow2).unwrap_err());
    assert_eq!(code, ErrorCode::Unsupported);
    assert!(msg.contains("base.qcow2"), "{msg}");

    let data_file = dir.path().join("data.raw");
    let with_data_file = dir.path().join("external.qcow2");
    let option = format!("data_file={}", data_file.display());
    run(&[
        "create",
        "-q",
        "-f",
        "qcow2",
        "-o",
        &option,
        with_data_file.to_str().unwrap(),
        "1M",
    ]);
    let (code, msg) =
        code_and_message(check_upper(&with_data_file, DiskFormat::Qcow2).unwrap_err());
    assert_eq!(code, ErrorCode::Unsupported);
    assert!(msg.contains("external data file"), "{msg}");

    let raw = dir.path().join("raw.img");
    run(&["create", "-q", "-f", "raw", raw.to_str().unwrap(), "1M"]);
    assert_eq!(detect_format(&raw).unwrap(), DiskFormat::Raw);
    check_upper(&raw, DiskFormat::Raw).unwrap();
    let (code, _) = code_and_message(check_upper(&raw, DiskFormat::Qcow2).unwrap_err());
    assert_eq!(code, ErrorCode::InvalidManifest);
}
