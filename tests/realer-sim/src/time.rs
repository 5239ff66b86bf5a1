//! RFC 3339 timestamps in UTC: parsing `value_received_at` and fixture `expires_at`, formatting `expires_at`.
//! Hand-written (days-from-civil arithmetic) rather than the `time` crate: the sim needs exactly one strict
//! grammar (UTC only, `Z` or `+00:00`) and seconds since the epoch, which is less code than configuring a parser.

use std::time::{SystemTime, UNIX_EPOCH};

/// Why a timestamp was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeError {
    /// Not `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`, or an impossible date or time.
    Syntax,
    /// Well formed, but with an offset other than `Z` / `+00:00`.
    NotUtc,
}

/// Seconds since the Unix epoch, now.
pub fn now_unix() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = i64::from((month + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01: (year, month, day).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Formats seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ`.
/// `secs` as an HTTP date (RFC 9110 IMF-fixdate), such as "Sun, 06 Nov 1994 08:49:37 GMT".
pub fn format_http_date(secs: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{}, {d:02} {} {y:04} {:02}:{:02}:{:02} GMT",
        DAYS[days.rem_euclid(7) as usize],
        MONTHS[(m - 1) as usize],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

pub fn format_rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, (rem / 60) % 60, rem % 60)
}

fn digits(s: &[u8], at: usize, len: usize) -> Result<u32, TimeError> {
    let part = s.get(at..at + len).ok_or(TimeError::Syntax)?;
    let mut v = 0u32;
    for &c in part {
        if !c.is_ascii_digit() {
            return Err(TimeError::Syntax);
        }
        v = v * 10 + u32::from(c - b'0');
    }
    Ok(v)
}

fn expect(s: &[u8], at: usize, c: u8) -> Result<(), TimeError> {
    if s.get(at) == Some(&c) {
        Ok(())
    } else {
        Err(TimeError::Syntax)
    }
}

/// Parses a strict RFC 3339 timestamp in UTC (`Z` or `+00:00`, optional fraction of 1 to 9 digits, upper-case
/// `T` and `Z`). Returns whole seconds since the epoch (the fraction is checked, then dropped).
pub fn parse_rfc3339_utc(s: &str) -> Result<i64, TimeError> {
    let b = s.as_bytes();
    let year = digits(b, 0, 4)?;
    expect(b, 4, b'-')?;
    let month = digits(b, 5, 2)?;
    expect(b, 7, b'-')?;
    let day = digits(b, 8, 2)?;
    expect(b, 10, b'T')?;
    let hour = digits(b, 11, 2)?;
    expect(b, 13, b':')?;
    let minute = digits(b, 14, 2)?;
    expect(b, 16, b':')?;
    let second = digits(b, 17, 2)?;
    let mut at = 19;
    if b.get(at) == Some(&b'.') {
        at += 1;
        let start = at;
        while b.get(at).is_some_and(u8::is_ascii_digit) {
            at += 1;
        }
        if at == start || at - start > 9 {
            return Err(TimeError::Syntax);
        }
    }
    let utc = match &b[at.min(b.len())..] {
        b"Z" => true,
        [sign @ (b'+' | b'-'), rest @ ..] if rest.len() == 5 => {
            let oh = digits(rest, 0, 2)?;
            expect(rest, 2, b':')?;
            let om = digits(rest, 3, 2)?;
            if oh > 23 || om > 59 {
                return Err(TimeError::Syntax);
            }
            // `-00:00` means "offset unknown" in RFC 3339: not a UTC statement.
            *sign == b'+' && oh == 0 && om == 0
        }
        _ => return Err(TimeError::Syntax),
    };
    let year = i64::from(year);
    if !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return Err(TimeError::Syntax);
    }
    if !utc {
        return Err(TimeError::NotUtc);
    }
    Ok(days_from_civil(year, month, day) * 86_400 + i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates() {
        assert_eq!(format_http_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(format_http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
    }

    #[test]
    fn round_trips_known_dates() {
        assert_eq!(parse_rfc3339_utc("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse_rfc3339_utc("2026-04-24T10:15:00Z"), Ok(1_777_025_700));
        assert_eq!(format_rfc3339(1_777_025_700), "2026-04-24T10:15:00Z");
        assert_eq!(format_rfc3339(-1), "1969-12-31T23:59:59Z");
        assert_eq!(parse_rfc3339_utc("2000-02-29T12:00:00Z"), Ok(951_825_600));
        for d in (-800_000..800_000).step_by(997) {
            let (y, m, dd) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, dd), d);
        }
    }

    #[test]
    fn accepts_utc_forms() {
        let z = parse_rfc3339_utc("2026-04-24T10:15:00Z").unwrap();
        assert_eq!(parse_rfc3339_utc("2026-04-24T10:15:00+00:00"), Ok(z));
        assert_eq!(parse_rfc3339_utc("2026-04-24T10:15:00.123Z"), Ok(z));
        assert_eq!(parse_rfc3339_utc("2026-04-24T10:15:00.123456789+00:00"), Ok(z));
    }

    #[test]
    fn refuses_bad_forms() {
        for bad in [
            "",
            "2026-04-24",
            "2026-04-24 10:15:00Z",
            "2026-04-24t10:15:00Z",
            "2026-04-24T10:15:00z",
            "2026-04-24T10:15:00",
            "2026-04-24T10:15Z",
            "2026-02-30T10:15:00Z",
            "2025-02-29T10:15:00Z",
            "2026-13-01T10:15:00Z",
            "2026-04-24T24:00:00Z",
            "2026-04-24T10:15:00.Z",
            "2026-04-24T10:15:00.1234567890Z",
            "2026-04-24T10:15:00Zjunk",
            "+2026-04-24T10:15:00Z",
        ] {
            assert_eq!(parse_rfc3339_utc(bad), Err(TimeError::Syntax), "{bad}");
        }
        assert_eq!(parse_rfc3339_utc("2026-04-24T10:15:00+02:00"), Err(TimeError::NotUtc));
        assert_eq!(parse_rfc3339_utc("2026-04-24T10:15:00-00:00"), Err(TimeError::NotUtc));
    }
}
