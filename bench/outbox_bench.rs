//! Outbox throughput: durable pushes per second (one by one, and in groups of 100), and flush throughput to
//! realer-sim on loopback. Medians of 5 runs, printed as a markdown table.
//!
//!     cargo run --release --example outbox_bench [-- --quick]

use std::time::{Duration, Instant};

use realer::{Client, Config, FeedItem};
use realer_sim::{builtin, Sim, SimOptions};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn item(run: usize, i: usize) -> FeedItem {
    FeedItem {
        message_id: Some(format!("bench-{run}-{i}")),
        value_received_at: Some("2026-04-24T10:15:00Z".into()),
        ..FeedItem::sensor("7", "21.4")
    }
}

fn client(sim: &Sim, db: &std::path::Path) -> Client {
    let mut c = Config::new();
    c.set_base_url(&sim.base_url()).unwrap();
    c.set_ca_pem(sim.ca_pem().as_bytes()).unwrap();
    c.set_device_id(builtin::DEVICE_ID).unwrap();
    c.set_credentials(builtin::CLIENT_ID, builtin::CLIENT_SECRET).unwrap();
    c.set_outbox(db.to_str().unwrap(), 0, 0).unwrap();
    Client::new(&c).unwrap()
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (singles, grouped) = if quick { (200, 5_000) } else { (1_000, 50_000) };
    let runs = 5;
    let sim = Sim::start(SimOptions { quiet: true, ..SimOptions::default() }).unwrap();
    let dir = std::env::temp_dir().join(format!("realer-outbox-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (mut one, mut hundred, mut flush) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..runs {
        let db = dir.join(format!("run{run}.db"));
        let c = client(&sim, &db);
        let t = Instant::now();
        for i in 0..singles {
            c.outbox_push(&item(run, i)).unwrap();
        }
        one.push(singles as f64 / t.elapsed().as_secs_f64());

        let items: Vec<FeedItem> = (singles..singles + grouped).map(|i| item(run, i)).collect();
        let t = Instant::now();
        for group in items.chunks(100) {
            c.outbox_push_many(group).unwrap();
        }
        hundred.push(grouped as f64 / t.elapsed().as_secs_f64());

        c.authenticate().unwrap();
        let t = Instant::now();
        let (report, err) = c.outbox_flush(0);
        assert!(err.is_none() && report.pending == 0, "{report:?} {err:?}");
        flush.push((singles + grouped) as f64 / t.elapsed().as_secs_f64());
        drop(c);
        let _ = std::fs::remove_file(&db);
    }
    std::fs::remove_dir_all(&dir).ok();
    let per = |rate: f64| Duration::from_secs_f64(1.0 / rate);
    println!("| outbox (median of {runs} runs) | items/s | per item |");
    println!("|---|---:|---:|");
    for (name, v) in [
        ("durable push, one by one (fsync each)", one),
        ("durable push, groups of 100", hundred),
        ("flush to realer-sim (batches of 100, TLS loopback)", flush),
    ] {
        let m = median(v);
        println!("| {name} | {m:.0} | {:.1} µs |", per(m).as_secs_f64() * 1e6);
    }
}
