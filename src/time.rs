//! RFC 3339 timestamps in UTC, the only form Realer takes for `value_received_at` and gives for `expires_at`,
//! and HTTP dates (RFC 9110), the other form of `Retry-After`. Hand-written (civil-from-days arithmetic)
//! because a date crate would be the largest dependency for three functions.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, from the wall clock.
pub fn now_unix_ms() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

// Howard Hinnant's days_from_civil / civil_from_days.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// The timestamp of `unix_ms` as a caller asks for it (`realer_timestamp_format`): 0 means now; a time
/// before 1970 or after 9999 is an invalid argument.
pub fn format_timestamp(unix_ms: i64) -> crate::error::Result<String> {
    use crate::error::Error;
    if unix_ms < 0 {
        return Err(Error::invalid("unix_ms must not be negative"));
    }
    let ms = if unix_ms == 0 { now_unix_ms() } else { unix_ms };
    format_rfc3339_ms(ms).ok_or_else(|| Error::invalid("unix_ms is after year 9999"))
}

/// Formats as `YYYY-MM-DDTHH:MM:SS.mmmZ`. Years outside 0..=9999 cannot be written in RFC 3339.
pub fn format_rfc3339_ms(unix_ms: i64) -> Option<String> {
    let days = unix_ms.div_euclid(86_400_000);
    let ms_of_day = unix_ms.rem_euclid(86_400_000);
    let (y, m, d) = civil_from_days(days);
    if !(0..=9999).contains(&y) {
        return None;
    }
    let secs = ms_of_day / 1000;
    Some(format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        ms_of_day % 1000
    ))
}

/// A caller's timestamp in Realer's form, `YYYY-MM-DDTHH:MM:SS[.fff]Z` (contract section 4: ISO 8601 UTC):
/// any RFC 3339 timestamp is taken (`t` and `z` in lower case, an offset such as `+02:00` or `-00:00`, a
/// fraction of any length up to 9 digits) and written in UTC, with an upper-case `T` and `Z`; a fraction
/// becomes milliseconds (digits past the third are dropped: `.5` is `.500`), none stays none; a leap
/// second (`:60`) becomes `:59`. A timestamp already in that form is returned as it is. `Err` says why one
/// is refused: not RFC 3339, not a calendar date, or outside years 0000-9999 once in UTC.
pub fn normalize_timestamp(s: &str) -> Result<String, &'static str> {
    let ms = parse(s, true)?;
    let b = s.as_bytes();
    let fraction = b.get(19) == Some(&b'.');
    let realer_form = b[10] == b'T'
        && b.last() == Some(&b'Z')
        && b[17..19] != *b"60"
        && if fraction { b.len() == 24 } else { b.len() == 20 };
    if realer_form {
        return Ok(s.to_string());
    }
    let mut out = format_rfc3339_ms(ms).ok_or("is outside years 0000-9999 in UTC")?;
    if !fraction {
        // "….000Z" -> "…Z": no fraction was given, none is invented.
        out.truncate(19);
        out.push('Z');
    }
    Ok(out)
}

/// Parses an RFC 3339 timestamp in UTC (`Z`, `z` or `+00:00`, optional fraction) to Unix milliseconds.
/// Other offsets are refused: Realer's feed data is UTC only.
pub fn parse_rfc3339_utc_ms(s: &str) -> Result<i64, &'static str> {
    parse(s, false)
}

/// Parses an RFC 3339 timestamp with any offset to Unix milliseconds (for answers the client only reads).
pub fn parse_rfc3339_any_ms(s: &str) -> Result<i64, &'static str> {
    parse(s, true)
}

