//! RFC 3339 timestamps exactly as microsandbox v0.6.3 writes and reads them
//! (vectors/SPEC-NOTES.md §5).
//!
//! v0.6.3 writes `chrono::Utc::now().to_rfc3339()` and reads with
//! `DateTime::parse_from_rfc3339`, with chrono 0.4.45 from its lockfile. We
//! call the same functions of the same chrono, so what we write and what we
//! accept are theirs by construction rather than by imitation: offset always
//! `+00:00`, the fraction omitted when zero, else 3, 6 or 9 digits (chrono's
//! `AutoSi`); on read `T`/`t`/space, `Z`/`z`/`±HH:MM`, second 60, digits
//! past the ninth dropped.
use chrono::{DateTime, Utc};

/// chrono represents a leap second as nanos in `1e9..2e9` on second :59.
#[cfg(test)]
const MAX_LEAP_NANOS: u32 = 1_999_999_999;

/// The current UTC time, as chrono's `Utc::now().to_rfc3339()`.
pub fn now_rfc3339() -> String {
    Utc::now().to_rfc3339()
}

/// The current time as Unix nanoseconds (saturating outside 1677..2262).
pub fn now_unix_nanos() -> i64 {
    let now = Utc::now();
    now.timestamp_nanos_opt().unwrap_or(if now.timestamp() < 0 {
        i64::MIN
    } else {
        i64::MAX
    })
}

/// Format a UTC instant as `YYYY-MM-DDTHH:MM:SS[.fraction]+00:00`, as
/// `to_rfc3339` does. Only tests format given instants (the engine writes
/// `now_rfc3339`), to check the exact text microsandbox v0.6.3 writes.
///
/// `nanos` of 1e9 or more is chrono's leap-second form: on second :59 it
/// prints second 60 (`23:59:60.500` for nanos 1_500_000_000); elsewhere,
/// where chrono has no leap second, it is the same instant one second on.
/// Larger nanos are clamped to that range, and instants beyond chrono's
/// years (±262,143) to its first or last representable one.
#[cfg(test)]
pub fn format_rfc3339(unix_secs: i64, nanos: u32) -> String {
    let nanos = nanos.min(MAX_LEAP_NANOS);
    let instant = DateTime::<Utc>::from_timestamp(unix_secs, nanos)
        .or_else(|| {
            let next = unix_secs.checked_add(1)?;
            DateTime::<Utc>::from_timestamp(next, nanos.checked_sub(1_000_000_000)?)
        })
        .unwrap_or(if unix_secs < 0 {
            DateTime::<Utc>::MIN_UTC
        } else {
            DateTime::<Utc>::MAX_UTC
        });
    instant.to_rfc3339()
}

