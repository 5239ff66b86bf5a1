//! One process of bench/fleet's fleet: `--count` devices, each a thread with its own `realer::Client`, token,
//! connection and outbox file, running a firmware's loop: every `--period-ms`, `--readings` sensor readings
//! pushed into the outbox at once, then a flush. Devices start at random instants within the first period
//! (a fleet is never in step), and each tick comes at a fixed phase after that.
//!
//!     cargo run --release --example fleet_devices -- --base URL --ca FILE --dir DIR --first N --count K
//!         [--period-ms 10000] [--readings 1] [--seed S]
//!
//! stdout, one line a second: `S unix_ms started pending_devices pending_items pushed flushes flush_errors
//! retries cpu_ms rss_kib`, where `pending_*` is what each device's last flush left in its outbox, `retries`
//! the attempts the library retried (its warnings; connection refusals never reach the server's counters)
//! and `cpu_ms` this process's user + system time. A line `stop` on stdin (or its end) ends every device
//! after its current tick; the last line is `END devices user_ms sys_ms maxrss_kib push_errors pushed...`, the
//! last fields the readings each device pushed (device `--first` first), counted once every device has stopped.

// realer::Error carries what Realer said; here it only travels from a client's setup to a log line.
#![allow(clippy::result_large_err)]

use std::io::{BufRead, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use realer::{Client, Config, FeedItem, FullPolicy, Level, Logger};

struct Args {
    base: String,
    ca: String,
    dir: String,
    first: u64,
    count: u64,
    period: Duration,
    readings: usize,
    seed: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        base: String::new(),
        ca: String::new(),
        dir: String::new(),
        first: 0,
        count: 0,
        period: Duration::from_secs(10),
        readings: 1,
        seed: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let v = it.next().ok_or(format!("{flag} needs a value"))?;
        let num = |v: &str| v.parse::<u64>().map_err(|e| format!("{flag} {v}: {e}"));
        match flag.as_str() {
            "--base" => a.base = v,
            "--ca" => a.ca = v,
            "--dir" => a.dir = v,
            "--first" => a.first = num(&v)?,
            "--count" => a.count = num(&v)?,
            "--period-ms" => a.period = Duration::from_millis(num(&v)?.max(1)),
            "--readings" => a.readings = num(&v)?.clamp(1, 1000) as usize,
            "--seed" => a.seed = num(&v)?,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if a.base.is_empty() || a.ca.is_empty() || a.dir.is_empty() || a.count == 0 {
        return Err("--base, --ca, --dir and --count are required".into());
    }
    Ok(a)
}

/// The fleet's naming, shared with bench/fleet's fixture: device `100000 + i`, client `cdv_fleet` + 21 digits.
fn device_names(i: u64) -> (String, String, String) {
    ((100_000 + i).to_string(), format!("cdv_fleet{i:021}"), format!("fleet-secret-{i}"))
}

/// splitmix64: each device's own random phase and values, reproducible from the seed.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[derive(Default)]
struct Counters {
    started: AtomicU64,
    pushed: AtomicU64,
    push_errors: AtomicU64,
    flushes: AtomicU64,
    flush_errors: AtomicU64,
    retries: AtomicU64,
}

/// The stop request, and a way to wake every sleeping device at once.
struct Stop {
    asked: Mutex<bool>,
    wake: Condvar,
    flag: AtomicBool,
}

impl Stop {
    /// Sleeps until `until` or a stop; true when stopped.
    fn sleep_until(&self, until: Instant) -> bool {
        let mut asked = self.asked.lock().unwrap();
        loop {
            if *asked {
                return true;
            }
            let now = Instant::now();
            if now >= until {
                return false;
            }
            asked = self.wake.wait_timeout(asked, until - now).unwrap().0;
        }
    }

    fn ask(&self) {
        *self.asked.lock().unwrap() = true;
        self.flag.store(true, Relaxed);
        self.wake.notify_all();
    }
}

fn client_for(args: &Args, i: u64, counters: &Arc<Counters>) -> realer::Result<Client> {
    let (device, client_id, secret) = device_names(i);
    let mut c = Config::new();
    c.set_base_url(&args.base)?;
    c.set_ca_file(&args.ca)?;
    c.set_device_id(&device)?;
    c.set_credentials(&client_id, &secret)?;
    // A day of readings at most; the oldest make room when it is full, as the firmware example does.
    c.set_outbox(&format!("{}/device-{i}.db", args.dir), 100_000, 0)?;
    c.set_outbox_when_full(FullPolicy::DropOldest)?;
    let counters = counters.clone();
    // Every retried attempt is one warning: counted, never formatted further.
    c.set_logger(Some(Logger::new(Level::Warn, move |level, line: &str| {
        if level == Level::Warn && line.contains("retrying in") {
            counters.retries.fetch_add(1, Relaxed);
        }
    })));
    Client::new(&c)
}

/// What each device of this process did: what its last flush left pending, the readings it pushed.
struct PerDevice {
    pending: Vec<AtomicU64>,
    pushed: Vec<AtomicU64>,
}

fn device(args: Arc<Args>, i: u64, per_device: Arc<PerDevice>, counters: Arc<Counters>, stop: Arc<Stop>) {
    let slot = &per_device.pending[(i - args.first) as usize];
    let pushed = &per_device.pushed[(i - args.first) as usize];
    let mut random = mix(args.seed ^ i.wrapping_mul(0x2545_f491_4f6c_dd1d));
    let phase = Duration::from_nanos(random % args.period.as_nanos().max(1) as u64);
    let mut next = Instant::now() + phase;
    if stop.sleep_until(next) {
        return;
    }
    let client = match client_for(&args, i, &counters) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("fleet_devices: device {i}: {e}");
            counters.push_errors.fetch_add(1, Relaxed);
            return;
        }
    };
    counters.started.fetch_add(1, Relaxed);
    let sensors: Vec<String> = (0..args.readings).map(|s| (1 + s).to_string()).collect();
    loop {
        let items: Vec<FeedItem> = sensors
            .iter()
            .map(|s| {
                random = mix(random);
                FeedItem::sensor(s, &format!("{:.1}", 15.0 + (random % 200) as f64 / 10.0))
            })
            .collect();
        match client.outbox_push_many(&items) {
            Ok(_) => {
                pushed.fetch_add(items.len() as u64, Relaxed);
                counters.pushed.fetch_add(items.len() as u64, Relaxed)
            }
            Err(e) => {
                eprintln!("fleet_devices: device {i}: push: {e}");
                counters.push_errors.fetch_add(1, Relaxed)
            }
        };
        let (report, err) = client.outbox_flush(0);
        slot.store(report.pending, Relaxed);
        counters.flushes.fetch_add(1, Relaxed);
        if err.is_some() {
            counters.flush_errors.fetch_add(1, Relaxed);
        }
        // The next tick at this device's phase; one that a long flush overran is skipped, not caught up.
        next += args.period;
        let now = Instant::now();
        while next <= now {
            next += args.period;
        }
        if stop.sleep_until(next) {
            break;
        }
    }
}

