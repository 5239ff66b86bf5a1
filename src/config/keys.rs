//! The settings a program may give by name, and those names: the `REALER_*` variables of the environment, and
//! the same keys in a file of `KEY=value` lines, so that a device's secret need not sit in its environment
//! (which other processes of the same user can read in `/proc`). A file that holds the secret must be readable
//! by its owner only.

use std::collections::HashMap;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;

use super::Config;
use crate::error::{Error, Result};

/// [`Config::set_base_url`].
pub(crate) const BASE_URL: &str = "REALER_BASE_URL";
/// [`Config::set_device_id`].
pub(crate) const DEVICE_ID: &str = "REALER_DEVICE_ID";
/// [`Config::set_credentials`], with [`CLIENT_SECRET`].
pub(crate) const CLIENT_ID: &str = "REALER_CLIENT_ID";
/// [`Config::set_credentials`], with [`CLIENT_ID`].
pub(crate) const CLIENT_SECRET: &str = "REALER_CLIENT_SECRET";
/// [`Config::set_ca_file`].
pub(crate) const CA_FILE: &str = "REALER_CA_FILE";
/// [`Config::set_scope`].
pub(crate) const SCOPE: &str = "REALER_SCOPE";
/// [`Config::set_proxy`].
pub(crate) const PROXY: &str = "REALER_PROXY";
/// Every key, in the order they are applied: the environment's variables and a file's keys are the same.
const KEYS: [&str; 7] = [BASE_URL, DEVICE_ID, CLIENT_ID, CLIENT_SECRET, CA_FILE, SCOPE, PROXY];
/// Larger files are refused: a configuration is a few lines.
const MAX_FILE_BYTES: u64 = 64 * 1024;

/// Reads `KEY=value` lines: blank lines and lines starting with `#` are skipped; the value is everything
/// after the first `=`, as it is (no quotes, no escapes; a trailing CR is dropped). Errors name the line.
pub(crate) fn parse(text: &str) -> Result<HashMap<String, String>> {
    let mut out = HashMap::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let at = |why: String| Error::config(format!("line {}: {why}", n + 1));
        let Some((key, value)) = trimmed.split_once('=') else {
            return Err(at("expected KEY=value".into()));
        };
        let key = key.trim();
        if !KEYS.contains(&key) {
            return Err(at(format!("unknown key {} (known: {})", shown_key(key), KEYS.join(", "))));
        }
        if out.insert(key.to_string(), value.to_string()).is_some() {
            return Err(at(format!("{key} is set twice")));
        }
    }
    Ok(out)
}

/// What a message may show of an unknown key: what is before the `=` of a line may be a value, not a key (a
/// secret on a line of its own, or after a `:` typed for the `=` when it ends in `=`, as base64 does). Shown: a
/// known key the text starts with, or a text that reads as a key name (`REALER_` and upper-case letters,
/// digits and `_`); nothing else.
fn shown_key(key: &str) -> String {
    if let Some(known) = KEYS.iter().find(|k| key.starts_with(**k)) {
        return format!("{known:?} followed by other characters (not shown)");
    }
    let name = key.starts_with("REALER_")
        && key.len() <= 64
        && key.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
    if name {
        format!("{key:?}")
    } else {
        "(not shown: it is not a REALER_ name, and may be a value)".to_string()
    }
}

