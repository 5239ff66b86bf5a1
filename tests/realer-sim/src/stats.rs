//! Request counters for benchmarks: totals per HTTP status and per endpoint, and per-second buckets, cheap to
//! keep for a fleet of devices and cheap to poll (`GET /_sim/stats`, [`crate::Sim::stats`]).

use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};

use crate::routes::Route;

/// How many one-second buckets are kept (the oldest are dropped): one day.
const MAX_SECONDS: usize = 24 * 60 * 60;

/// Requests counted per second since the sim started (or since the counters were reset).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SecondStats {
    /// Whole seconds since the sim started.
    pub second: u64,
    pub total: u64,
    /// HTTP status (0: no answer was sent) -> requests.
    pub by_status: BTreeMap<u16, u64>,
}

/// Every non-admin request counted, by status and endpoint, with per-second buckets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    pub total: u64,
    /// HTTP status (0: no answer was sent) -> requests.
    pub by_status: BTreeMap<u16, u64>,
    /// Endpoint (`token`, `revoke`, `commands`, `sensors`, `desired_states`, `feed_data`, `batches`, `other`)
    /// -> HTTP status -> requests.
    pub by_endpoint: BTreeMap<&'static str, BTreeMap<u16, u64>>,
    /// One bucket per second in which requests arrived, oldest first.
    pub per_second: VecDeque<SecondStats>,
}

/// The endpoint name a request's path is counted under.
pub(crate) fn endpoint(path: &str) -> &'static str {
    match Route::parse(path) {
        Some(Route::Token) => "token",
        Some(Route::Revoke) => "revoke",
        Some(Route::Commands { .. }) => "commands",
        Some(Route::Sensors { .. }) => "sensors",
        Some(Route::DesiredStates { .. }) => "desired_states",
        Some(Route::FeedData { .. }) => "feed_data",
        Some(Route::Batches { .. }) => "batches",
        None => "other",
    }
}

impl Stats {
    pub(crate) fn count(&mut self, endpoint: &'static str, status: u16, second: u64) {
        self.total += 1;
        *self.by_status.entry(status).or_default() += 1;
        *self.by_endpoint.entry(endpoint).or_default().entry(status).or_default() += 1;
        // Requests are counted when answered, so a slow one may land after a later second's bucket.
        let at = self.per_second.iter().rposition(|b| b.second <= second);
        let bucket = match at {
            Some(i) if self.per_second[i].second == second => &mut self.per_second[i],
            Some(i) => {
                self.per_second.insert(i + 1, SecondStats { second, ..SecondStats::default() });
                &mut self.per_second[i + 1]
            }
            None => {
                self.per_second.push_front(SecondStats { second, ..SecondStats::default() });
                &mut self.per_second[0]
            }
        };
        bucket.total += 1;
        *bucket.by_status.entry(status).or_default() += 1;
        if self.per_second.len() > MAX_SECONDS {
            self.per_second.pop_front();
        }
    }

    /// A copy with only the buckets from `since_second` on.
    pub(crate) fn since(&self, since_second: u64) -> Stats {
        Stats {
            total: self.total,
            by_status: self.by_status.clone(),
            by_endpoint: self.by_endpoint.clone(),
            per_second: self.per_second.iter().filter(|b| b.second >= since_second).cloned().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_status_endpoint_and_second() {
        let mut s = Stats::default();
        s.count("feed_data", 201, 3);
        s.count("feed_data", 429, 3);
        s.count("token", 200, 5);
        s.count("feed_data", 201, 4); // answered late
        assert_eq!(s.total, 4);
        assert_eq!(s.by_status[&201], 2);
        assert_eq!(s.by_endpoint["feed_data"][&429], 1);
        let seconds: Vec<(u64, u64)> = s.per_second.iter().map(|b| (b.second, b.total)).collect();
        assert_eq!(seconds, vec![(3, 2), (4, 1), (5, 1)]);
        assert_eq!(s.since(4).per_second.len(), 2);
        s.count("other", 404, 1);
        assert_eq!(s.per_second[0].second, 1);
    }
}