/// Parse what chrono's `DateTime::parse_from_rfc3339` accepts and return
/// the instant as Unix nanoseconds; `None` for anything else, or when the
/// instant does not fit in an i64 of nanoseconds (before 1677 or after 2262).
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(s).ok()?.timestamp_nanos_opt()
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::time::{SystemTime, UNIX_EPOCH};

    const S: i64 = 1_000_000_000;
    const SECS_PER_DAY: i64 = 86_400;

    #[test]
    fn formats_like_chrono_to_rfc3339() {
        assert_eq!(
            format_rfc3339(1_777_636_800, 0),
            "2026-05-01T12:00:00+00:00"
        );
        assert_eq!(
            format_rfc3339(1_777_636_800, 123_000_000),
            "2026-05-01T12:00:00.123+00:00"
        );
        assert_eq!(
            format_rfc3339(1_777_636_800, 123_400_000),
            "2026-05-01T12:00:00.123400+00:00"
        );
        assert_eq!(
            format_rfc3339(1_777_636_800, 123_456_700),
            "2026-05-01T12:00:00.123456700+00:00"
        );
        assert_eq!(
            format_rfc3339(1_777_636_800, 1),
            "2026-05-01T12:00:00.000000001+00:00"
        );
        assert_eq!(format_rfc3339(0, 0), "1970-01-01T00:00:00+00:00");
        // SPEC-NOTES §5 real create output.
        let secs = parse_rfc3339("2026-11-28T17:38:40Z").unwrap() / S;
        assert_eq!(
            format_rfc3339(secs, 623_333_353),
            "2026-11-28T17:38:40.623333353+00:00"
        );
    }

    #[test]
    fn formats_leap_second_and_extreme_years() {
        // 2016-12-31T23:59:59 = 1483228799; chrono's leap form prints :60.
        assert_eq!(
            format_rfc3339(1_483_228_799, 1_500_000_000),
            "2016-12-31T23:59:60.500+00:00"
        );
        assert_eq!(
            format_rfc3339(1_483_228_799, 1_000_000_000),
            "2016-12-31T23:59:60+00:00"
        );
        // Year 10000 and year -1 carry an explicit sign.
        assert_eq!(
            format_rfc3339(253_402_300_800, 0),
            "+10000-01-01T00:00:00+00:00"
        );
        // 0000-01-01 is day -719_528; year -1, not a leap year, starts 365 days before it.
        let minus_one = (-719_528 - 365) * SECS_PER_DAY;
        assert_eq!(format_rfc3339(minus_one, 0), "-0001-01-01T00:00:00+00:00");
        assert_eq!(
            format_rfc3339(-62_167_219_200, 0),
            "0000-01-01T00:00:00+00:00"
        );
        // Beyond chrono's years: clamped to its ends, never a panic.
        assert_eq!(
            format_rfc3339(i64::MIN, u32::MAX),
            "-262143-01-01T00:00:00+00:00"
        );
        assert_eq!(
            format_rfc3339(i64::MAX, 0),
            "+262142-12-31T23:59:59.999999999+00:00"
        );
    }

    #[test]
    fn leap_nanos_off_second_59_are_the_next_second() {
        // 12:00:00 plus 1.25 s, where chrono has no leap second.
        assert_eq!(
            format_rfc3339(1_777_636_800, 1_250_000_000),
            "2026-05-01T12:00:01.250+00:00"
        );
    }

    #[test]
    fn formats_pre_1970_and_leap_days() {
        assert_eq!(format_rfc3339(-1, 0), "1969-12-31T23:59:59+00:00");
        assert_eq!(
            format_rfc3339(-1, 500_000_000),
            "1969-12-31T23:59:59.500+00:00"
        );
        // 2000-02-29 (divisible by 400: leap) = 951782400.
        assert_eq!(format_rfc3339(951_782_400, 0), "2000-02-29T00:00:00+00:00");
        // 1900 is not a leap year: 1900-02-28 + 1 day = 1900-03-01 = -2203891200.
        assert_eq!(
            format_rfc3339(-2_203_891_200, 0),
            "1900-03-01T00:00:00+00:00"
        );
        assert_eq!(
            format_rfc3339(-2_203_891_200 - SECS_PER_DAY, 0),
            "1900-02-28T00:00:00+00:00"
        );
    }

    #[test]
    fn now_round_trips_through_parse() {
        let before = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let now = now_rfc3339();
        let after = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        assert!(now.ends_with("+00:00"), "{now}");
        let parsed = parse_rfc3339(&now).unwrap();
        assert!(parsed >= before.as_nanos() as i64 && parsed <= after.as_nanos() as i64);
    }

    #[test]
    fn parses_utc_and_offsets() {
        let noon = 1_777_636_800 * S;
        assert_eq!(parse_rfc3339("2026-05-01T12:00:00Z"), Some(noon));
        assert_eq!(parse_rfc3339("2026-05-01T12:00:00+00:00"), Some(noon));
        assert_eq!(parse_rfc3339("2026-05-01T12:00:00-00:00"), Some(noon));
        assert_eq!(parse_rfc3339("2026-05-01t12:00:00z"), Some(noon));
        assert_eq!(parse_rfc3339("2026-05-01 12:00:00Z"), Some(noon));
        // 14:30 at +02:30 is 12:00 UTC; 04:15 at -07:45 is 12:00 UTC.
        assert_eq!(parse_rfc3339("2026-05-01T14:30:00+02:30"), Some(noon));
        assert_eq!(parse_rfc3339("2026-05-01T04:15:00-07:45"), Some(noon));
        assert_eq!(
            parse_rfc3339("2026-05-01T04:15:00\u{2212}07:45"),
            Some(noon)
        );
        // Offset across midnight: 2026-05-02T01:00+13:00 is 12:00 UTC the day before.
        assert_eq!(parse_rfc3339("2026-05-02T01:00:00+13:00"), Some(noon));
        assert_eq!(
            parse_rfc3339("2026-05-01T12:00:00+23:59").unwrap(),
            noon - 86_340 * S
        );
    }

    #[test]
    fn parses_fractions_and_leap_seconds() {
        let noon = 1_777_636_800 * S;
        assert_eq!(
            parse_rfc3339("2026-05-01T12:00:00.5Z"),
            Some(noon + 500_000_000)
        );
        assert_eq!(
            parse_rfc3339("2026-05-01T12:00:00.123456789Z"),
            Some(noon + 123_456_789)
        );
        // Digits past the ninth are dropped, not rounded.
        assert_eq!(
            parse_rfc3339("2026-05-01T12:00:00.1234567899999+00:00"),
            Some(noon + 123_456_789)
        );
        // Second 60 is :59 plus one second, whatever the minute.
        assert_eq!(
            parse_rfc3339("2016-12-31T23:59:60.5Z"),
            Some(1_483_228_800 * S + 500_000_000)
        );
        assert_eq!(parse_rfc3339("2026-05-01T11:59:60Z"), Some(noon));
    }

    #[test]
    fn parses_pre_1970_and_leap_years() {
        assert_eq!(parse_rfc3339("1969-12-31T23:59:59Z"), Some(-S));
        assert_eq!(
            parse_rfc3339("1969-12-31T23:59:59.75Z"),
            Some(-S + 750_000_000)
        );
        assert_eq!(
            parse_rfc3339("1900-03-01T00:00:00Z"),
            Some(-2_203_891_200 * S)
        );
        assert_eq!(parse_rfc3339("2000-02-29T00:00:00Z"), Some(951_782_400 * S));
        assert_eq!(
            parse_rfc3339("2024-02-29T00:00:00Z"),
            Some(1_709_164_800 * S)
        );
        assert_eq!(parse_rfc3339("1900-02-29T00:00:00Z"), None);
        assert_eq!(parse_rfc3339("2026-02-29T00:00:00Z"), None);
    }

    #[test]
    fn refuses_what_chrono_refuses() {
        for bad in [
            "",
            "yesterday",
            "2026-05-01",
            "2026-05-01T12:00:00",
            "2026-05-01T12:00:00+0000",
            "2026-05-01T12:00:00+00",
            "2026-05-01T12:00:00+24:00",
            "2026-05-01T12:00:00+00:60",
            "2026-05-01T12:00:00.Z",
            "2026-05-01T12:00:00Z ",
            "2026-05-01T12:00:00ZZ",
            "2026-05-01X12:00:00Z",
            "2026-13-01T12:00:00Z",
            "2026-00-01T12:00:00Z",
            "2026-04-31T12:00:00Z",
            "2026-05-01T24:00:00Z",
            "2026-05-01T12:60:00Z",
            "2026-05-01T12:00:61Z",
            "+2026-05-01T12:00:00Z",
            "26-05-01T12:00:00Z",
            "2026-5-01T12:00:00Z",
            "2026-05-01T12:00:00\u{FF3A}",
            // Out of i64 nanoseconds, though chrono itself would parse them.
            "1677-01-01T00:00:00Z",
            "9999-12-31T23:59:59Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad:?}");
        }
    }
}
