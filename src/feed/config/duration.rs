//! `cache_ttl`: whole seconds, or `250ms`, `90s`, `5m`, `1h30m`.

use std::time::Duration;

use serde_json::Value;

use crate::object::json_kind;

use super::load::{WholeNumberError, whole_number};

pub(super) const DURATION_HINT: &str =
    "give an integer number of seconds or a duration such as 250ms, 90s, 5m, 1h or 1h30m";

/// A `cache_ttl` as YAML gives it: an integer of seconds or a string of the same or of
/// `<integer><unit>` parts, units `h`, `m`, `s`, `ms` in that order, each at most once.
pub(super) fn parse_duration_value(v: &Value) -> Result<Duration, String> {
    match v {
        Value::Number(_) => match whole_number(v, u64::MAX) {
            Ok(secs) => Ok(Duration::from_secs(secs)),
            Err(WholeNumberError::TooLarge) => Err(format!(
                "the number of seconds is too large (at most {}): {DURATION_HINT}",
                u64::MAX
            )),
            Err(WholeNumberError::Negative(n)) => Err(format!("{n} is negative: {DURATION_HINT}")),
            Err(WholeNumberError::Fractional(n)) => Err(format!(
                "{n} is not a whole number of seconds: {DURATION_HINT}"
            )),
            Err(WholeNumberError::NotANumber(found)) => Err(format!(
                "expected a duration, found {found}: {DURATION_HINT}"
            )),
        },
        Value::String(s) => parse_duration(s),
        other => Err(format!(
            "expected a duration, found {}: {DURATION_HINT}",
            json_kind(other)
        )),
    }
}

pub(super) fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = |why: &str| format!("invalid duration {text:?}{why}: {DURATION_HINT}");
    if text.is_empty() {
        return Err(bad(""));
    }
    if text.starts_with('-') {
        return Err(bad(" (negative)"));
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse()
            .map(Duration::from_secs)
            .map_err(|_| bad(" (too large)"));
    }
    const UNITS: [(&str, u64); 4] = [("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)];
    let mut rest = text;
    let mut next_unit = 0; // units must come in decreasing order, each once
    let mut millis: u64 = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad(""));
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad(" (too large)"))?;
        rest = &rest[digits..];
        let letters = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = &rest[..letters];
        rest = &rest[letters..];
        let Some(pos) = UNITS.iter().position(|(u, _)| *u == unit) else {
            return Err(bad(if unit.is_empty() {
                " (a number without a unit)"
            } else {
                " (unknown unit)"
            }));
        };
        if pos < next_unit {
            return Err(bad(" (units out of order or repeated)"));
        }
        next_unit = pos + 1;
        millis = n
            .checked_mul(UNITS[pos].1)
            .and_then(|m| millis.checked_add(m))
            .ok_or_else(|| bad(" (too large)"))?;
    }
    Ok(Duration::from_millis(millis))
}
