//! RFC 3339 timestamps exactly as microsandbox v0.6.3 writes and reads them
//! (vectors/SPEC-NOTES.md §5), without a date-time dependency.
//!
//! Writing matches chrono 0.4's `Utc::now().to_rfc3339()`: offset always
//! `+00:00`, fraction omitted when zero, else 3, 6 or 9 digits (the shortest
//! exact one). Reading matches chrono's `DateTime::parse_from_rfc3339`.
//! Calendar math is Howard Hinnant's `days_from_civil` / `civil_from_days`
//! (proleptic Gregorian, valid for any i64 day count we can produce here).
use std::time::{SystemTime, UNIX_EPOCH};

const NANOS_PER_SEC: i64 = 1_000_000_000;
const SECS_PER_DAY: i64 = 86_400;
/// chrono represents a leap second as nanos in `1e9..2e9` on second :59.
const MAX_LEAP_NANOS: u32 = 1_999_999_999;

/// The current UTC time, formatted as chrono's `Utc::now().to_rfc3339()`.
pub fn now_rfc3339() -> String {
    let (secs, nanos) = now_parts();
    format_rfc3339(secs, nanos)
}

/// The current time as Unix nanoseconds (saturating outside 1677..2262).
pub fn now_unix_nanos() -> i64 {
    let (secs, nanos) = now_parts();
    secs.saturating_mul(NANOS_PER_SEC)
        .saturating_add(i64::from(nanos))
}

/// Seconds and non-negative nanoseconds since the Unix epoch.
fn now_parts() -> (i64, u32) {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(since) => (
            i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
            since.subsec_nanos(),
        ),
        // A clock set before 1970: step back whole seconds, keep nanos positive.
        Err(e) => {
            let before = e.duration();
            let secs = i64::try_from(before.as_secs()).unwrap_or(i64::MAX);
            match before.subsec_nanos() {
                0 => (-secs, 0),
                n => (-secs - 1, 1_000_000_000 - n),
            }
        }
    }
}

/// Format a UTC instant as `YYYY-MM-DDTHH:MM:SS[.fraction]+00:00`.
///
/// `nanos` of 1e9 or more is chrono's leap-second form and prints second 60
/// (`23:59:60.500` for secs at 23:59:59 and nanos 1_500_000_000); larger
/// values are clamped to that range. Years outside 0..=9999 get an explicit
/// sign and at least four digits, as chrono writes them.
pub fn format_rfc3339(unix_secs: i64, nanos: u32) -> String {
    let nanos = nanos.min(MAX_LEAP_NANOS);
    let days = unix_secs.div_euclid(SECS_PER_DAY);
    let secs_of_day = unix_secs.rem_euclid(SECS_PER_DAY);
    let (year, month, day) = civil_from_days(days);
    let hour = secs_of_day / 3600;
    let minute = secs_of_day % 3600 / 60;
    let (second, fraction) = match nanos.checked_sub(1_000_000_000) {
        Some(leap_fraction) => (secs_of_day % 60 + 1, leap_fraction),
        None => (secs_of_day % 60, nanos),
    };
    let year = if (0..=9999).contains(&year) {
        format!("{year:04}")
    } else {
        format!("{year:+05}")
    };
    format!(
        "{year}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}{}+00:00",
        auto_si_fraction(fraction)
    )
}

/// chrono's `SecondsFormat::AutoSi`: nothing for 0, else `.` plus 3, 6 or 9
/// digits, whichever is the shortest that loses nothing.
fn auto_si_fraction(nanos: u32) -> String {
    if nanos == 0 {
        String::new()
    } else if nanos % 1_000_000 == 0 {
        format!(".{:03}", nanos / 1_000_000)
    } else if nanos % 1_000 == 0 {
        format!(".{:06}", nanos / 1_000)
    } else {
        format!(".{nanos:09}")
    }
}