impl Config {
    /// Applies the settings in the file at `path`: `KEY=value` lines (blank lines and lines starting with `#`
    /// skipped; the value is everything after the first `=`, as it is), with the same keys and rules as
    /// [`Config::apply_env`]. A file holding `REALER_CLIENT_SECRET` that its group or others may read is
    /// refused, as is anything but a regular file. Errors name the file and the line, never a value.
    pub fn apply_file(&mut self, path: &str) -> Result<()> {
        let named = |e: Error| Error::config(format!("config file {path:?}: {}", e.message));
        let file = std::fs::File::open(path).map_err(|e| named(Error::config(e.to_string())))?;
        let meta = file.metadata().map_err(|e| named(Error::config(e.to_string())))?;
        if !meta.is_file() {
            return Err(named(Error::config("not a regular file")));
        }
        let mut bytes = Vec::new();
        file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes).map_err(|e| named(Error::config(e.to_string())))?;
        if bytes.len() as u64 > MAX_FILE_BYTES {
            return Err(named(Error::config(format!("larger than {MAX_FILE_BYTES} bytes"))));
        }
        let text = String::from_utf8(bytes).map_err(|_| named(Error::config("not UTF-8")))?;
        let values = parse(&text).map_err(named)?;
        let mode = meta.permissions().mode() & 0o777;
        // A proxy URL with user info holds the proxy's password.
        let secret = if values.contains_key(CLIENT_SECRET) {
            Some(CLIENT_SECRET.to_string())
        } else {
            values.get(PROXY).filter(|v| v.contains('@')).map(|_| format!("{PROXY} with credentials"))
        };
        if let Some(what) = secret.filter(|_| mode & 0o077 != 0) {
            return Err(named(Error::config(format!(
                "it holds {what} but its group or others may read it (mode {mode:03o}): \
                 chmod 600 it (and keep it owned by the user the firmware runs as)"
            ))));
        }
        self.apply_env(|k| values.get(k).cloned()).map_err(named)
    }

    /// Applies `REALER_BASE_URL`, `REALER_DEVICE_ID`, `REALER_CLIENT_ID`, `REALER_CLIENT_SECRET`,
    /// `REALER_CA_FILE`, `REALER_SCOPE` and `REALER_PROXY`, each only when set. `REALER_CLIENT_ID` and
    /// `REALER_CLIENT_SECRET` go together. The first refused value fails the call, naming the variable.
    pub fn apply_env(&mut self, mut get: impl FnMut(&str) -> Option<String>) -> Result<()> {
        let named = |var: &str, r: Result<()>| r.map_err(|e| Error::config(format!("{var}: {}", e.message)));
        if let Some(v) = get(BASE_URL) {
            named(BASE_URL, self.set_base_url(&v))?;
        }
        if let Some(v) = get(DEVICE_ID) {
            named(DEVICE_ID, self.set_device_id(&v))?;
        }
        match (get(CLIENT_ID), get(CLIENT_SECRET)) {
            (Some(id), Some(secret)) => {
                named(&format!("{CLIENT_ID}/{CLIENT_SECRET}"), self.set_credentials(&id, &secret))?
            }
            (None, None) => {}
            _ => return Err(Error::config(format!("{CLIENT_ID} and {CLIENT_SECRET} must be set together"))),
        }
        if let Some(v) = get(CA_FILE) {
            named(CA_FILE, self.set_ca_file(&v))?;
        }
        if let Some(v) = get(SCOPE) {
            named(SCOPE, self.set_scope(&v))?;
        }
        if let Some(v) = get(PROXY) {
            named(PROXY, self.set_proxy(&v))?;
        }
        Ok(())
    }

    /// Applies the process environment (see [`Config::apply_env`]); a variable that is not UTF-8 is refused.
    pub fn from_env(&mut self) -> Result<()> {
        let mut bad = None;
        let r = self.apply_env(|k| match std::env::var(k) {
            Ok(v) => Some(v),
            Err(std::env::VarError::NotPresent) => None,
            Err(std::env::VarError::NotUnicode(_)) => {
                bad.get_or_insert_with(|| k.to_string());
                None
            }
        });
        match bad {
            Some(k) => Err(Error::config(format!("{k} is not valid UTF-8"))),
            None => r,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_follow_the_variables_rules() {
        let v =
            parse("# a comment\n\n  REALER_DEVICE_ID=12345\r\nREALER_SCOPE=a b=c\nREALER_CLIENT_SECRET=\n").unwrap();
        assert_eq!(v["REALER_DEVICE_ID"], "12345");
        assert_eq!(v["REALER_SCOPE"], "a b=c");
        assert_eq!(v["REALER_CLIENT_SECRET"], "");
        let e = parse("REALER_DEVICE_ID=1\nREALER_DEVICE_ID=2").unwrap_err();
        assert!(e.message.contains("line 2") && e.message.contains("twice"), "{}", e.message);
        let e = parse("REALER_DEVICE_ID 1").unwrap_err();
        assert!(e.message.contains("line 1: expected KEY=value"), "{}", e.message);
        let e = parse("REALER_PASSWORD=hunter2").unwrap_err();
        assert!(
            e.message.contains("unknown key \"REALER_PASSWORD\"") && !e.message.contains("hunter2"),
            "{}",
            e.message
        );
        // What may be a value is never shown: a secret after a ':' (base64 ends in '='), or on its own line.
        for line in ["REALER_CLIENT_SECRET: aHVudGVyMg==", "aHVudGVyMg==", "export REALER_CLIENT_SECRET=x"] {
            let e = parse(line).unwrap_err();
            assert!(e.message.contains("unknown key") && !e.message.contains("aHVudGVyMg"), "{}", e.message);
        }
        let e = parse("REALER_CLIENT_SECRET: aHVudGVyMg==").unwrap_err();
        assert!(e.message.contains("\"REALER_CLIENT_SECRET\" followed by other characters"), "{}", e.message);
    }

    #[test]
    fn a_secret_file_others_can_read_is_refused() {
        let dir = std::env::temp_dir().join(format!("realer-config-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("realer.conf");
        std::fs::write(&path, "REALER_DEVICE_ID=12345\nREALER_CLIENT_ID=cdv_x\nREALER_CLIENT_SECRET=s3cret-value\n")
            .unwrap();
        let p = path.to_str().unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = Config::new().apply_file(p).unwrap_err();
        assert!(e.message.contains("mode 644") && e.message.contains("chmod 600"), "{}", e.message);
        assert!(!e.message.contains("s3cret-value"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let mut c = Config::new();
        c.apply_file(p).unwrap();
        assert_eq!((c.device_id(), c.client_id()), (Some("12345"), Some("cdv_x")));
        // Without the secret, a readable file is fine.
        std::fs::write(&path, "REALER_DEVICE_ID=777\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        Config::new().apply_file(p).unwrap();
        // Bad values are named by their key, as variables are.
        std::fs::write(&path, "REALER_BASE_URL=ftp://x\n").unwrap();
        let e = Config::new().apply_file(p).unwrap_err();
        assert!(e.message.contains("REALER_BASE_URL"), "{}", e.message);
        assert!(Config::new().apply_file(dir.to_str().unwrap()).unwrap_err().message.contains("regular file"));
        assert!(Config::new().apply_file("/nonexistent/realer.conf").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
