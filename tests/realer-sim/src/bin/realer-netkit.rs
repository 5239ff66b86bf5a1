//! `realer-netkit`: the field network kit as a program, driven one command a line on stdin. See README.md.

use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::process::ExitCode;

use realer_sim::netkit::{Credentials, FrontTls, Impairment, Mode, Netkit, HELP};

const USAGE: &str = "usage: realer-netkit --mode relay|front|portal|connect [--listen ADDR] [--upstream ADDR|URL]
                     [--upstream-ca PATH] [--tls trusted|intercepting|expired] [--ca-out PATH] [--auth USER:PASS]

  --mode relay        TCP relay to --upstream HOST:PORT (TLS passes through)
  --mode front        HTTPS reverse proxy (nginx-like) to --upstream https://HOST:PORT, trusting --upstream-ca
  --mode portal       a captive portal: an untrusted certificate and an HTML 200 page for everything
  --mode connect      HTTP CONNECT proxy (squid-like)
  --listen ADDR       address to listen on (default 127.0.0.1:0: a free port)
  --tls KIND          front: trusted (default; the kit's CA, see --ca-out), intercepting (a CA nobody is
                      given: a TLS-inspecting middlebox), expired (trusted CA, certificate expired in 2021)
  --ca-out PATH       front: write the kit's CA (PEM) there before the 'listening on' line
  --auth USER:PASS    connect: require these proxy credentials (or the 'auth' command)

stdout: 'listening on HOST:PORT', then one answer per command line read on stdin: 'ok', 'error: ...',
or one JSON line (stats, log). End of input (or 'quit') stops the kit. Commands:
";

struct Args {
    mode: String,
    listen: SocketAddr,
    upstream: Option<String>,
    upstream_ca: Option<String>,
    tls: FrontTls,
    ca_out: Option<String>,
    auth: Option<Credentials>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        mode: String::new(),
        listen: "127.0.0.1:0".parse().expect("a socket address"),
        upstream: None,
        upstream_ca: None,
        tls: FrontTls::Trusted,
        ca_out: None,
        auth: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--mode" => a.mode = value("--mode")?,
            "--listen" => {
                let v = value("--listen")?;
                a.listen = v.parse().map_err(|e| format!("--listen {v}: {e}"))?;
            }
            "--upstream" => a.upstream = Some(value("--upstream")?),
            "--upstream-ca" => a.upstream_ca = Some(value("--upstream-ca")?),
            "--tls" => {
                a.tls = match value("--tls")?.as_str() {
                    "trusted" => FrontTls::Trusted,
                    "intercepting" => FrontTls::Intercepting,
                    "expired" => FrontTls::Expired,
                    other => return Err(format!("--tls {other}: use trusted, intercepting or expired")),
                }
            }
            "--ca-out" => a.ca_out = Some(value("--ca-out")?),
            "--auth" => {
                let v = value("--auth")?;
                let (user, password) = v.split_once(':').ok_or("--auth needs USER:PASS")?;
                a.auth = Some(Credentials::new(user, password));
            }
            "-h" | "--help" => {
                println!("{USAGE}{HELP}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(a)
}

fn mode(a: &Args) -> Result<Mode, String> {
    let upstream = || a.upstream.clone().ok_or(format!("--mode {} needs --upstream", a.mode));
    Ok(match a.mode.as_str() {
        "relay" => {
            let u = upstream()?;
            Mode::Relay { upstream: u.parse().map_err(|e| format!("--upstream {u}: {e} (relay: HOST:PORT)"))? }
        }
        "front" => {
            let path = a.upstream_ca.as_ref().ok_or("--mode front needs --upstream-ca PATH")?;
            let pem = std::fs::read_to_string(path).map_err(|e| format!("--upstream-ca {path}: {e}"))?;
            Mode::Front { upstream_base_url: upstream()?, upstream_ca_pem: pem, tls: a.tls }
        }
        "portal" => Mode::Portal,
        "connect" => Mode::Connect,
        "" => return Err("--mode is required".into()),
        other => return Err(format!("--mode {other}: use relay, front, portal or connect")),
    })
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("realer-netkit: {e}\n{USAGE}{HELP}");
            return ExitCode::from(2);
        }
    };
    let mode = match mode(&args) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("realer-netkit: {e}");
            return ExitCode::from(2);
        }
    };
    let kit = match Netkit::start(args.listen, mode) {
        Ok(kit) => kit,
        Err(e) => {
            eprintln!("realer-netkit: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(creds) = args.auth {
        if let Err(e) = kit.set(Impairment::ProxyCredentials(Some(creds))) {
            eprintln!("realer-netkit: --auth: {e}");
            return ExitCode::from(2);
        }
    }
    if let Some(path) = &args.ca_out {
        let Some(pem) = kit.ca_pem() else {
            eprintln!("realer-netkit: --ca-out: this mode has no CA to give out");
            return ExitCode::from(2);
        };
        if let Err(e) = std::fs::write(path, pem) {
            eprintln!("realer-netkit: cannot write the CA to {path}: {e}");
            return ExitCode::FAILURE;
        }
    }
    let mut out = std::io::stdout().lock();
    if writeln!(out, "listening on {}", kit.addr()).and_then(|()| out.flush()).is_err() {
        return ExitCode::FAILURE;
    }
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else {
            break;
        };
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line == "quit" {
            break;
        }
        let answer = match kit.command(line) {
            Ok(None) => "ok".to_string(),
            Ok(Some(text)) => text,
            Err(e) => format!("error: {e}"),
        };
        if writeln!(out, "{answer}").and_then(|()| out.flush()).is_err() {
            break;
        }
    }
    drop(kit);
    ExitCode::SUCCESS
}