fn parse(s: &str, any_offset: bool) -> Result<i64, &'static str> {
    const FORM: &str = "must be an RFC 3339 timestamp like 2026-04-24T10:15:00Z";
    let b = s.as_bytes();
    if b.len() < 20 {
        return Err(FORM);
    }
    let num = |r: std::ops::Range<usize>| -> Result<u32, &'static str> {
        let part = &b[r];
        if part.iter().all(u8::is_ascii_digit) {
            Ok(part.iter().fold(0u32, |a, d| a * 10 + u32::from(d - b'0')))
        } else {
            Err(FORM)
        }
    };
    if b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') || b[13] != b':' || b[16] != b':' {
        return Err(FORM);
    }
    let (y, mo, d, h, mi, sec) = (num(0..4)?, num(5..7)?, num(8..10)?, num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || d == 0 || d > days_in_month(i64::from(y), mo) || h > 23 || mi > 59 || sec > 60 {
        return Err("is not a valid calendar date and time");
    }
    let mut i = 19;
    let mut frac_ms = 0u32;
    if b[i] == b'.' {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start || i - start > 9 {
            return Err(FORM);
        }
        let digits = &b[start..i.min(start + 3)];
        frac_ms = digits.iter().fold(0u32, |a, d| a * 10 + u32::from(d - b'0'));
        for _ in digits.len()..3 {
            frac_ms *= 10;
        }
    }
    let offset_min: i64 = match &b[i..] {
        b"Z" | b"z" => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let digits = [*h1, *h2, *m1, *m2];
            if !digits.iter().all(u8::is_ascii_digit) {
                return Err(FORM);
            }
            let v = i64::from((h1 - b'0') * 10 + (h2 - b'0')) * 60 + i64::from((m1 - b'0') * 10 + (m2 - b'0'));
            let v = if *sign == b'-' { -v } else { v };
            if v != 0 && !any_offset {
                return Err("must be in UTC (Z or +00:00)");
            }
            v
        }
        _ => return Err(FORM),
    };
    let days = days_from_civil(i64::from(y), mo, d);
    // A leap second (:60) is counted as the last millisecond of its minute's 59th second.
    let secs = days * 86_400 + i64::from(h) * 3600 + i64::from(mi) * 60 + i64::from(sec.min(59)) - offset_min * 60;
    Ok(secs * 1000 + i64::from(frac_ms))
}

const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const LONG_DAYS: [&str; 7] = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];

