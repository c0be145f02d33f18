//! Times and durations as people write them on the command line and in API queries: RFC 3339
//! (`2026-12-01T10:00:00Z`), epoch microseconds (`1795000000000000`), or relative to now (`now`,
//! `-5m`, `-90s`, `-1h30m`); durations like `15m`, `90s`, `2h`, `500ms`.

/// A time podtap could not read, in one sentence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a time: use RFC 3339 (2026-12-01T10:00:00Z), epoch microseconds, or relative to now (now, -5m)")]
pub struct BadTime(pub String);

/// A duration podtap could not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a duration: use a number with a unit, like 500ms, 90s, 15m, 2h or 1h30m")]
pub struct BadDuration(pub String);

/// A time, in microseconds since the epoch; relative times count back from `now_us`.
pub fn parse_time(text: &str, now_us: u64) -> Result<u64, BadTime> {
    let t = text.trim();
    let bad = || BadTime(text.to_string());
    if t.eq_ignore_ascii_case("now") {
        return Ok(now_us);
    }
    if let Some(rel) = t.strip_prefix('-') {
        return parse_duration_us(rel).map(|d| now_us.saturating_sub(d)).map_err(|_| bad());
    }
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        return t.parse().map_err(|_| bad());
    }
    let ts: jiff::Timestamp = t.parse().map_err(|_| bad())?;
    u64::try_from(ts.as_microsecond()).map_err(|_| bad())
}

/// A duration, in microseconds.
pub fn parse_duration_us(text: &str) -> Result<u64, BadDuration> {
    let bad = || BadDuration(text.to_string());
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let scale: u64 = match &rest[..unit_len] {
            "us" | "µs" => 1,
            "ms" => 1_000,
            "s" => 1_000_000,
            "m" => 60_000_000,
            "h" => 3_600_000_000,
            "d" => 86_400_000_000,
            _ => return Err(bad()),
        };
        total = n.checked_mul(scale).and_then(|v| total.checked_add(v)).ok_or_else(bad)?;
        rest = &rest[unit_len..];
    }
    Ok(total)
}

/// Microseconds as RFC 3339, for messages.
pub fn format_time(us: u64) -> String {
    i64::try_from(us)
        .ok()
        .and_then(|us| jiff::Timestamp::from_microsecond(us).ok())
        .map_or_else(|| us.to_string(), |t| t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_795_000_000_000_000;

    #[test]
    fn every_way_of_writing_a_time() {
        assert_eq!(parse_time("now", NOW), Ok(NOW));
        assert_eq!(parse_time("-5m", NOW), Ok(NOW - 300_000_000));
        assert_eq!(parse_time("-1h30m", NOW), Ok(NOW - 5_400_000_000));
        assert_eq!(parse_time("1795000000000000", NOW), Ok(NOW));
        assert_eq!(parse_time("2026-11-18T11:06:40Z", 0), Ok(NOW));
        assert_eq!(parse_time("2026-11-18T12:06:40.5+01:00", 0), Ok(NOW + 500_000));
        assert_eq!(format_time(NOW), "2026-11-18T11:06:40Z");
    }

    #[test]
    fn bad_times_and_durations_are_one_sentence() {
        for bad in ["yesterday", "-5x", "", "2026-13-01T00:00:00Z", "-", "99999999999999999999999"] {
            let e = parse_time(bad, NOW).unwrap_err().to_string();
            assert!(e.contains("is not a time"), "{bad}: {e}");
        }
        assert_eq!(parse_duration_us("15m"), Ok(900_000_000));
        assert_eq!(parse_duration_us("500ms"), Ok(500_000));
        assert!(parse_duration_us("15").is_err() && parse_duration_us("m").is_err());
    }
}
