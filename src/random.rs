//! Random numbers from the operating system: message ids, backoff jitter, file and owner names.

use ring::rand::{SecureRandom, SystemRandom};

/// 8 random bytes from the OS.
pub(crate) fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    if SystemRandom::new().fill(&mut b).is_err() {
        // getrandom cannot fail on Linux >= 3.17; fall back to the clock rather than fail a report.
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        return u64::from(t.subsec_nanos()) ^ t.as_secs().rotate_left(32);
    }
    u64::from_le_bytes(b)
}