/// Parses an HTTP date (RFC 9110 section 5.6.7) to Unix milliseconds: the IMF-fixdate
/// `Sun, 06 Nov 1994 08:49:37 GMT`, and the obsolete forms a recipient must accept, RFC 850
/// `Sunday, 06-Nov-94 08:49:37 GMT` (a two-digit year more than 50 years ahead is in the past century) and
/// asctime `Sun Nov  6 08:49:37 1994`. The day name is checked for form, not against the date.
pub fn parse_http_date_ms(s: &str) -> Option<i64> {
    let digits = |t: &str, n: usize| -> Option<u32> {
        (t.len() == n && t.bytes().all(|b| b.is_ascii_digit())).then(|| t.parse().ok())?
    };
    let month = |t: &str| MONTHS.iter().position(|m| *m == t).map(|i| i as u32 + 1);
    let clock = |t: &str| -> Option<(u32, u32, u32)> {
        let mut p = t.split(':');
        let hms = (digits(p.next()?, 2)?, digits(p.next()?, 2)?, digits(p.next()?, 2)?);
        p.next().is_none().then_some(hms)
    };
    let (y, mo, d, (h, mi, sec)) = if let Some((day, rest)) = s.split_once(", ") {
        let parts: Vec<&str> = rest.split(' ').collect();
        if DAYS.contains(&day) {
            // IMF-fixdate: day-name "," SP date1 SP time-of-day SP GMT, date1 = 2DIGIT SP month SP 4DIGIT
            let [d, mo, y, t, "GMT"] = parts[..] else { return None };
            (i64::from(digits(y, 4)?), month(mo)?, digits(d, 2)?, clock(t)?)
        } else if LONG_DAYS.contains(&day) {
            // RFC 850: day-name-l "," SP date2 SP time-of-day SP GMT, date2 = 2DIGIT "-" month "-" 2DIGIT
            let [date, t, "GMT"] = parts[..] else { return None };
            let mut p = date.split('-');
            let (d, mo, yy) = (digits(p.next()?, 2)?, month(p.next()?)?, digits(p.next()?, 2)?);
            if p.next().is_some() {
                return None;
            }
            // RFC 9110: a two-digit year more than 50 years in the future is the most recent past one.
            let this_year = civil_from_days(now_unix_ms().div_euclid(86_400_000)).0;
            let mut y = this_year - this_year.rem_euclid(100) + i64::from(yy);
            if y > this_year + 50 {
                y -= 100;
            }
            (y, mo, d, clock(t)?)
        } else {
            return None;
        }
    } else {
        // asctime: day-name SP month SP ( 2DIGIT / ( SP DIGIT ) ) SP time-of-day SP year
        let b = s.as_bytes();
        if !s.is_ascii()
            || b.len() != 24
            || b[3] != b' '
            || b[7] != b' '
            || b[10] != b' '
            || b[19] != b' '
            || !DAYS.contains(&&s[..3])
        {
            return None;
        }
        let day = s[8..10].trim_start_matches(' ');
        let d = if day.len() == 1 { digits(day, 1)? } else { digits(day, 2)? };
        (i64::from(digits(&s[20..], 4)?), month(&s[4..7])?, d, clock(&s[11..19])?)
    };
    if d == 0 || d > days_in_month(y, mo) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let secs = days_from_civil(y, mo, d) * 86_400 + i64::from(h) * 3600 + i64::from(mi) * 60 + i64::from(sec.min(59));
    Some(secs * 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for ms in [0, 1_777_025_700_000, 951_782_400_123, -1, 253_402_300_799_999] {
            let s = format_rfc3339_ms(ms).unwrap();
            assert_eq!(parse_rfc3339_utc_ms(&s).unwrap(), ms, "{s}");
        }
        assert_eq!(format_rfc3339_ms(1_777_025_700_000).unwrap(), "2026-04-24T10:15:00.000Z");
        assert_eq!(format_rfc3339_ms(253_402_300_800_000), None);
    }

    #[test]
    fn parses_forms() {
        assert_eq!(parse_rfc3339_utc_ms("2026-04-24T10:15:00Z"), Ok(1_777_025_700_000));
        assert_eq!(parse_rfc3339_utc_ms("2026-04-24T10:15:00+00:00"), Ok(1_777_025_700_000));
        assert_eq!(parse_rfc3339_utc_ms("2026-04-24T10:15:00.5Z"), Ok(1_777_025_700_500));
        assert_eq!(parse_rfc3339_utc_ms("2026-04-24T10:15:00.123456789Z"), Ok(1_777_025_700_123));
        assert_eq!(parse_rfc3339_any_ms("2026-04-24T12:15:00+02:00"), Ok(1_777_025_700_000));
        assert_eq!(parse_rfc3339_utc_ms("2024-02-29T00:00:00Z"), Ok(1_709_164_800_000));
    }

    #[test]
    fn caller_timestamps_are_normalised_to_realers_form() {
        for (given, sent) in [
            ("2026-04-24T10:15:00Z", "2026-04-24T10:15:00Z"),
            ("2026-04-24T10:15:00.123Z", "2026-04-24T10:15:00.123Z"),
            ("2026-04-24t10:15:00z", "2026-04-24T10:15:00Z"),
            ("2026-04-24T10:15:00-00:00", "2026-04-24T10:15:00Z"),
            ("2026-04-24T10:15:00+00:00", "2026-04-24T10:15:00Z"),
            ("2026-04-24T12:15:00+02:00", "2026-04-24T10:15:00Z"),
            ("2026-04-24T00:15:00.5+01:30", "2026-04-23T22:45:00.500Z"),
            ("2026-04-24T10:15:00.123456789Z", "2026-04-24T10:15:00.123Z"),
            ("2026-04-24T10:15:00.1z", "2026-04-24T10:15:00.100Z"),
            ("2026-12-31T23:59:60Z", "2026-12-31T23:59:59Z"),
            ("0000-01-01T00:00:00Z", "0000-01-01T00:00:00Z"),
        ] {
            assert_eq!(normalize_timestamp(given).as_deref(), Ok(sent), "{given}");
            assert_eq!(parse_rfc3339_utc_ms(sent), parse_rfc3339_any_ms(given), "{given}: the same instant");
        }
        assert_eq!(normalize_timestamp("0000-01-01T00:30:00+01:00"), Err("is outside years 0000-9999 in UTC"));
        assert_eq!(normalize_timestamp("9999-12-31T23:30:00-01:00"), Err("is outside years 0000-9999 in UTC"));
        for bad in ["2026-04-24 10:15:00Z", "2026-04-24T10:15:00", "2026-04-24T10:15:00+0200", "yesterday"] {
            assert!(normalize_timestamp(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn http_dates_in_all_three_forms() {
        let t = 784_111_777_000; // 1994-11-06T08:49:37Z, RFC 9110's example
        assert_eq!(parse_http_date_ms("Sun, 06 Nov 1994 08:49:37 GMT"), Some(t));
        assert_eq!(parse_http_date_ms("Sun Nov  6 08:49:37 1994"), Some(t));
        assert_eq!(parse_http_date_ms("Sun Nov 16 08:49:37 1994"), Some(t + 10 * 86_400_000));
        // RFC 850 years are two digits: "94" is 1994 only while 1994 is less than 50 years back.
        let this_year = civil_from_days(now_unix_ms().div_euclid(86_400_000)).0;
        let yy = this_year % 100;
        let rfc850 = format!("Sunday, 06-Nov-{yy:02} 08:49:37 GMT");
        let expected = days_from_civil(this_year, 11, 6) * 86_400_000 + (8 * 3600 + 49 * 60 + 37) * 1000;
        assert_eq!(parse_http_date_ms(&rfc850), Some(expected));
        assert_eq!(
            parse_http_date_ms("Thu, 29 Feb 2024 23:59:60 GMT"),
            Some(1_709_251_199_000),
            "leap day, leap second"
        );
        for bad in [
            "",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 6 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 94 08:49:37 GMT",
            "Sun, 06 nov 1994 08:49:37 GMT",
            "Sun, 31 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 24:00:00 GMT",
            "Sun, 06 Nov 1994 08:49 GMT",
            "Sun, 06 Nov 1994 08:49:37:00 GMT",
            "Sun, 06 Nov 1994  08:49:37 GMT",
            "Xyz, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-1994 08:49:37 GMT",
            "Sunday, 06-Nov-94-1 08:49:37 GMT",
            "Sun Nov 6 08:49:37 1994",
            "Sun Nov  6 08:49:37 94",
            "Sun, 06 Nov 1994 08:49:37 GMT ",
            "Sun, ０6 Nov 1994 08:49:37 GMT",
            "Sun Nov  ６08:49:37 1994",
        ] {
            assert_eq!(parse_http_date_ms(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn refuses_bad_forms() {
        for bad in [
            "",
            "2026-04-24 10:15:00Z",
            "2026-04-24T10:15:00",
            "2026-04-24T10:15Z",
            "2026-13-01T00:00:00Z",
            "2025-02-29T00:00:00Z",
            "2026-04-24T24:00:00Z",
            "2026-04-24T10:15:00.Z",
            "2026-04-24T10:15:00Zjunk",
            "2026-04-24T10:15:00+0000",
            "２026-04-24T10:15:00Z",
        ] {
            assert!(parse_rfc3339_utc_ms(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_rfc3339_utc_ms("2026-04-24T12:15:00+02:00"), Err("must be in UTC (Z or +00:00)"));
    }
}
