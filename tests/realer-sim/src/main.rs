//! `realer-sim`: serves Realer's device API over HTTPS until killed. See README.md.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

use realer_sim::{Fixture, Sim, SimOptions};

const USAGE: &str = "usage: realer-sim [--listen ADDR] [--ca-out PATH] [--fixture FILE] \
[--token-ttl SECS] [--renew-after SECS] [--flavour v1|v2] [--clock-offset SECS] [--byte-budget BYTES] \
[--requests-per-minute N] [--token-requests-per-minute N] [--adopt-local-reports] [--quiet]

  --listen ADDR       address to listen on (default 127.0.0.1:0: a free port)
  --ca-out PATH       write the throwaway CA certificate (PEM) there before listening
  --fixture FILE      devices and catalogs as JSON (default: the built-in demo fixture)
  --token-ttl SECS    expires_in of issued tokens (default 3600)
  --renew-after SECS  renew_after of issued tokens (default 3000)
  --flavour v1|v2     v1 (default): the seed page's API, the catalog's values are what Realer wants and
                      /desired-states answers 404; v2: Realer's newer pages, pending desired states
                      under /desired-states
  --clock-offset SECS seconds added to the clock of the Date headers (default 0)
  --byte-budget BYTES the device plan byte budget: larger feed-data bodies get 413 (default 65536)
  --requests-per-minute N
                      each device's budget of iot/v1 requests a minute, then 429 with Retry-After
                      (default: unlimited)
  --token-requests-per-minute N
                      each client's budget of token requests a minute, then 429 (default: unlimited)
  --adopt-local-reports
                      every command adopts accepted local reports (no desired_id) as its value
  --quiet             no request log on stderr

stdout: 'listening on https://HOST:PORT', then 'admin token: TOKEN' (for /_sim/ admin requests).";

fn per_minute(flag: &str, v: &str) -> Result<u32, String> {
    match v.parse::<u32>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("{flag} {v}: give a whole number of requests, at least 1")),
    }
}

fn parse_args() -> Result<(SimOptions, Option<String>), String> {
    let mut opts = SimOptions::default();
    let mut ca_out = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--listen" => {
                let v = value("--listen")?;
                opts.listen = v.parse::<SocketAddr>().map_err(|e| format!("--listen {v}: {e}"))?;
            }
            "--ca-out" => ca_out = Some(value("--ca-out")?),
            "--fixture" => {
                let path = value("--fixture")?;
                let json = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
                opts.fixture = Some(Fixture::from_json(&json).map_err(|e| format!("{path}: {e}"))?);
            }
            "--token-ttl" => {
                let v = value("--token-ttl")?;
                opts.token_ttl_secs = v.parse().map_err(|e| format!("--token-ttl {v}: {e}"))?;
            }
            "--renew-after" => {
                let v = value("--renew-after")?;
                opts.renew_after_secs = v.parse().map_err(|e| format!("--renew-after {v}: {e}"))?;
            }
            "--flavour" => {
                let v = value("--flavour")?;
                opts.flavour = realer_sim::Flavour::parse(&v).ok_or(format!("--flavour {v}: use v1 or v2"))?;
            }
            "--clock-offset" => {
                let v = value("--clock-offset")?;
                opts.clock_offset_secs = v.parse().map_err(|e| format!("--clock-offset {v}: {e}"))?;
            }
            "--byte-budget" => {
                let v = value("--byte-budget")?;
                opts.byte_budget = match v.parse::<usize>() {
                    Ok(n) if n >= 1 => n,
                    _ => return Err(format!("--byte-budget {v}: give a number of bytes, at least 1")),
                };
            }
            "--requests-per-minute" => {
                let v = value("--requests-per-minute")?;
                opts.requests_per_minute = Some(per_minute("--requests-per-minute", &v)?);
            }
            "--token-requests-per-minute" => {
                let v = value("--token-requests-per-minute")?;
                opts.token_requests_per_minute = Some(per_minute("--token-requests-per-minute", &v)?);
            }
            "--adopt-local-reports" => opts.adopt_local_reports = true,
            "--quiet" => opts.quiet = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok((opts, ca_out))
}

fn main() -> ExitCode {
    let (opts, ca_out) = match parse_args() {
        Ok(parsed) => parsed,
        Err(e) => {
            eprintln!("realer-sim: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let sim = match Sim::start(opts) {
        Ok(sim) => sim,
        Err(e) => {
            eprintln!("realer-sim: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(path) = ca_out {
        if let Err(e) = std::fs::write(&path, sim.ca_pem()) {
            eprintln!("realer-sim: cannot write the CA to {path}: {e}");
            return ExitCode::FAILURE;
        }
    }
    let mut out = std::io::stdout().lock();
    let printed = writeln!(out, "listening on {}", sim.base_url())
        .and_then(|()| writeln!(out, "admin token: {}", sim.admin_token()))
        .and_then(|()| out.flush());
    drop(out);
    if let Err(e) = printed {
        eprintln!("realer-sim: cannot write to stdout: {e}");
        return ExitCode::FAILURE;
    }
    // Serve until killed; the sim's threads do the work.
    loop {
        std::thread::park();
    }
}
