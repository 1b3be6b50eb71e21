//! Times and durations as people type them, for the CLI.
//!
//! A time is one of:
//! - `now`;
//! - milliseconds since the epoch: `1700000000000` (negative allowed);
//! - relative to now: `-5m`, `+1h`, `now-90s`, `now+1d`;
//! - RFC 3339 or close to it: `2026-11-24T10:00:00Z`,
//!   `2026-11-24T10:00:00.250+02:00`, `2026-11-24 10:00:00` (UTC),
//!   `2026-11-24T10:00Z`, `2026-11-24` (midnight UTC).
//!
//! A duration is a sequence of number-unit pairs: `500ms`, `10s`, `5m`,
//! `1h30m`, `7d`, `2w` (units `ms s m h d w`).

/// Parses a duration into milliseconds.
pub fn parse_duration_ms(text: &str) -> Result<i64, String> {
    let bad = || format!("{text:?} is not a duration (like 500ms, 10s, 5m, 1h30m, 7d, 2w)");
    let mut rest = text;
    let mut total: i64 = 0;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let (num, tail) = rest.split_at(digits);
        let n: i64 = num.parse().map_err(|_| bad())?;
        let unit_len = tail.bytes().take_while(u8::is_ascii_alphabetic).count();
        let (unit, tail) = tail.split_at(unit_len);
        let ms = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 7 * 86_400_000,
            _ => return Err(bad()),
        };
        total = n
            .checked_mul(ms)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("duration {text:?} is too long"))?;
        rest = tail;
    }
    Ok(total)
}

/// Parses a time into milliseconds since the epoch, `now_ms` being now.
pub fn parse_time_ms(text: &str, now_ms: i64) -> Result<i64, String> {
    let t = text.trim();
    if t == "now" {
        return Ok(now_ms);
    }
    let relative = t.strip_prefix("now").unwrap_or(t);
    if let Some((sign, d)) = relative
        .strip_prefix('-')
        .map(|d| (-1, d))
        .or_else(|| relative.strip_prefix('+').map(|d| (1, d)))
    {
        if d.bytes().any(|b| b.is_ascii_alphabetic()) {
            let ms = parse_duration_ms(d)?;
            return now_ms
                .checked_add(sign * ms)
                .ok_or_else(|| format!("time {text:?} is out of range"));
        }
    }
    if let Ok(ms) = t.parse::<i64>() {
        return Ok(ms);
    }
    parse_rfc3339(t).ok_or_else(|| {
        format!(
            "{text:?} is not a time (use epoch milliseconds, now, -5m, now-1h, or 2026-11-24T10:00:00Z)"
        )
    })
}

/// Days from 1970-01-01 to the given civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

fn num(s: &str, len: usize) -> Option<i64> {
    (s.len() == len && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

fn parse_rfc3339(t: &str) -> Option<i64> {
    let (date, time) = match t.find(['T', 't', ' ']) {
        Some(i) => (t.get(..i)?, Some(t.get(i + 1..)?)),
        None => (t, None),
    };
    let mut d = date.split('-');
    let (y, m, day) = (num(d.next()?, 4)?, num(d.next()?, 2)?, num(d.next()?, 2)?);
    if d.next().is_some() || !(1..=12).contains(&m) || day < 1 || day > days_in_month(y, m) {
        return None;
    }
    let mut ms = days_from_civil(y, m, day) * 86_400_000;
    let Some(time) = time else {
        return Some(ms);
    };
    // Split off the zone: Z, +hh:mm, -hh:mm, or nothing (UTC).
    let (clock, offset_ms) = if let Some(c) = time.strip_suffix(['Z', 'z']) {
        (c, 0)
    } else if let Some(i) = time.rfind(['+', '-']) {
        let (c, z) = time.split_at(i);
        let sign = if z.starts_with('-') { -1 } else { 1 };
        let (hh, mm) = z.get(1..)?.split_once(':')?;
        let (hh, mm) = (num(hh, 2)?, num(mm, 2)?);
        if hh > 23 || mm > 59 {
            return None;
        }
        (c, sign * (hh * 3_600_000 + mm * 60_000))
    } else {
        (time, 0)
    };
    let (hms, frac) = match clock.split_once('.') {
        Some((a, f)) => (a, Some(f)),
        None => (clock, None),
    };
    let mut parts = hms.split(':');
    let h = num(parts.next()?, 2)?;
    let mi = num(parts.next()?, 2)?;
    let s = match parts.next() {
        Some(s) => num(s, 2)?,
        None => 0,
    };
    if parts.next().is_some() || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    ms += h * 3_600_000 + mi * 60_000 + s * 1000;
    if let Some(f) = frac {
        if f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let digits: String = f.chars().chain("000".chars()).take(3).collect();
        ms += digits.parse::<i64>().ok()?;
    }
    Some(ms - offset_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000_000;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("500ms"), Ok(500));
        assert_eq!(parse_duration_ms("1h30m"), Ok(5_400_000));
        assert_eq!(parse_duration_ms("7d"), Ok(604_800_000));
        assert_eq!(parse_duration_ms("2w"), Ok(1_209_600_000));
        for bad in ["", "5", "m", "5x", "1h-", "99999999999999999999s"] {
            assert!(parse_duration_ms(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn times() {
        assert_eq!(parse_time_ms("now", NOW), Ok(NOW));
        assert_eq!(parse_time_ms("-5m", NOW), Ok(NOW - 300_000));
        assert_eq!(parse_time_ms("now-1h", NOW), Ok(NOW - 3_600_000));
        assert_eq!(parse_time_ms("+1d", NOW), Ok(NOW + 86_400_000));
        assert_eq!(parse_time_ms("1700000000000", NOW), Ok(1_700_000_000_000));
        assert_eq!(parse_time_ms("-5", NOW), Ok(-5));
        assert_eq!(parse_time_ms("1970-01-01T00:00:00Z", NOW), Ok(0));
        assert_eq!(
            parse_time_ms("2023-11-14T22:13:20Z", NOW),
            Ok(1_700_000_000_000)
        );
        assert_eq!(
            parse_time_ms("2023-11-15T00:13:20.5+02:00", NOW),
            Ok(1_700_000_000_500)
        );
        assert_eq!(
            parse_time_ms("2023-11-14 22:13:20", NOW),
            Ok(1_700_000_000_000)
        );
        assert_eq!(
            parse_time_ms("2023-11-14T22:13Z", NOW),
            Ok(1_699_999_980_000)
        );
        assert_eq!(parse_time_ms("2024-02-29", NOW), Ok(1_709_164_800_000));
        assert_eq!(parse_time_ms("1969-12-31T23:59:59.999Z", NOW), Ok(-1));
        for bad in [
            "yesterday",
            "2023-02-29",
            "2023-13-01",
            "2023-11-14T25:00:00Z",
            "2023-11-14T10:00:00+2",
            "-5q",
            "2023-11-14T10:00:00.Z",
        ] {
            assert!(parse_time_ms(bad, NOW).is_err(), "{bad}");
        }
    }
}
