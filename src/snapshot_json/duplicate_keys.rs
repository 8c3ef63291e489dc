//! The pre-pass of v0.6.14's parser (SPEC-NOTES §3.1): walk the whole JSON
//! value once and refuse any object key that appears twice in one object, at
//! any depth (`labels` and extension values included), before typed decoding
//! could silently keep the last one.
//!
//! Running it through serde_json's own `Deserializer` also refuses what
//! serde_json refuses anywhere else (a UTF-8 BOM reads as `expected value at
//! line 1 column 1`, invalid JSON, nesting deeper than its recursion limit),
//! and `end()` refuses trailing characters. The duplicate error is a custom
//! error raised inside the visitor, so serde_json appends the position right
//! after the repeated key, as microsandbox's message has it.
use std::collections::HashSet;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// `Ok` if `bytes` are one JSON value, optionally surrounded by whitespace,
/// without a repeated key in any object. The error is serde_json's, with
/// its position.
pub(super) fn check(bytes: &[u8]) -> Result<(), serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    AnyValue::deserialize(&mut deserializer)?;
    deserializer.end()
}

/// Any JSON value, kept only long enough to look at its object keys.
struct AnyValue;

impl<'de> Deserialize<'de> for AnyValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<AnyValue, D::Error> {
        d.deserialize_any(AnyValueVisitor)
    }
}

struct AnyValueVisitor;

impl<'de> Visitor<'de> for AnyValueVisitor {
    type Value = AnyValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value without duplicate object keys")
    }

    fn visit_bool<E>(self, _: bool) -> Result<AnyValue, E> {
        Ok(AnyValue)
    }
    fn visit_i64<E>(self, _: i64) -> Result<AnyValue, E> {
        Ok(AnyValue)
    }
    fn visit_u64<E>(self, _: u64) -> Result<AnyValue, E> {
        Ok(AnyValue)
    }
    fn visit_f64<E>(self, _: f64) -> Result<AnyValue, E> {
        Ok(AnyValue)
    }
    fn visit_str<E>(self, _: &str) -> Result<AnyValue, E> {
        Ok(AnyValue)
    }
    fn visit_unit<E>(self) -> Result<AnyValue, E> {
        Ok(AnyValue)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<AnyValue, A::Error> {
        while seq.next_element::<AnyValue>()?.is_some() {}
        Ok(AnyValue)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<AnyValue, A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if seen.contains(&key) {
                return Err(de::Error::custom(format!("duplicate object key '{key}'")));
            }
            map.next_value::<AnyValue>()?;
            seen.insert(key);
        }
        Ok(AnyValue)
    }
}

#[cfg(test)]
mod tests {
    use super::check;

    fn message(json: &str) -> String {
        check(json.as_bytes()).unwrap_err().to_string()
    }

    #[test]
    fn accepts_one_value_with_distinct_keys_at_every_depth() {
        check(br#" {"a":{"a":1,"b":[{"a":2},{"a":3}]},"b":null} "#).unwrap();
        check(b"[]").unwrap();
    }

    #[test]
    fn refuses_a_repeated_key_at_any_depth_with_its_position() {
        assert_eq!(
            message(r#"{"k":1,"k":2}"#),
            "duplicate object key 'k' at line 1 column 10"
        );
        assert_eq!(
            message("{\"a\":[{\"x\":1,\n\"x\":2}]}"),
            "duplicate object key 'x' at line 2 column 3"
        );
        // The same key in sibling objects is not a duplicate.
        check(br#"{"a":{"x":1},"b":{"x":1}}"#).unwrap();
    }

    #[test]
    fn refuses_bom_trailing_characters_and_bad_json() {
        assert_eq!(message("\u{feff}{}"), "expected value at line 1 column 1");
        assert_eq!(message("{} x"), "trailing characters at line 1 column 4");
        assert!(message(r#"{"a":}"#).contains("expected value"));
        assert!(message(&"[".repeat(200)).contains("recursion limit exceeded"));
    }
}
