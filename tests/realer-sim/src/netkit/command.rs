//! The one-line command language of `realer-netkit` (a script drives the binary through its stdin), mapped onto
//! [`Impairment`]s so that the binary and the Rust API cannot drift apart.

use std::time::Duration;

use super::{Credentials, Dir, Impairment, Mode, Netkit, Reply, Rule, Times};

/// The commands, as `help` prints them.
pub const HELP: &str = "\
latency MS [up|down|both]             one-way delay of every chunk (default both: a 600 ms round trip is 300)
rate BITS_PER_S|off [up|down|both]    bandwidth cap, a serial link (20000, 20k, 1.5M)
blackhole-idle SECS|off               connections idle longer than SECS are forgotten (bytes swallowed)
blackhole now                         every open connection goes silent
blackhole new on|off                  new connections are accepted, then nothing is relayed
reset-after BYTES|off [down|up|both]  RST each connection after BYTES more (default down; both: either way)
hold MS                               each answer's first byte waits MS longer (0: off)
down [cut]                            refuse new connections (cut: reset the open ones too)
up                                    listen again
answer WHAT COUNT|always [path=PREFIX] [retry-after=SECS]
                                      front, portal, connect: answer by itself. WHAT: STATUS (nginx's page;
                                      squid's in connect mode), nginx:STATUS, squid:STATUS, empty:STATUS,
                                      portal, close
max-body BYTES|off                    front: bodies larger than BYTES get nginx's 413 page
keepalive-timeout SECS                front: idle keep-alive connections close after SECS (default 75)
auth USER:PASS|off                    connect: require Proxy-Authorization Basic (407 otherwise)
clear                                 every impairment and rule off, listening again
stats                                 one JSON line: connections, open, bytes_up, bytes_down, blackholed,
                                      resets, requests
log                                   one JSON line: the requests the front or the proxy read
help                                  this text
quit                                  stop (as end of input does)";

fn number<T: std::str::FromStr>(what: &str, s: &str) -> Result<T, String> {
    s.parse().map_err(|_| format!("{what}: {s:?} is not a number"))
}

fn seconds(what: &str, s: &str) -> Result<Duration, String> {
    let v: f64 = number(what, s)?;
    Duration::try_from_secs_f64(v).map_err(|_| format!("{what}: {s:?} is not a duration in seconds"))
}

fn millis(what: &str, s: &str) -> Result<Duration, String> {
    let v: f64 = number(what, s)?;
    Duration::try_from_secs_f64(v / 1000.0).map_err(|_| format!("{what}: {s:?} is not a duration in milliseconds"))
}

fn off_or<T>(s: &str, f: impl FnOnce(&str) -> Result<T, String>) -> Result<Option<T>, String> {
    if s == "off" {
        Ok(None)
    } else {
        f(s).map(Some)
    }
}

fn dir(rest: &[&str], default: Dir) -> Result<Dir, String> {
    match rest {
        [] => Ok(default),
        ["up"] => Ok(Dir::Up),
        ["down"] => Ok(Dir::Down),
        ["both"] => Ok(Dir::Both),
        other => Err(format!("expected up, down or both, not {:?}", other.join(" "))),
    }
}

fn rate(s: &str) -> Result<u64, String> {
    let (digits, factor) = match s.as_bytes().last() {
        Some(b'k' | b'K') => (&s[..s.len() - 1], 1e3),
        Some(b'M' | b'm') => (&s[..s.len() - 1], 1e6),
        _ => (s, 1.0),
    };
    let v: f64 = number("rate", digits)?;
    let bps = (v * factor).round();
    if !(1.0..=1e12).contains(&bps) {
        return Err(format!("rate: {s:?} is not between 1 bit/s and 1 Tbit/s"));
    }
    Ok(bps as u64)
}

fn status(s: &str) -> Result<u16, String> {
    let v: u16 = number("status", s)?;
    if !(200..=599).contains(&v) {
        return Err(format!("status {v} is not between 200 and 599"));
    }
    Ok(v)
}

fn reply(what: &str, connect: bool) -> Result<Reply, String> {
    Ok(match what.split_once(':') {
        None if what == "portal" => Reply::Portal,
        None if what == "close" => Reply::Close,
        None if connect => Reply::Squid(status(what)?),
        None => Reply::Nginx(status(what)?),
        Some(("nginx", s)) => Reply::Nginx(status(s)?),
        Some(("squid", s)) => Reply::Squid(status(s)?),
        Some(("empty", s)) => Reply::Empty(status(s)?),
        _ => {
            return Err(format!(
                "answer: {what:?} is not STATUS, nginx:STATUS, squid:STATUS, empty:STATUS, portal or close"
            ))
        }
    })
}

fn answer(words: &[&str], connect: bool) -> Result<Rule, String> {
    let [what, count, options @ ..] = words else {
        return Err("answer WHAT COUNT|always [path=PREFIX] [retry-after=SECS]".into());
    };
    let times = if *count == "always" { Times::Always } else { Times::Next(number("answer count", count)?) };
    let mut rule = Rule { reply: reply(what, connect)?, times, path_prefix: None, retry_after_secs: None };
    for option in options {
        match option.split_once('=') {
            Some(("path", p)) if !p.is_empty() => rule.path_prefix = Some(p.to_string()),
            Some(("retry-after", s)) => rule.retry_after_secs = Some(number("retry-after", s)?),
            _ => return Err(format!("answer: unknown option {option:?} (path=PREFIX, retry-after=SECS)")),
        }
    }
    Ok(rule)
}

/// The change a command line asks for, without running it.
fn parse(line: &str, connect: bool) -> Result<Impairment, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let change = match words.as_slice() {
        ["latency", ms, rest @ ..] => Impairment::Latency(dir(rest, Dir::Both)?, millis("latency", ms)?),
        ["rate", r, rest @ ..] => Impairment::Rate(dir(rest, Dir::Both)?, off_or(r, rate)?),
        ["blackhole-idle", s] => Impairment::BlackholeIdle(off_or(s, |s| seconds("blackhole-idle", s))?),
        ["blackhole", "now"] => Impairment::BlackholeNow,
        ["blackhole", "new", "on"] => Impairment::BlackholeNew(true),
        ["blackhole", "new", "off"] => Impairment::BlackholeNew(false),
        ["reset-after", n, rest @ ..] => {
            Impairment::ResetAfter(dir(rest, Dir::Down)?, off_or(n, |n| number("reset-after", n))?)
        }
        ["hold", ms] => Impairment::HoldAnswers(millis("hold", ms)?),
        ["down"] => Impairment::Down { cut_existing: false },
        ["down", "cut"] => Impairment::Down { cut_existing: true },
        ["up"] => Impairment::Up,
        ["answer", rest @ ..] => Impairment::Answer(answer(rest, connect)?),
        ["max-body", n] => Impairment::MaxBody(off_or(n, |n| number("max-body", n))?),
        ["keepalive-timeout", s] => Impairment::KeepaliveTimeout(seconds("keepalive-timeout", s)?),
        ["auth", "off"] => Impairment::ProxyCredentials(None),
        ["auth", creds] => {
            let (user, password) = creds.split_once(':').ok_or("auth USER:PASS|off")?;
            Impairment::ProxyCredentials(Some(Credentials::new(user, password)))
        }
        // Never echo the line: it may hold a password.
        ["auth", ..] => return Err("auth USER:PASS|off".into()),
        [first, ..] => return Err(format!("unknown command {first:?} (help lists them)")),
        [] => return Err("empty command".into()),
    };
    Ok(change)
}

