//! Value validation by type, as Realer validates feed-data values "through the canonical semantic contract":
//! what a command's `value_type` or a sensor's `mu` says a value must be. Only what the contract names is
//! checked (numbers for `NumericRange`, 0 or 1 for `Binary`, no empty value); other value types (`Enum`,
//! `Boolean`, …) take any non-empty string, since their canonical forms are not public.

/// Whether the value is a decimal number in the syntax devices send (`21.4`, `-3`, `1e3`, `1.0`, `+2`, `.5`):
/// no spaces, no `inf`/`NaN`, no hexadecimal, no thousands separators. Its size is not limited: the
/// contract names none.
pub(crate) fn is_number(value: &str) -> bool {
    let b = value.as_bytes();
    let mut i = usize::from(matches!(b.first(), Some(b'+' | b'-')));
    let digits = |i: &mut usize| {
        let from = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i - from
    };
    let mut mantissa = digits(&mut i);
    if b.get(i) == Some(&b'.') {
        i += 1;
        mantissa += digits(&mut i);
    }
    if mantissa == 0 {
        return false;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// The value as a number, when it is one (see [`is_number`]; a huge one is infinite).
fn number(value: &str) -> Option<f64> {
    if is_number(value) {
        value.parse::<f64>().ok()
    } else {
        None
    }
}

/// Why `value` is not valid for a command of `value_type`; `None` when it is.
pub(crate) fn command_value_error(value_type: &str, value: &str) -> Option<String> {
    if value.trim().is_empty() {
        return Some("must not be empty".into());
    }
    match value_type {
        "NumericRange" if !is_number(value) => Some("must be a number for a NumericRange command".into()),
        "Binary" => match number(value) {
            Some(n) if n == 0.0 || n == 1.0 => None,
            _ => Some("must be 0 or 1 for a Binary command".into()),
        },
        _ => None,
    }
}

/// Whether a sensor's `mu` (measurement unit, `unit:decimals` as in `degree_celsius:0`) makes it numeric:
/// a named unit with a decimal count is a physical quantity, whose readings are numbers.
pub(crate) fn unit_is_numeric(mu: &str) -> bool {
    match mu.rsplit_once(':') {
        Some((unit, decimals)) => {
            !unit.is_empty() && !decimals.is_empty() && decimals.bytes().all(|b| b.is_ascii_digit())
        }
        None => false,
    }
}

/// Why `value` is not valid for a sensor (`numeric`: see [`unit_is_numeric`]); `None` when it is.
pub(crate) fn sensor_value_error(numeric: bool, value: &str) -> Option<String> {
    if value.trim().is_empty() {
        return Some("must not be empty".into());
    }
    if numeric && !is_number(value) {
        return Some("must be a number for this sensor".into());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        for ok in ["0", "1.0", "-3", "21.4", "1e3", "1E-07", "+2", ".5", "1.", "1e999", &"9".repeat(2000)] {
            assert!(is_number(ok), "{ok}");
        }
        for bad in ["", " 1", "1 ", "abc", "inf", "NaN", "0x10", "-", ".", "1,5", "e", "1e", "1e+", "--1", "1.2.3", "١"]
        {
            assert!(!is_number(bad), "{bad}");
        }
    }

    #[test]
    fn command_values() {
        assert_eq!(command_value_error("NumericRange", "21.5"), None);
        assert!(command_value_error("NumericRange", "on").is_some());
        assert_eq!(command_value_error("Binary", "1.0"), None);
        assert_eq!(command_value_error("Binary", "0"), None);
        assert!(command_value_error("Binary", "7").is_some());
        assert!(command_value_error("Binary", "0.5").is_some());
        assert!(command_value_error("Binary", "1e999").is_some());
        assert_eq!(command_value_error("Binary", "1e0"), None);
        assert!(command_value_error("Binary", "true").is_some());
        assert_eq!(command_value_error("Enum", "closed"), None);
        assert!(command_value_error("Enum", "").is_some());
        assert!(command_value_error("Boolean", " ").is_some());
    }

    #[test]
    fn sensor_units() {
        assert!(unit_is_numeric("degree_celsius:0"));
        assert!(unit_is_numeric("percent:1"));
        assert!(!unit_is_numeric("text"));
        assert!(!unit_is_numeric(":0"));
        assert!(!unit_is_numeric("lux:"));
        assert!(!unit_is_numeric("lux:x"));
        assert!(sensor_value_error(true, "abc").is_some());
        assert_eq!(sensor_value_error(false, "abc"), None);
        assert!(sensor_value_error(false, "").is_some());
    }
}