fn rusage() -> (u64, u64, u64) {
    // This process's CPU times and peak resident set, from /proc (no unsafe call needed).
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit_once(')').map(|(_, r)| r.split_whitespace().collect()).unwrap_or_default();
    // After the command's ')': state is field 3, utime 14, stime 15 (1-based), so indices 11 and 12 here.
    let tick_ms = 1000 / USER_HZ;
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0) * tick_ms;
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    (ticks(11), ticks(12), kib("VmHWM:").max(kib("VmRSS:")))
}

fn current_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// The unit of /proc's CPU times: 100 on every Linux (part of the kernel's ABI).
const USER_HZ: u64 = 100;

fn now_ms() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0)
}

fn main() {
    let args = match parse_args() {
        Ok(a) => Arc::new(a),
        Err(e) => {
            eprintln!("fleet_devices: {e}");
            std::process::exit(2);
        }
    };
    let zeros = || (0..args.count).map(|_| AtomicU64::new(0)).collect();
    let per_device = Arc::new(PerDevice { pending: zeros(), pushed: zeros() });
    let counters = Arc::new(Counters::default());
    let stop = Arc::new(Stop { asked: Mutex::new(false), wake: Condvar::new(), flag: AtomicBool::new(false) });

    {
        let stop = stop.clone();
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines() {
                match line {
                    Ok(l) if l.trim() != "stop" => continue,
                    _ => break,
                }
            }
            stop.ask();
        });
    }
    let reporter = {
        let (per_device, counters, stop) = (per_device.clone(), counters.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut out = std::io::stdout();
            let mut next = Instant::now();
            loop {
                let (user, sys, _) = rusage();
                let (mut devices, mut items) = (0u64, 0u64);
                for p in per_device.pending.iter() {
                    let n = p.load(Relaxed);
                    devices += u64::from(n > 0);
                    items += n;
                }
                let line = format!(
                    "S {} {} {} {} {} {} {} {} {} {}\n",
                    now_ms(),
                    counters.started.load(Relaxed),
                    devices,
                    items,
                    counters.pushed.load(Relaxed),
                    counters.flushes.load(Relaxed),
                    counters.flush_errors.load(Relaxed),
                    counters.retries.load(Relaxed),
                    user + sys,
                    current_rss_kib(),
                );
                if out.write_all(line.as_bytes()).and_then(|()| out.flush()).is_err() || stop.flag.load(Relaxed) {
                    return;
                }
                next += Duration::from_secs(1);
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
            }
        })
    };

    let threads: Vec<_> = (args.first..args.first + args.count)
        .map(|i| {
            let (args, per_device, counters, stop) = (args.clone(), per_device.clone(), counters.clone(), stop.clone());
            std::thread::Builder::new()
                // A device thread needs little stack (the library's deepest path is a JSON parse); a thousand
                // of them at the default 2 MiB would reserve 2 GiB of address space for nothing.
                .stack_size(512 * 1024)
                .spawn(move || device(args, i, per_device, counters, stop))
                .expect("a device thread")
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
    stop.ask();
    let _ = reporter.join();
    let (user, sys, maxrss) = rusage();
    let pushed: Vec<String> = per_device.pushed.iter().map(|n| n.load(Relaxed).to_string()).collect();
    println!(
        "END {} {} {} {} {} {}",
        args.count,
        user,
        sys,
        maxrss,
        counters.push_errors.load(Relaxed),
        pushed.join(" ")
    );
}
