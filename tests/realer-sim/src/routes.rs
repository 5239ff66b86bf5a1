//! The paths the sim serves and the method each one takes.

/// A recognised non-admin path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route<'a> {
    Token,
    Revoke,
    Commands { device: &'a str, item: Option<&'a str> },
    Sensors { device: &'a str, item: Option<&'a str> },
    DesiredStates { device: &'a str },
    FeedData { device: &'a str },
    Batches { device: &'a str },
}

impl<'a> Route<'a> {
    pub fn parse(path: &'a str) -> Option<Route<'a>> {
        match path {
            "/oauth/token" => return Some(Route::Token),
            "/oauth/revoke" => return Some(Route::Revoke),
            _ => {}
        }
        let rest = path.strip_prefix("/iot/v1/devices/")?;
        let segments: Vec<&str> = rest.split('/').collect();
        if segments.iter().any(|s| s.is_empty()) {
            return None;
        }
        Some(match segments.as_slice() {
            [device, "commands"] => Route::Commands { device, item: None },
            [device, "commands", id] => Route::Commands { device, item: Some(id) },
            [device, "sensors"] => Route::Sensors { device, item: None },
            [device, "sensors", id] => Route::Sensors { device, item: Some(id) },
            [device, "desired-states"] => Route::DesiredStates { device },
            [device, "feed-data"] => Route::FeedData { device },
            [device, "feed-data", "batches"] => Route::Batches { device },
            _ => return None,
        })
    }

    /// The only method this path answers.
    pub fn method(&self) -> &'static str {
        match self {
            Route::Commands { .. } | Route::Sensors { .. } | Route::DesiredStates { .. } => "GET",
            _ => "POST",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_paths() {
        assert_eq!(Route::parse("/oauth/token"), Some(Route::Token));
        assert_eq!(
            Route::parse("/iot/v1/devices/12345/commands/1"),
            Some(Route::Commands { device: "12345", item: Some("1") })
        );
        assert_eq!(Route::parse("/iot/v1/devices/12345/feed-data/batches"), Some(Route::Batches { device: "12345" }));
        assert_eq!(Route::parse("/iot/v1/devices/12345/commands/"), None);
        assert_eq!(Route::parse("/iot/v1/devices//commands"), None);
        assert_eq!(Route::parse("/iot/v1/devices/12345/other"), None);
        assert_eq!(Route::parse("/"), None);
    }
}