pub(super) fn run(kit: &Netkit, line: &str) -> Result<Option<String>, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        ["stats"] => return serde_json::to_string(&kit.stats()).map(Some).map_err(|e| e.to_string()),
        ["log"] => return serde_json::to_string(&kit.log()).map(Some).map_err(|e| e.to_string()),
        ["clear"] => return kit.clear().map(|()| None).map_err(|e| format!("clear: {e}")),
        ["help"] => return Ok(Some(HELP.to_string())),
        _ => {}
    }
    let change = parse(line, matches!(kit.mode, Mode::Connect))?;
    kit.set(change).map(|()| None).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_command() {
        let p = |l: &str| parse(l, false).unwrap();
        assert_eq!(p("latency 300"), Impairment::Latency(Dir::Both, Duration::from_millis(300)));
        assert_eq!(p("latency 12.5 up"), Impairment::Latency(Dir::Up, Duration::from_micros(12_500)));
        assert_eq!(p("rate 20000"), Impairment::Rate(Dir::Both, Some(20_000)));
        assert_eq!(p("rate 1.5M down"), Impairment::Rate(Dir::Down, Some(1_500_000)));
        assert_eq!(p("rate 20k"), Impairment::Rate(Dir::Both, Some(20_000)));
        assert_eq!(p("rate off"), Impairment::Rate(Dir::Both, None));
        assert_eq!(p("blackhole-idle 30"), Impairment::BlackholeIdle(Some(Duration::from_secs(30))));
        assert_eq!(p("blackhole-idle off"), Impairment::BlackholeIdle(None));
        assert_eq!(p("blackhole now"), Impairment::BlackholeNow);
        assert_eq!(p("blackhole new on"), Impairment::BlackholeNew(true));
        assert_eq!(p("reset-after 1000"), Impairment::ResetAfter(Dir::Down, Some(1000)));
        assert_eq!(p("reset-after 10 both"), Impairment::ResetAfter(Dir::Both, Some(10)));
        assert_eq!(p("hold 250"), Impairment::HoldAnswers(Duration::from_millis(250)));
        assert_eq!(p("down"), Impairment::Down { cut_existing: false });
        assert_eq!(p("down cut"), Impairment::Down { cut_existing: true });
        assert_eq!(p("  up "), Impairment::Up);
        assert_eq!(p("answer 413 3"), Impairment::Answer(Rule::next(3, Reply::Nginx(413))));
        assert_eq!(
            p("answer 429 always path=/iot/v1 retry-after=30"),
            Impairment::Answer(Rule::always(Reply::Nginx(429)).under("/iot/v1").retry_after(30))
        );
        assert_eq!(parse("answer 502 1", true).unwrap(), Impairment::Answer(Rule::next(1, Reply::Squid(502))));
        assert_eq!(p("answer empty:204 2"), Impairment::Answer(Rule::next(2, Reply::Empty(204))));
        assert_eq!(p("answer portal always"), Impairment::Answer(Rule::always(Reply::Portal)));
        assert_eq!(p("answer close 1"), Impairment::Answer(Rule::next(1, Reply::Close)));
        assert_eq!(p("max-body 1024"), Impairment::MaxBody(Some(1024)));
        assert_eq!(p("keepalive-timeout 1"), Impairment::KeepaliveTimeout(Duration::from_secs(1)));
        assert_eq!(p("auth u:p:q"), Impairment::ProxyCredentials(Some(Credentials::new("u", "p:q"))));
        assert_eq!(p("auth off"), Impairment::ProxyCredentials(None));
    }

    #[test]
    fn refuses_what_it_does_not_understand_without_echoing_secrets() {
        for bad in [
            "latency",
            "latency x",
            "latency -5",
            "latency 5 sideways",
            "rate 0",
            "rate fast",
            "answer 413",
            "answer 99 1",
            "answer 413 x",
            "answer 413 1 colour=red",
            "answer foo:413 1",
            "reset-after -1",
            "blackhole",
            "frobnicate",
        ] {
            assert!(parse(bad, false).is_err(), "{bad}");
        }
        let e = parse("auth secret-without-colon", false).unwrap_err();
        assert!(!e.contains("secret"), "{e}");
        let e = parse("auth a:b extra", false).unwrap_err();
        assert!(!e.contains("a:b"), "{e}");
    }
}
