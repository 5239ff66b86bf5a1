//! `realer`: the field tool for a device that talks to Realer through librealer. It is configured exactly as
//! the library is (the `REALER_*` variables, or `--config FILE`) and runs on the library's own core:
//! `doctor` tells why a device cannot talk to Realer, `catalog` and `post` try the API by hand, `outbox`
//! looks into and drains the offline outbox. `--json` prints one JSON document for scripts.

// `realer::Error` carries what Realer said; it travels on the failure path only (as in the library).
#![allow(clippy::result_large_err)]

mod doctor;
mod out;

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use realer::{Client, Config, DesiredAction, DesiredSource, FeedItem, FeedOutcome};
use serde_json::{json, Value};

use out::Out;

/// The settings the tool reads, as the library reads them (`realer_config_from_env`, `realer_config_from_file`):
/// a field engineer at a device's shell has `--help` and nothing else.
const SETTINGS_HELP: &str = "\
Settings, from the environment (or the same KEY=value lines in --config FILE):
  REALER_DEVICE_ID      the device's id in Realer (required)
  REALER_CLIENT_ID      the device's OAuth client id (required)
  REALER_CLIENT_SECRET  its client secret (required; never printed)
  REALER_BASE_URL       Realer's address (default https://api.therealer.com)
  REALER_CA_FILE        a PEM file of CA certificates to trust instead of the bundled Mozilla roots
  REALER_SCOPE          the scopes to ask for (default: none asked, Realer grants its default scopes)
  REALER_PROXY          http://[user:password@]host:port: reach Realer through this HTTP proxy (CONNECT)
NO_COLOR set: no colour (colour is used only on a terminal).";

