#![allow(dead_code)]
//! The hostile-archive corpus: how each file of `tests/fixtures/hostile/` is
//! built, and what import must say about it. Tar bytes are assembled here by
//! hand (not with the crate's writer) so the corpus does not share bugs with
//! the code it tests. `archive_hostile::corpus_files_are_up_to_date` checks
//! the committed files equal this generator's output; run
//! `MICROSNAP_REGENERATE_CORPUS=1 cargo test --test archive_hostile` to rewrite them.
use microsnap::integrity::{self, Algorithm};
use microsnap::manifest::{DiskFormat, ImagePin, Manifest, Upper, UpperIntegrity};
use microsnap::progress::Monitor;
use std::collections::BTreeMap;
use std::io::Write;

pub struct Case {
    pub file: &'static str,
    /// Expected error code name.
    pub code: &'static str,
    /// A piece of the message: normally the offending entry's name.
    pub says: String,
    pub bytes: Vec<u8>,
}

/// The directory name the collision case uses; the replay test puts a
/// different snapshot there first.
pub const COLLIDING_DIR: &str = "colliding-name";

fn octal(field: &mut [u8], v: u64) {
    let digits = field.len() - 1;
    let s = format!("{v:0digits$o}");
    field[..digits].copy_from_slice(s.as_bytes());
    field[digits] = 0;
}

/// One GNU header; `tweak` may edit it before the checksum is computed.
fn header(name: &[u8], flag: u8, size: u64, tweak: impl FnOnce(&mut [u8; 512])) -> [u8; 512] {
    let mut h = [0u8; 512];
    h[..name.len().min(100)].copy_from_slice(&name[..name.len().min(100)]);
    octal(&mut h[100..108], 0o100644);
    octal(&mut h[108..116], 0);
    octal(&mut h[116..124], 0);
    octal(&mut h[124..136], size);
    octal(&mut h[136..148], 1777636800);
    h[156] = flag;
    h[257..265].copy_from_slice(b"ustar  \0");
    tweak(&mut h);
    h[148..156].fill(b' ');
    let sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
    octal(&mut h[148..155], sum);
    h[155] = b' ';
    h
}

#[derive(Default, Clone)]
pub struct Tar(pub Vec<u8>);

impl Tar {
    fn raw(mut self, block: [u8; 512], data: &[u8]) -> Self {
        self.0.extend_from_slice(&block);
        self.0.extend_from_slice(data);
        self.0.resize(self.0.len().div_ceil(512) * 512, 0);
        self
    }
    fn file(self, name: &str, data: &[u8]) -> Self {
        self.raw(
            header(name.as_bytes(), b'0', data.len() as u64, |_| {}),
            data,
        )
    }
    fn typed(self, name: &str, flag: u8) -> Self {
        self.raw(
            header(name.as_bytes(), flag, 0, |h| {
                h[157..167].copy_from_slice(b"/etc/passw")
            }),
            &[],
        )
    }
    fn end(mut self) -> Vec<u8> {
        self.0.extend_from_slice(&[0u8; 1024]);
        self.0
    }
}

fn zst(tar: &[u8]) -> Vec<u8> {
    zstd::encode_all(tar, 3).unwrap()
}

/// An upper of 64 KiB: some data, the rest zeros.
pub fn upper_bytes() -> Vec<u8> {
    let mut u = vec![0u8; 65536];
    u[4096..4096 + 11].copy_from_slice(b"hello world");
    u[40000] = 7;
    u
}

fn digest_of(bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("u");
    std::fs::write(&p, bytes).unwrap();
    integrity::compute(&p, Algorithm::MerkleSha256V1, &Monitor::none()).unwrap()
}

pub fn manifest(size: u64, integrity: Option<String>, label: &str) -> Manifest {
    Manifest {
        schema: 1,
        format: DiskFormat::Raw,
        fstype: "ext4".into(),
        image: ImagePin {
            reference: "alpine:3.20".into(),
            manifest_digest: format!("sha256:{}", "cd".repeat(32)),
        },
        parent: None,
        created_at: "2026-05-01T12:00:00+00:00".into(),
        labels: BTreeMap::from([("case".to_string(), label.to_string())]),
        upper: Upper {
            file: "upper.ext4".into(),
            size_bytes: size,
            integrity: integrity.map(|digest| UpperIntegrity {
                algorithm: Algorithm::MerkleSha256V1.name().into(),
                digest,
            }),
        },
        source_sandbox: None,
    }
}

fn prefix(m: &Manifest) -> String {
    microsnap::manifest::digest_prefix(&m.digest())
}

