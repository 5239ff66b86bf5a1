//! A Rust program using `realer` with its default features. It has its own global allocator: that it links
//! at all shows that the library brings none (two `#[global_allocator]`s in one program do not link), and
//! every allocation, the library's included, goes through the program's. It has its own `log` logger,
//! starts realer-sim (the binary named by its first argument), authenticates and posts a reading over TLS,
//! and fails unless:
//! - `log` records at debug level from ureq and rustls reached its logger (they are compiled out when
//!   `log`'s `max_level_off` is on, which only the C library's `capi` feature turns on);
//! - the reading was stored.

use std::alloc::System;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use log::{LevelFilter, Log, Metadata, Record};
use realer::{Client, Config, FeedItem, FeedOutcome};

#[global_allocator]
static ALLOCATOR: System = System;

/// Keeps the target and text of every record at debug level or above.
struct Collecting;

static RECORDS: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

impl Log for Collecting {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= LevelFilter::Debug
    }
    fn log(&self, record: &Record) {
        if self.enabled(record.metadata()) {
            let line = (record.target().to_string(), record.args().to_string());
            RECORDS.lock().unwrap_or_else(|e| e.into_inner()).push(line);
        }
    }
    fn flush(&self) {}
}

static LOGGER: Collecting = Collecting;

/// realer-sim on a free loopback port, stopped when dropped.
struct Sim {
    child: Child,
    base_url: String,
    ca_file: String,
}

impl Sim {
    fn start(binary: &str, dir: &std::path::Path) -> Result<Sim, String> {
        let ca_file = dir.join("ca.pem").to_string_lossy().into_owned();
        let mut child = Command::new(binary)
            .args(["--quiet", "--ca-out", &ca_file])
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {binary}: {e}"))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut sim = Sim { child, base_url: String::new(), ca_file };
        // The CA file is written before this line is printed.
        let mut lines = BufReader::new(stdout).lines();
        for line in lines.by_ref() {
            let line = line.map_err(|e| format!("reading realer-sim's output: {e}"))?;
            if let Some(url) = line.strip_prefix("listening on ") {
                sim.base_url = url.to_string();
                // The rest is read too: the sim ends when a line it prints finds the pipe closed.
                std::thread::spawn(move || lines.for_each(drop));
                return Ok(sim);
            }
        }
        Err("realer-sim ended without saying where it listens".into())
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run(sim_binary: &str) -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("realer-rust-user-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let sim = Sim::start(sim_binary, &dir);
    let result = sim.and_then(|sim| use_the_library(&sim));
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn use_the_library(sim: &Sim) -> Result<(), String> {
    log::set_logger(&LOGGER).map_err(|e| e.to_string())?;
    log::set_max_level(LevelFilter::Debug);

    let mut config = Config::new();
    let e = |e: realer::Error| e.to_string();
    config.set_base_url(&sim.base_url).map_err(e)?;
    config.set_ca_file(&sim.ca_file).map_err(e)?;
    config.set_device_id("12345").map_err(e)?;
    config.set_credentials("cdv_0123456789abcdefghijklmnop", "demo-secret").map_err(e)?;
    config.set_timeouts(Duration::from_secs(5), Duration::from_secs(10)).map_err(e)?;

    let client = Client::new(&config).map_err(e)?;
    client.authenticate().map_err(e)?;
    let result = client.post_feed_data(&FeedItem::sensor("7", "21.5"));
    drop(client);

    let records = std::mem::take(&mut *RECORDS.lock().unwrap_or_else(|e| e.into_inner()));
    let from = |prefix: &str| records.iter().filter(|(target, _)| target.starts_with(prefix)).collect::<Vec<_>>();
    let (ureq, rustls) = (from("ureq"), from("rustls"));
    println!(
        "rust-user: {} log records at debug or above: {} from ureq, {} from rustls",
        records.len(),
        ureq.len(),
        rustls.len()
    );
    for (target, text) in ureq.iter().take(1).chain(rustls.iter().take(1)) {
        println!("rust-user:   e.g. {target}: {text}");
    }
    println!("rust-user: the reading: {:?} (HTTP {})", result.outcome, result.http_status);

    let mut failures = Vec::new();
    if ureq.is_empty() || rustls.is_empty() {
        failures.push("no log record from ureq or from rustls reached the program's logger".to_string());
    }
    if result.outcome != FeedOutcome::Created {
        failures.push(format!("the reading was not stored: {:?} {:?}", result.outcome, result.error));
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("; "))
    }
}

fn main() -> ExitCode {
    let Some(sim_binary) = std::env::args().nth(1) else {
        eprintln!("usage: realer-rust-user PATH/TO/realer-sim");
        return ExitCode::from(2);
    };
    match run(&sim_binary) {
        Ok(()) => {
            println!("rust-user: passed");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("rust-user: FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}
