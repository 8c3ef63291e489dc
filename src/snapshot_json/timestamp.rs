//! `created_at` normalization (SPEC-NOTES §5): v0.6.14 hashes one spelling
//! per instant. chrono's RFC 3339 parser (the same chrono 0.4.45 as
//! microsandbox, so what it accepts is theirs by construction: `t`/space for
//! `T`, `z`, `-00:00`, any offset, more than nine fraction digits, second
//! 60), then UTC with nanoseconds and `Z`, then the fraction's trailing
//! zeros dropped, and the `.` when nothing is left.
use chrono::{DateTime, SecondsFormat, Utc};

/// The normalized form of an RFC 3339 timestamp, or chrono's reason why it
/// is not one (`premature end of input`, `input contains invalid characters`…).
pub(super) fn normalize(value: &str) -> Result<String, chrono::ParseError> {
    let utc = DateTime::parse_from_rfc3339(value)?.with_timezone(&Utc);
    let full = utc.to_rfc3339_opts(SecondsFormat::Nanos, true);
    // `full` is `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`: always a dot, always a Z.
    let Some((seconds, fraction)) = full.strip_suffix('Z').and_then(|s| s.split_once('.')) else {
        return Ok(full);
    };
    let fraction = fraction.trim_end_matches('0');
    Ok(if fraction.is_empty() {
        format!("{seconds}Z")
    } else {
        format!("{seconds}.{fraction}Z")
    })
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn one_spelling_per_instant() {
        for (input, expected) in [
            ("2026-05-01T12:00:00Z", "2026-05-01T12:00:00Z"),
            ("2026-05-01t12:00:00z", "2026-05-01T12:00:00Z"),
            ("2026-05-01 12:00:00Z", "2026-05-01T12:00:00Z"),
            ("2026-05-01T12:00:00-00:00", "2026-05-01T12:00:00Z"),
            ("2026-05-01T12:00:00+00:00", "2026-05-01T12:00:00Z"),
            ("2026-05-01T13:00:00+01:00", "2026-05-01T12:00:00Z"),
            ("2026-05-01T17:30:00.25+05:30", "2026-05-01T12:00:00.25Z"),
            ("2026-05-01T12:00:00.500Z", "2026-05-01T12:00:00.5Z"),
            ("2026-05-01T12:00:00.000001Z", "2026-05-01T12:00:00.000001Z"),
            ("2026-05-01T12:00:00.000000000Z", "2026-05-01T12:00:00Z"),
            (
                "2026-05-01T12:00:00.1234567891234Z",
                "2026-05-01T12:00:00.123456789Z",
            ),
            // Across midnight and a negative offset.
            (
                "2026-04-30T23:59:59.999999-07:00",
                "2026-05-01T06:59:59.999999Z",
            ),
            // A leap second is kept.
            ("2016-12-31T23:59:60Z", "2016-12-31T23:59:60Z"),
            ("2016-12-31T23:59:60.5Z", "2016-12-31T23:59:60.5Z"),
        ] {
            assert_eq!(normalize(input).unwrap(), expected, "{input}");
        }
    }

    #[test]
    fn refuses_what_is_not_rfc_3339() {
        for input in ["yesterday", "2026-05-01T12:00:00", "2026-05-01", ""] {
            assert!(normalize(input).is_err(), "{input}");
        }
        assert_eq!(
            normalize("2026-05-01T12:00:00").unwrap_err().to_string(),
            "premature end of input"
        );
    }
}
