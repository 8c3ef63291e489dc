//! Field deserializers where serde's derive alone is laxer than v0.6.14.
use serde::{Deserialize, Deserializer};

/// A nullable member that must be present: serde's derive turns a missing
/// `Option` member into `None`, v0.6.14 says `missing field` (§3.2). Any
/// `deserialize_with` makes derive treat the member as required.
pub(super) fn required_option<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d)
}

/// `leaf_size` is a u32 in v0.6.14: a value past u32::MAX is a parse error
/// there (`invalid value: integer …, expected u32`), not a validation one.
pub(super) fn leaf_size<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    u32::deserialize(d).map(u64::from)
}