/// Parse what chrono's `DateTime::parse_from_rfc3339` accepts and return
/// the instant as Unix nanoseconds; `None` for anything else, or when the
/// instant does not fit in an i64 of nanoseconds (before 1677 or after 2262).
///
/// Accepted, as chrono does: `T`, `t` or a space between date and time;
/// `Z`, `z` or a `±HH:MM` offset up to 23:59 (U+2212 MINUS SIGN too); an
/// optional fraction of 1 or more digits, digits past the ninth ignored;
/// second 60 at any minute (read as :59 plus one second).
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 19 {
        return None;
    }
    let year = digits(b, 0, 4)?;
    let month = digits(b, 5, 2)?;
    let day = digits(b, 8, 2)?;
    let hour = digits(b, 11, 2)?;
    let minute = digits(b, 14, 2)?;
    let second = digits(b, 17, 2)?;
    let separators_ok = b[4] == b'-'
        && b[7] == b'-'
        && matches!(b[10], b'T' | b't' | b' ')
        && b[13] == b':'
        && b[16] == b':';
    if !separators_ok || !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }

    let mut rest = &b[19..];
    let mut fraction_nanos = 0;
    if let Some((b'.', after_dot)) = rest.split_first() {
        let digit_count = after_dot.iter().take_while(|c| c.is_ascii_digit()).count();
        if digit_count == 0 {
            return None;
        }
        // Only the first nine digits count; the rest are skipped.
        let kept = &after_dot[..digit_count.min(9)];
        let value = kept.iter().fold(0, |n, c| n * 10 + i64::from(c - b'0'));
        fraction_nanos = value * 10_i64.pow(9 - kept.len() as u32);
        rest = &after_dot[digit_count..];
    }
    let offset_secs = parse_offset(rest)?;

    let days = days_from_civil(year, month, day);
    let local_secs = days * SECS_PER_DAY + hour * 3600 + minute * 60 + second;
    (local_secs - offset_secs)
        .checked_mul(NANOS_PER_SEC)?
        .checked_add(fraction_nanos)
}

/// The offset part, which must end the string: `Z`/`z` or `±HH:MM` (the
/// minus may also be U+2212). Returns seconds east of UTC.
fn parse_offset(rest: &[u8]) -> Option<i64> {
    const UNICODE_MINUS: &[u8] = "\u{2212}".as_bytes();
    let (negative, hhmm) = match rest {
        [b'Z' | b'z'] => return Some(0),
        [b'+', hhmm @ ..] => (false, hhmm),
        [b'-', hhmm @ ..] => (true, hhmm),
        _ if rest.starts_with(UNICODE_MINUS) => (true, &rest[UNICODE_MINUS.len()..]),
        _ => return None,
    };
    if hhmm.len() != 5 || hhmm[2] != b':' {
        return None;
    }
    let hours = digits(hhmm, 0, 2)?;
    let minutes = digits(hhmm, 3, 2)?;
    if hours > 23 || minutes > 59 {
        return None;
    }
    let secs = hours * 3600 + minutes * 60;
    Some(if negative { -secs } else { secs })
}

/// `len` ASCII digits at `at`, as a number.
fn digits(b: &[u8], at: usize, len: usize) -> Option<i64> {
    let field = b.get(at..at + len)?;
    field.iter().try_fold(0, |n, &c| {
        c.is_ascii_digit().then(|| n * 10 + i64::from(c - b'0'))
    })
}

fn is_leap_year(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Hinnant).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y.rem_euclid(400);
    let shifted_month = (month + 9) % 12; // March = 0
    let day_of_year = (153 * shifted_month + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The proleptic Gregorian (year, month, day) of a day count since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153; // March = 0
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = NANOS_PER_SEC;

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
        let minus_one = days_from_civil(-1, 1, 1) * SECS_PER_DAY;
        assert_eq!(format_rfc3339(minus_one, 0), "-0001-01-01T00:00:00+00:00");
        assert_eq!(
            format_rfc3339(-62_167_219_200, 0),
            "0000-01-01T00:00:00+00:00"
        );
        // Must not panic at the ends of the range.
        let _ = format_rfc3339(i64::MIN, u32::MAX);
        let _ = format_rfc3339(i64::MAX, 0);
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

    #[test]
    fn civil_round_trip_over_many_days() {
        for days in (-800_000..800_000).step_by(97) {
            let (y, m, d) = civil_from_days(days);
            assert!((1..=12).contains(&m) && d >= 1 && d <= days_in_month(y, m));
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
