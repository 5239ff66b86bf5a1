//! Log lines for the embedding firmware: a callback it installs, filtered by level before any formatting.
//! Nothing logged here may contain the client secret or a token.

use std::fmt;
use std::sync::Arc;

/// Severity of a log line; a logger receives lines at or below its `max_level`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Something failed.
    Error = 1,
    /// Something went wrong and was handled (a retry, a fallback, a dropped item).
    Warn = 2,
    /// What the client did (a token fetched, a fallback chosen).
    Info = 3,
    /// Details for debugging.
    Debug = 4,
}

impl Level {
    /// The level of a C `realer_log_level` value (1 to 4); `None` for another.
    pub fn from_i32(v: i32) -> Option<Level> {
        match v {
            1 => Some(Level::Error),
            2 => Some(Level::Warn),
            3 => Some(Level::Info),
            4 => Some(Level::Debug),
            _ => None,
        }
    }
}

type Sink = dyn Fn(Level, &str) + Send + Sync;

/// A log callback and the most verbose level it wants.
#[derive(Clone)]
pub struct Logger {
    sink: Arc<Sink>,
    max_level: Level,
}

impl Logger {
    /// A logger that hands `sink` every line at `max_level` or more severe.
    pub fn new(max_level: Level, sink: impl Fn(Level, &str) + Send + Sync + 'static) -> Logger {
        Logger { sink: Arc::new(sink), max_level }
    }

    /// Whether a line at `level` would reach the sink (checked before anything is formatted).
    pub fn enabled(&self, level: Level) -> bool {
        level <= self.max_level
    }

    /// The same logger, with every line passed through `filter` first (the client redacts what a server
    /// echoed).
    pub(crate) fn filtered(&self, filter: impl Fn(&str) -> String + Send + Sync + 'static) -> Logger {
        let sink = self.sink.clone();
        Logger { sink: Arc::new(move |level, line: &str| sink(level, &filter(line))), max_level: self.max_level }
    }

    /// Hands the line to the sink when its level is enabled.
    pub fn log(&self, level: Level, args: fmt::Arguments<'_>) {
        if self.enabled(level) {
            (self.sink)(level, &args.to_string());
        }
    }
}

impl fmt::Debug for Logger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Logger(max_level: {:?})", self.max_level)
    }
}

/// Logs through an optional logger: `log!(self.logger, Level::Info, "...", args)`.
macro_rules! log {
    ($logger:expr, $level:expr, $($arg:tt)+) => {
        if let Some(l) = $logger.as_ref() {
            l.log($level, format_args!($($arg)+));
        }
    };
}
pub(crate) use log;
