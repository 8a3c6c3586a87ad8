//! Durations as Kubernetes users write them (Go's `time.ParseDuration`: `30s`, `1m`, `1h30m`,
//! `500ms`), bounded so that no spec can overflow a timer. Pure.

use std::time::Duration;

/// The longest duration a spec may ask for: one year. Longer intervals and timeouts are almost
/// certainly typos, and timers (tokio's delay queue among them) have finite ranges.
pub const MAX: Duration = Duration::from_secs(365 * 24 * 3600);

/// Flux's pattern for duration fields, given to the API server in the CRDs so that it refuses
/// malformed values before any controller reads them.
pub const PATTERN: &str = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseDurationError {
    #[error("{value:?} is not a duration like 30s, 5m or 1h30m")]
    Syntax { value: String },
    #[error("{value:?} is longer than the limit of 8760h (one year)")]
    TooLong { value: String },
}

pub fn parse(value: &str) -> Result<Duration, ParseDurationError> {
    let syntax = || ParseDurationError::Syntax {
        value: value.to_owned(),
    };
    let too_long = || ParseDurationError::TooLong {
        value: value.to_owned(),
    };
    let s = value.trim();
    if s.is_empty() {
        return Err(syntax());
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    // Nanoseconds, in integers: no float rounding, and every step checked.
    let limit = MAX.as_nanos();
    let mut total: u128 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let int_len = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (int, after) = rest.split_at(int_len);
        let (frac, after) = match after.strip_prefix('.') {
            Some(tail) => {
                let len = tail
                    .find(|c: char| !c.is_ascii_digit())
                    .unwrap_or(tail.len());
                tail.split_at(len)
            }
            None => ("", after),
        };
        if int.is_empty() && frac.is_empty() {
            return Err(syntax());
        }
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let nanos_per_unit: u128 = match unit {
            "ns" => 1,
            "us" | "µs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err(syntax()),
        };
        // More digits than the limit has nanoseconds can only be too long (or zeros).
        let int = int.trim_start_matches('0');
        if int.len() > 30 {
            return Err(too_long());
        }
        let whole: u128 = if int.is_empty() {
            0
        } else {
            int.parse().map_err(|_| syntax())?
        };
        let mut part = whole.checked_mul(nanos_per_unit).ok_or_else(too_long)?;
        // The fraction: only the digits that can still matter at nanosecond precision.
        let mut scale = nanos_per_unit;
        for digit in frac.bytes().take(20) {
            scale /= 10;
            part = part
                .checked_add(u128::from(digit - b'0') * scale)
                .ok_or_else(too_long)?;
        }
        total = total.checked_add(part).ok_or_else(too_long)?;
        if total > limit {
            return Err(too_long());
        }
        rest = after;
    }
    let secs = u64::try_from(total / 1_000_000_000).map_err(|_| too_long())?;
    Ok(Duration::new(secs, (total % 1_000_000_000) as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_style_durations() {
        assert_eq!(parse("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse("1m").unwrap(), Duration::from_secs(60));
        assert_eq!(parse("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse("0.5h").unwrap(), Duration::from_secs(1800));
        assert_eq!(parse(".5s").unwrap(), Duration::from_millis(500));
        assert_eq!(parse("8760h").unwrap(), MAX);
        for bad in ["", "1", "m", "1d", "1m x", "-1s", ".s", "1.s.s", "1..5s"] {
            assert!(
                matches!(parse(bad), Err(ParseDurationError::Syntax { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn absurd_durations_are_refused_not_panics() {
        for absurd in [
            "99999999999999999999s",
            "99999999999999999999999999999999999999999h",
            "8761h",
            "8760h1ns",
            "1000000000000000000000000000000000000ms",
            "18446744073709551616s",
        ] {
            assert_eq!(
                parse(absurd),
                Err(ParseDurationError::TooLong {
                    value: absurd.into()
                }),
                "{absurd}"
            );
        }
        // Many small parts that add up past the limit.
        assert!(matches!(
            parse(&"8000h".repeat(1000)),
            Err(ParseDurationError::TooLong { .. })
        ));
        // Leading zeros and long fractions are fine.
        assert_eq!(
            parse("000000000000000000000000000000000000001s").unwrap(),
            Duration::from_secs(1)
        );
        assert_eq!(
            parse("1.99999999999999999999999999s").unwrap(),
            Duration::new(1, 999_999_999)
        );
    }

    #[test]
    fn the_crd_pattern_accepts_what_parse_accepts_in_flux_style() {
        let re = regex::Regex::new(PATTERN).unwrap();
        for ok in ["30s", "1m", "1h30m", "500ms", "1.5s"] {
            assert!(re.is_match(ok) && parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "1", "1d", "-1s", "1m x"] {
            assert!(!re.is_match(bad), "{bad}");
        }
    }
}
