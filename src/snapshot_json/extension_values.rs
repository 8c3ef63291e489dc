//! Extension values (SPEC-NOTES §2): any JSON, held in serde_json's `Value`
//! model, which is what decides their canonical form.
//!
//! * Objects are written with their keys in byte-wise order, at every depth
//!   (arrays keep their order). serde_json's `Map` is a `BTreeMap` unless
//!   its `preserve_order` feature is on (nothing in our dependency graph
//!   turns it on); [`normalize`] sorts explicitly anyway, as microsandbox
//!   does, so the identity would not change if some crate ever enabled it.
//! * Numbers: an integer that fits u64 or i64 stays an integer; anything else
//!   (fraction, exponent, `-0`, an integer beyond 64 bits) is an f64, written
//!   in serde_json's shortest round-trip form (`1.0`, `-0.0`, `1e+16`, `0.00001`).
//!
//! **Non-fixed-point floats (nc14): we match microsandbox.** serde_json
//! without `float_roundtrip` does not parse every decimal to the nearest
//! double, so re-parsing the canonical form of such a descriptor can give
//! another identity. We parse with the same serde_json code path (our lock
//! has 1.0.154, theirs 1.0.151; neither enables `float_roundtrip` or
//! `arbitrary_precision`), which gives the same doubles and therefore the
//! same identity as v0.6.14 for every descriptor it accepts — refusing such
//! numbers would make microsnap refuse artifacts microsandbox opens. The
//! vector test of nc14 pins this: it fails if a serde_json upgrade or a
//! feature change ever moves these numbers.
use serde_json::{Map, Value};

/// Rebuild every object inside `value` with its keys in sorted order.
pub(super) fn normalize(value: &mut Value) {
    match value {
        Value::Array(items) => items.iter_mut().for_each(normalize),
        Value::Object(object) => {
            let mut entries: Vec<(String, Value)> = std::mem::take(object).into_iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            let mut sorted = Map::new();
            for (key, mut item) in entries {
                normalize(&mut item);
                sorted.insert(key, item);
            }
            *object = sorted;
        }
        Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::normalize;
    use serde_json::Value;

    fn canonical(json: &str) -> String {
        let mut value: Value = serde_json::from_str(json).unwrap();
        normalize(&mut value);
        serde_json::to_string(&value).unwrap()
    }

    #[test]
    fn objects_sorted_at_every_depth_arrays_kept() {
        assert_eq!(
            canonical(r#"{"b":{"z":1,"a":[{"y":0,"x":0},3,1]},"a":null,"":true}"#),
            r#"{"":true,"a":null,"b":{"a":[{"x":0,"y":0},3,1],"z":1}}"#
        );
        // Byte order of UTF-8 (code-point order), not UTF-16 order.
        assert_eq!(
            canonical("{\"\u{1F600}\":1,\"\u{FF5A}\":2}"),
            "{\"\u{FF5A}\":2,\"\u{1F600}\":1}"
        );
    }

    #[test]
    fn numbers_follow_the_value_model() {
        assert_eq!(
            canonical("[1E2,1.0,-0,10.50,18446744073709551615,-9223372036854775808,18446744073709551616,1e16,0.00001]"),
            "[100.0,1.0,-0.0,10.5,18446744073709551615,-9223372036854775808,1.8446744073709552e+19,1e+16,0.00001]"
        );
    }
}