/// A valid one-snapshot archive (the base the cases break).
pub fn valid_tar(label: &str) -> (String, Vec<u8>, Vec<u8>) {
    let up = upper_bytes();
    let m = manifest(up.len() as u64, Some(digest_of(&up)), label);
    (prefix(&m), m.canonical_bytes(), up)
}

/// GNU sparse header with the given runs (offset, len) and real size.
fn sparse_header(name: &str, stored: u64, real: u64, runs: &[(u64, u64)]) -> [u8; 512] {
    header(name.as_bytes(), b'S', stored, |h| {
        for (i, (o, l)) in runs.iter().enumerate().take(4) {
            let at = 386 + i * 24;
            octal(&mut h[at..at + 12], *o);
            octal(&mut h[at + 12..at + 24], *l);
        }
        if real < (1 << 33) {
            octal(&mut h[483..495], real);
        } else {
            h[483..495].fill(0);
            h[483] = 0x80;
            h[487..495].copy_from_slice(&real.to_be_bytes());
        }
    })
}

pub fn cases() -> Vec<Case> {
    let (p, m, up) = valid_tar("base");
    let mf = |d: &str| format!("{d}/manifest.json");
    let uf = |d: &str| format!("{d}/upper.ext4");
    let ok = || Tar::default().file(&mf(&p), &m).file(&uf(&p), &up);
    let mut v = Vec::new();
    let mut add = |file, code, says: &str, bytes| {
        v.push(Case {
            file,
            code,
            says: says.to_string(),
            bytes,
        })
    };

    add(
        "c01-path-traversal.tar",
        "invalid_archive",
        "../../escape.txt",
        ok().file(&format!("{p}/../../escape.txt"), b"x").end(),
    );
    add(
        "c02-absolute-path.tar",
        "invalid_archive",
        "/tmp/evil/manifest.json",
        Tar::default().file("/tmp/evil/manifest.json", &m).end(),
    );
    add(
        "c03-dot-slash-prefix.tar",
        "invalid_archive",
        "./",
        Tar::default().file(&format!("./{}", mf(&p)), &m).end(),
    );
    add(
        "c04-symlink.tar",
        "invalid_archive",
        "symlink",
        Tar::default().file(&mf(&p), &m).typed(&uf(&p), b'2').end(),
    );
    add(
        "c05-hardlink.tar",
        "invalid_archive",
        "hard link",
        Tar::default().file(&mf(&p), &m).typed(&uf(&p), b'1').end(),
    );
    add(
        "c06-char-device.tar",
        "invalid_archive",
        "character device",
        Tar::default().file(&mf(&p), &m).typed(&uf(&p), b'3').end(),
    );
    add(
        "c07-block-device.tar",
        "invalid_archive",
        "block device",
        Tar::default().file(&mf(&p), &m).typed(&uf(&p), b'4').end(),
    );
    add(
        "c08-fifo.tar",
        "invalid_archive",
        "FIFO",
        Tar::default().file(&mf(&p), &m).typed(&uf(&p), b'6').end(),
    );
    add(
        "c09-duplicate-manifest.tar",
        "invalid_archive",
        "duplicate archive entry",
        ok().file(&mf(&p), &m).end(),
    );
    add(
        "c10-duplicate-upper.tar",
        "invalid_archive",
        "duplicate archive entry",
        ok().file(&uf(&p), &up).end(),
    );
    add(
        "c11-three-components.tar",
        "invalid_archive",
        "sub/deeper",
        ok().file(&format!("{p}/sub/deeper"), b"x").end(),
    );
    add(
        "c12-top-level-file.tar",
        "invalid_archive",
        "stray.txt",
        ok().file("stray.txt", b"x").end(),
    );
    add(
        "c13-extra-file-in-snapshot.tar",
        "invalid_archive",
        "notes.txt",
        ok().file(&format!("{p}/notes.txt"), b"x").end(),
    );
    {
        let mut mm = manifest(up.len() as u64, None, "missing-upper");
        mm.upper.file = "upper-missing.ext4".into();
        let d = prefix(&mm);
        add(
            "c14-manifest-names-missing-upper.tar",
            "invalid_archive",
            "upper-missing.ext4",
            Tar::default().file(&mf(&d), &mm.canonical_bytes()).end(),
        );
    }
    {
        let mm = manifest(up.len() as u64 * 2, None, "wrong-size");
        let d = prefix(&mm);
        add(
            "c15-wrong-upper-size.tar",
            "invalid_archive",
            "upper.ext4",
            Tar::default()
                .file(&mf(&d), &mm.canonical_bytes())
                .file(&uf(&d), &up)
                .end(),
        );
    }
    {
        let mut bad = up.clone();
        bad[4096] = b'H';
        add(
            "c16-integrity-mismatch.tar.zst",
            "integrity_mismatch",
            "upper.ext4",
            zst(&Tar::default().file(&mf(&p), &m).file(&uf(&p), &bad).end()),
        );
    }
    {
        // Same directory name, label edited: digest no longer matches the name.
        let edited = String::from_utf8(m.clone())
            .unwrap()
            .replace("\"base\"", "\"evil\"");
        add(
            "c17-manifest-edited-after-export.tar",
            "invalid_archive",
            "changed after export",
            Tar::default()
                .file(&mf(&p), edited.as_bytes())
                .file(&uf(&p), &up)
                .end(),
        );
    }
    {
        let mut q = vec![0u8; 65536];
        q[..4].copy_from_slice(b"QFI\xfb");
        q[4..8].copy_from_slice(&3u32.to_be_bytes());
        q[8..16].copy_from_slice(&512u64.to_be_bytes()); // backing file name offset
        q[16..20].copy_from_slice(&9u32.to_be_bytes()); // backing file name size
        q[20..24].copy_from_slice(&16u32.to_be_bytes()); // cluster bits
        q[24..32].copy_from_slice(&(1u64 << 30).to_be_bytes()); // virtual size
        q[512..521].copy_from_slice(b"/base.img");
        let mut mm = manifest(q.len() as u64, None, "qcow2-backing");
        mm.format = DiskFormat::Qcow2;
        mm.upper.file = "upper.qcow2".into();
        let d = prefix(&mm);
        add(
            "c18-qcow2-backing-file.tar",
            "invalid_archive",
            &d,
            Tar::default()
                .file(&mf(&d), &mm.canonical_bytes())
                .file(&format!("{d}/upper.qcow2"), &q)
                .end(),
        );
    }
    {
        let full = ok().end();
        add(
            "c19-truncated-tar.tar",
            "invalid_archive",
            "truncated",
            full[..full.len() - 1024 - 40000].to_vec(),
        );
        let z = zst(&full);
        add(
            "c20-truncated-zstd.tar.zst",
            "invalid_archive",
            "compressed stream",
            z[..z.len() / 2].to_vec(),
        );
        // Set the frame header's reserved bit: every decoder must refuse it.
        let mut corrupt = z.clone();
        corrupt[4] |= 0x08;
        add(
            "c21-corrupt-zstd.tar.zst",
            "invalid_archive",
            "compressed stream",
            corrupt,
        );
    }
    {
        let data = &up[4096..8192];
        add(
            "c22-sparse-map-past-end.tar",
            "invalid_archive",
            "past the end",
            Tar::default()
                .file(&mf(&p), &m)
                .raw(
                    sparse_header(&uf(&p), 4096, 65536, &[(65536 - 2048, 4096)]),
                    data,
                )
                .end(),
        );
        let two = [data, data].concat();
        add(
            "c23-sparse-map-overlaps.tar",
            "invalid_archive",
            "overlaps",
            Tar::default()
                .file(&mf(&p), &m)
                .raw(
                    sparse_header(&uf(&p), 8192, 65536, &[(4096, 4096), (6144, 4096)]),
                    &two,
                )
                .end(),
        );
        add(
            "c24-sparse-real-size-absurd.tar",
            "invalid_archive",
            "limit",
            Tar::default()
                .file(&mf(&p), &m)
                .raw(sparse_header(&uf(&p), 4096, 1 << 50, &[(0, 4096)]), data)
                .end(),
        );
    }
    {
        // Decompression bombs: ~1 GiB of zeros in a few tens of KiB of zstd.
        let bomb_size: u64 = 1 << 30;
        let bomb = |first_manifest: bool| {
            let mut enc = zstd::Encoder::new(Vec::new(), 3).unwrap();
            let mut t = Tar::default();
            if first_manifest {
                t = t.file(&mf(&p), &m);
            }
            t = t.raw(header(uf(&p).as_bytes(), b'0', bomb_size, |_| {}), &[]);
            enc.write_all(&t.0).unwrap();
            let zeros = vec![0u8; 1 << 20];
            for _ in 0..(bomb_size >> 20) {
                enc.write_all(&zeros).unwrap();
            }
            enc.write_all(&[0u8; 1024]).unwrap();
            enc.finish().unwrap()
        };
        add(
            "c25-bomb-upper-larger-than-manifest.tar.zst",
            "invalid_archive",
            "size_bytes",
            bomb(true),
        );
        add(
            "c26-bomb-before-manifest.tar.zst",
            "invalid_archive",
            "before its directory's manifest",
            bomb(false),
        );
    }
    {
        let (_, cm, cu) = valid_tar("collision");
        add(
            "c27-name-collides-with-existing.tar",
            "already_exists",
            COLLIDING_DIR,
            Tar::default()
                .file(&mf(COLLIDING_DIR), &cm)
                .file(&uf(COLLIDING_DIR), &cu)
                .end(),
        );
    }
    {
        let name = [p.as_bytes(), b"/\xff\xfeupper"].concat();
        add(
            "c28-non-utf8-name.tar",
            "invalid_archive",
            "not UTF-8",
            Tar::default()
                .file(&mf(&p), &m)
                .raw(header(&name, b'0', 1, |_| {}), b"x")
                .end(),
        );
    }
    add(
        "c29-zero-byte-file.tar.zst",
        "invalid_archive",
        "empty file",
        Vec::new(),
    );
    add(
        "c30-not-an-archive.tar",
        "invalid_archive",
        "not a tar",
        b"#!/bin/sh\necho this is a shell script, not an archive\n".repeat(20),
    );
    add(
        "c31-gzip-is-not-supported.tar.gz",
        "invalid_archive",
        "not a tar",
        {
            let mut g = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];
            g.extend(std::iter::repeat(0xaa).take(600));
            g
        },
    );
    {
        let mut t = ok().end();
        let second = 512 + m.len().div_ceil(512) * 512; // the upper's header
        t[second + 10] ^= 0x01;
        add(
            "c32-header-checksum-mismatch.tar",
            "invalid_archive",
            "checksum",
            t,
        );
    }
    {
        let big = vec![b' '; (1 << 20) + 10];
        add(
            "c33-oversized-manifest.tar.zst",
            "invalid_archive",
            "limit",
            zst(&Tar::default().file(&mf(&p), &big).end()),
        );
        add(
            "c34-manifest-not-json.tar",
            "invalid_manifest",
            "manifest.json",
            Tar::default().file(&mf(&p), b"{not json").end(),
        );
        add(
            "c35-no-manifest.tar",
            "invalid_archive",
            "no snapshot manifest",
            Tar::default().file(&uf(&p), &up).end(),
        );
        add(
            "c36-directory-without-manifest.tar",
            "invalid_archive",
            "orphan",
            ok().raw(header(b"orphan/", b'5', 0, |_| {}), &[]).end(),
        );
        let (_, m2, _) = valid_tar("base");
        add(
            "c37-same-snapshot-twice.tar",
            "invalid_archive",
            "appears twice",
            ok().file(&mf("second-copy"), &m2)
                .file(&uf("second-copy"), &up)
                .end(),
        );
    }
    {
        let path = format!("{p}/../../pax-escape");
        let rec_body = format!(" path={path}\n");
        let len = rec_body.len() + 2 + usize::from(rec_body.len() + 2 >= 100);
        let record = format!("{len}{rec_body}");
        assert_eq!(record.len(), len);
        add(
            "c38-pax-path-traversal.tar",
            "invalid_archive",
            "pax-escape",
            ok().raw(
                header(b"PaxHeaders/x", b'x', record.len() as u64, |_| {}),
                record.as_bytes(),
            )
            .file("innocent/manifest.json", &m)
            .end(),
        );
    }
    {
        let blob = b"{\"schemaVersion\":2}";
        let wrong = "0".repeat(64);
        add(
            "c39-image-blob-digest-mismatch.tar",
            "integrity_mismatch",
            "oci-image/blobs/sha256/",
            ok().file("oci-image/oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)
                .file(&format!("oci-image/blobs/sha256/{wrong}"), blob)
                .end(),
        );
    }
    add(
        "c40-hidden-directory.tar",
        "invalid_archive",
        ".staging",
        Tar::default().file(".staging/manifest.json", &m).end(),
    );
    {
        let mut mm = manifest(up.len() as u64, None, "trailing-slash");
        mm.upper.file = "upper.ext4/".into();
        let d = prefix(&mm);
        add(
            "c41-upper-name-with-trailing-slash.tar",
            "invalid_archive",
            "upper.ext4",
            Tar::default()
                .file(&mf(&d), &mm.canonical_bytes())
                .file(&uf(&d), &up)
                .end(),
        );
    }
    v
}