#[derive(Parser)]
#[command(
    name = "realer",
    version,
    about = "Field tool for devices that use librealer: doctor, catalog, post, outbox",
    after_help = SETTINGS_HELP
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Args, Clone)]
pub(crate) struct Global {
    /// Read the settings from FILE (KEY=value lines, the REALER_* names) instead of the environment.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<String>,
    /// The outbox file (SQLite) the firmware uses.
    #[arg(long, global = true, value_name = "PATH")]
    outbox: Option<String>,
    /// Print one JSON document (stable shapes, see README) instead of text.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Subcommand)]
enum Cmd {
    /// Check every step of reaching Realer, without changing anything in Realer's data.
    Doctor,
    /// Show the catalog (commands, sensors) and what Realer wants (desired states or catalog values).
    Catalog,
    /// Post one sensor reading or command report.
    Post(PostArgs),
    /// Look into or drain the outbox (needs --outbox).
    Outbox {
        #[command(subcommand)]
        action: OutboxCmd,
    },
}

#[derive(Args)]
struct PostArgs {
    /// The sensor the reading is from.
    #[arg(long, conflicts_with = "command", required_unless_present = "command")]
    sensor: Option<String>,
    /// The command the report is about (a local physical change, without desired_id).
    #[arg(long)]
    command: Option<String>,
    /// The value, as text.
    #[arg(long)]
    value: String,
    /// The message_id (to send an event again); generated when absent.
    #[arg(long)]
    message_id: Option<String>,
    /// When the value was observed (RFC 3339 UTC); now when absent. Give it with --message-id to resend.
    #[arg(long)]
    at: Option<String>,
}

#[derive(Subcommand)]
enum OutboxCmd {
    /// Pending items, dead letters, bytes, the oldest item's age.
    Stats,
    /// The pending items, oldest first.
    List {
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// The items Realer refused for good (dead letters).
    Dead,
    /// Put every dead letter back in the outbox, to be sent again (after fixing what Realer refused).
    RetryDead,
    /// Delete every dead letter.
    PurgeDead,
    /// Send every pending item now.
    Flush,
}

/// A failure of a command: what to print, and the exit status.
pub(crate) struct Failure(pub String);

impl From<realer::Error> for Failure {
    fn from(e: realer::Error) -> Failure {
        Failure(e.to_string())
    }
}

pub(crate) fn load_config(g: &Global) -> Result<Config, realer::Error> {
    let mut c = Config::new();
    match &g.config {
        Some(path) => c.apply_file(path)?,
        None => c.from_env()?,
    }
    if let Some(path) = &g.outbox {
        c.set_outbox(path, 0, 0)?;
    }
    Ok(c)
}

fn client(g: &Global) -> Result<Client, Failure> {
    Ok(Client::new(&load_config(g)?)?)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let out = Out::new(cli.global.json);
    let result = match &cli.command {
        Cmd::Doctor => return doctor::run(&cli.global, &out),
        Cmd::Catalog => catalog(&cli.global, &out),
        Cmd::Post(p) => post(&cli.global, &out, p),
        Cmd::Outbox { action } => outbox(&cli.global, &out, action),
    };
    match result {
        Ok(code) => code,
        Err(Failure(message)) => {
            if out.json {
                out.json_doc(&json!({"ok": false, "error": message}));
            } else {
                eprintln!("{} {message}", out.paint("FAIL", out::Tone::Bad));
            }
            ExitCode::FAILURE
        }
    }
}

fn opt(v: &Option<String>) -> String {
    v.clone().unwrap_or_else(|| "-".into())
}

fn catalog(g: &Global, out: &Out) -> Result<ExitCode, Failure> {
    // Not with the firmware's outbox file: the catalog values shown would count as acted on there, and the
    // firmware would then never apply them.
    let c = client(&Global { outbox: None, ..g.clone() })?;
    // Owned copies: a command-line tool prints a catalog, it does not hold one.
    let commands = c.fetch_commands()?.to_vec();
    let sensors = c.fetch_sensors()?.to_vec();
    let wanted = c.fetch_desired_states()?;
    let states = wanted.states.to_vec();
    let source = match wanted.source {
        DesiredSource::DesiredStates => "desired_states",
        DesiredSource::Catalog => "catalog",
    };
    if out.json {
        let item_error =
            |e: &Option<realer::ItemError>| e.as_ref().map(|e| json!({"type": e.error_type, "message": e.message}));
        out.json_doc(&json!({
            "ok": true,
            "commands": commands.iter().map(|c| json!({"id": c.id, "value": c.value, "value_type": c.value_type,
                "kind": c.kind, "pin_port": c.pin_port, "error": item_error(&c.error)})).collect::<Vec<_>>(),
            "sensors": sensors.iter().map(|s| json!({"id": s.id, "kind": s.kind, "qc": s.qc, "mu": s.mu,
                "pin_port": s.pin_port, "error": item_error(&s.error)})).collect::<Vec<_>>(),
            "desired_states": {"source": source, "states": states.iter().map(|d| json!({
                "command_id": d.command_id, "value": d.value, "desired_id": d.desired_id,
                "sequence_number": d.sequence_number, "expires_at": d.expires_at,
                "action": if d.action == DesiredAction::Apply { "apply" } else { "stale" }})).collect::<Vec<_>>()},
        }));
        return Ok(ExitCode::SUCCESS);
    }
    out.heading(&format!("Commands ({})", commands.len()));
    let rows: Vec<Vec<String>> = commands
        .iter()
        .map(|c| match &c.error {
            Some(e) => {
                vec![c.id.clone(), "-".into(), "-".into(), "-".into(), format!("error {}: {}", e.error_type, e.message)]
            }
            None => {
                vec![c.id.clone(), opt(&c.value), opt(&c.value_type), opt(&c.kind), format!("pin {}", opt(&c.pin_port))]
            }
        })
        .collect();
    out.table(&["id", "value", "value_type", "kind", ""], &rows);
    out.heading(&format!("Sensors ({})", sensors.len()));
    let rows: Vec<Vec<String>> = sensors
        .iter()
        .map(|s| match &s.error {
            Some(e) => vec![s.id.clone(), "-".into(), "-".into(), format!("error {}: {}", e.error_type, e.message)],
            None => vec![s.id.clone(), opt(&s.qc), opt(&s.mu), format!("{} on pin {}", opt(&s.kind), opt(&s.pin_port))],
        })
        .collect();
    out.table(&["id", "quantity", "unit", ""], &rows);
    let what = if source == "catalog" {
        "the catalog's values (this service has no /desired-states)"
    } else {
        "pending desired states"
    };
    out.heading(&format!("What Realer wants ({}): {what}", states.len()));
    let rows: Vec<Vec<String>> = states
        .iter()
        .map(|d| {
            vec![
                d.command_id.clone(),
                opt(&d.value),
                opt(&d.desired_id),
                d.sequence_number.map_or("-".into(), |n| n.to_string()),
                opt(&d.expires_at),
                if d.action == DesiredAction::Apply { "apply".into() } else { "stale".into() },
            ]
        })
        .collect();
    out.table(&["command", "value", "desired_id", "sequence", "expires_at", "action"], &rows);
    Ok(ExitCode::SUCCESS)
}

fn post(g: &Global, out: &Out, p: &PostArgs) -> Result<ExitCode, Failure> {
    let c = client(g)?;
    let mut item = match (&p.sensor, &p.command) {
        (Some(s), _) => FeedItem::sensor(s, &p.value),
        (None, Some(cmd)) => FeedItem::command(cmd, &p.value),
        (None, None) => return Err(Failure("give --sensor ID or --command ID".into())),
    };
    item.message_id.clone_from(&p.message_id);
    item.value_received_at.clone_from(&p.at);
    let r = c.post_feed_data(&item);
    let outcome = match r.outcome {
        FeedOutcome::Created => "created",
        FeedOutcome::Idempotent => "idempotent",
        FeedOutcome::Rejected => "rejected",
        FeedOutcome::NotSent => "not_sent",
    };
    if out.json {
        out.json_doc(&json!({
            "ok": r.is_accepted(), "outcome": outcome, "feed_data_id": r.feed_data_id, "http_status": r.http_status,
            "code": r.code, "message_id": r.message_id, "value_received_at": r.value_received_at,
            "error": r.error.as_ref().map(|e| e.to_string()),
            "warnings": r.warnings_json.as_deref().and_then(|w| serde_json::from_str::<Value>(w).ok()),
        }));
    } else {
        let tone = if r.is_accepted() { out::Tone::Good } else { out::Tone::Bad };
        out.line(&format!(
            "{} {outcome}{}",
            out.paint(if r.is_accepted() { "OK  " } else { "FAIL" }, tone),
            r.feed_data_id.map_or(String::new(), |id| format!(", feed_data_id {id}"))
        ));
        out.line(&format!("     message_id        {}", r.message_id));
        out.line(&format!("     value_received_at {}", r.value_received_at));
        if let Some(e) = &r.error {
            out.line(&format!("     error             {e}"));
        }
        if r.outcome == FeedOutcome::NotSent && !r.message_id.is_empty() {
            out.line(&format!("     send it again with: --message-id {} --at {}", r.message_id, r.value_received_at));
        }
        if let Some(w) = &r.warnings_json {
            out.line(&format!("     warnings          {w}"));
        }
    }
    Ok(if r.is_accepted() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn outbox(g: &Global, out: &Out, action: &OutboxCmd) -> Result<ExitCode, Failure> {
    if g.outbox.is_none() {
        return Err(Failure("outbox commands need --outbox PATH (the firmware's outbox file)".into()));
    }
    let c = client(g)?;
    match action {
        OutboxCmd::Stats => {
            let s = c.outbox_stats()?;
            if out.json {
                out.json_doc(&json!({"ok": true, "pending": s.pending, "dead": s.dead, "bytes": s.bytes,
                    "oldest_age_ms": s.oldest_age_ms, "dropped": s.dropped}));
            } else {
                out.table(
                    &["pending", "dead letters", "bytes", "oldest", "dropped"],
                    &[vec![
                        s.pending.to_string(),
                        s.dead.to_string(),
                        s.bytes.to_string(),
                        s.oldest_age_ms.map_or("-".into(), |ms| out::age(Duration::from_millis(ms))),
                        s.dropped.to_string(),
                    ]],
                );
            }
        }
        OutboxCmd::List { limit } => {
            let items = c.outbox_pending(*limit)?;
            if out.json {
                out.json_doc(&json!({"ok": true, "items": items.iter().map(|i| json!({"message_id": i.message_id,
                    "item": serde_json::from_str::<Value>(&i.item_json).unwrap_or(Value::Null),
                    "queued_at_unix_ms": i.queued_at_unix_ms})).collect::<Vec<_>>()}));
            } else {
                let rows: Vec<Vec<String>> =
                    items.iter().map(|i| vec![i.message_id.clone(), i.item_json.clone()]).collect();
                out.table(&["message_id", "item"], &rows);
            }
        }
        OutboxCmd::Dead => {
            let dead = c.outbox_dead_letters()?;
            if out.json {
                out.json_doc(&json!({"ok": true, "dead_letters": dead.iter().map(|d| json!({
                    "message_id": d.message_id, "item": serde_json::from_str::<Value>(&d.item_json).unwrap_or(Value::Null),
                    "code": d.code, "type": d.error_type, "message": d.message,
                    "details": serde_json::from_str::<Value>(&d.details_json).ok(),
                    "failed_at_unix_ms": d.failed_at_unix_ms})).collect::<Vec<_>>()}));
            } else {
                let rows: Vec<Vec<String>> = dead
                    .iter()
                    .map(|d| vec![d.message_id.clone(), d.code.to_string(), d.error_type.clone(), d.message.clone()])
                    .collect();
                out.table(&["message_id", "code", "type", "message"], &rows);
            }
        }
        OutboxCmd::RetryDead => {
            let n = c.outbox_retry_dead()?;
            out.result(&json!({"ok": true, "requeued": n}), &format!("{n} dead letter(s) back in the outbox"));
        }
        OutboxCmd::PurgeDead => {
            let n = c.outbox_clear_dead()?;
            out.result(&json!({"ok": true, "purged": n}), &format!("{n} dead letter(s) deleted"));
        }
        OutboxCmd::Flush => return flush(&c, out),
    }
    Ok(ExitCode::SUCCESS)
}

/// Flushes in steps of 100 items, with a progress bar on a terminal and a line per step otherwise.
fn flush(c: &Client, out: &Out) -> Result<ExitCode, Failure> {
    let total = c.outbox_stats()?.pending;
    let (mut sent, mut replayed, mut rejected) = (0u64, 0u64, 0u64);
    let mut error = None;
    loop {
        let (r, e) = c.outbox_flush(100);
        sent += r.sent;
        replayed += r.replayed;
        rejected += r.rejected;
        let done = total.saturating_sub(r.pending);
        if !out.json {
            out.progress(done, total);
        }
        if let Some(e) = e {
            error = Some(e);
            break;
        }
        if r.pending == 0 || r.sent + r.replayed + r.rejected == 0 {
            break;
        }
    }
    out.end_progress();
    let pending = c.outbox_stats()?.pending;
    let doc = json!({"ok": error.is_none(), "sent": sent, "replayed": replayed, "rejected": rejected,
        "pending": pending, "error": error.as_ref().map(|e| e.to_string())});
    let text = format!(
        "sent {sent}, already stored {replayed}, refused for good {rejected} (see `outbox dead`), {pending} pending{}",
        error.as_ref().map_or(String::new(), |e| format!("; stopped: {e}"))
    );
    out.result(&doc, &text);
    let _ = std::io::stdout().flush();
    Ok(if error.is_none() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
