//! The member transport digest of microsandbox v0.6.14 archives,
//! `msb-archive-member-blake3-v1` (vectors/msb-0.6.14/SPEC-NOTES.md §10):
//!
//! `BLAKE3("msb-archive-member-blake3-v1\0" ‖ LE64(len kind) ‖ kind ‖
//! LE64(len path) ‖ path ‖ LE64(encoded) ‖ LE64(apparent) ‖ LE64(slots) ‖
//! (LE64 offset ‖ LE64 numbytes)* ‖ stored bytes)`, printed `blake3:<hex>`.
//!
//! The slots are the sparse map exactly as the header carries it, the
//! `(L, 0)` terminator included when present; dense members have none. So
//! the digest binds the encoding, not only the content: GNU tar's re-pack of
//! the same file (which adds a terminator) does not match (hostile/h27).
//! The prefix is known from the header, so the data is hashed as it streams.
use super::sparse_entry::SparseRun;

/// The algorithm name written in `transport_integrity.algorithm` and the
/// inventory's `requires`.
pub const ALGORITHM: &str = "msb-archive-member-blake3-v1";

const DOMAIN: &[u8] = b"msb-archive-member-blake3-v1\0";

/// Hashes one member: the header fields first, then its stored bytes.
pub struct MemberHasher(blake3::Hasher);

impl MemberHasher {
    /// `slots` empty for a dense member (then `encoded == apparent`).
    pub fn new(kind: &str, path: &str, encoded: u64, apparent: u64, slots: &[SparseRun]) -> Self {
        let mut h = blake3::Hasher::new();
        h.update(DOMAIN);
        for bytes in [kind.as_bytes(), path.as_bytes()] {
            h.update(&(bytes.len() as u64).to_le_bytes());
            h.update(bytes);
        }
        h.update(&encoded.to_le_bytes());
        h.update(&apparent.to_le_bytes());
        h.update(&(slots.len() as u64).to_le_bytes());
        for s in slots {
            h.update(&s.offset.to_le_bytes());
            h.update(&s.len.to_le_bytes());
        }
        MemberHasher(h)
    }

    /// Stored bytes, in archive order (the segment data, without padding).
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    /// `blake3:<64 lowercase hex>`.
    pub fn finish(&self) -> String {
        format!("blake3:{}", self.0.finalize().to_hex())
    }
}

/// The digest of a member held in memory (descriptors, the inventory's peers).
pub fn of_dense(kind: &str, path: &str, data: &[u8]) -> String {
    let len = data.len() as u64;
    let mut h = MemberHasher::new(kind, path, len, len, &[]);
    h.update(data);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_domain_is_the_29_bytes_of_the_spec() {
        assert_eq!(DOMAIN.len(), 29);
        let hex: String = DOMAIN.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "6d73622d617263686976652d6d656d6265722d626c616b65332d763100"
        );
    }

    #[test]
    fn every_field_changes_the_digest() {
        let base = MemberHasher::new("file-payload", "files/a/u", 4, 8, &[]).finish();
        let run = SparseRun { offset: 8, len: 0 };
        for other in [
            MemberHasher::new("snapshot-descriptor", "files/a/u", 4, 8, &[]),
            MemberHasher::new("file-payload", "files/a/v", 4, 8, &[]),
            MemberHasher::new("file-payload", "files/a/u", 5, 8, &[]),
            MemberHasher::new("file-payload", "files/a/u", 4, 9, &[]),
            MemberHasher::new("file-payload", "files/a/u", 4, 8, &[run]),
        ] {
            assert_ne!(other.finish(), base);
        }
    }
}
