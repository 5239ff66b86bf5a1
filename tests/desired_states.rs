//! Realer as documented (contract sections 3, 3b, 5 and 7): what Realer wants comes from `/desired-states` (v2) or from the catalog's
//! values (v1) behind one call; answers echo the sequence; refusals of a request are never rejections; and
//! the batch endpoint's guessed shape never holds data back. Each test runs against realer-sim.

mod common;

use std::collections::HashMap;

use common::*;
use realer::{Client, DesiredAction, DesiredSource, DesiredState, ErrorKind, FeedItem, FeedOutcome, ReportStatus};
use realer_sim::{FixtureDesired, Flavour, Labels};

fn v2() -> Sim {
    sim_with(SimOptions { flavour: Flavour::V2, ..SimOptions::default() })
}

fn add_desired(sim: &Sim, command: u64, desired_id: &str, seq: u64, value: &str) {
    let d = FixtureDesired {
        desired_id: desired_id.into(),
        value: value.into(),
        sequence_number: seq,
        expires_at: None,
        expires_in_secs: Some(600),
    };
    sim.add_desired_state(builtin::DEVICE_ID, &d, &command.to_string()).unwrap();
}

fn requests_to(sim: &Sim, suffix: &str) -> usize {
    sim.request_log().iter().filter(|e| e.path.ends_with(suffix)).count()
}

fn outbox_config(sim: &Sim, path: &std::path::Path) -> realer::Config {
    let mut cfg = config(sim);
    cfg.set_outbox(path.to_str().unwrap(), 0, 0).unwrap();
    cfg
}

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("realer-desired-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// What the firmware loop does with one state: the actuator's value after the pass, and the status to answer.
fn drive(state: &DesiredState, actuator: &mut String) -> Option<ReportStatus> {
    match state.action {
        DesiredAction::Stale => Some(ReportStatus::Stale),
        DesiredAction::Apply => {
            let wanted = state.value.as_deref()?;
            let same = realer::values_equal(state.value_type.as_deref(), actuator, wanted);
            if same && state.desired_id.is_none() {
                return None;
            }
            *actuator = wanted.to_string();
            Some(ReportStatus::Applied)
        }
    }
}

/// One pass: ask, drive the actuators (all "0" at first), answer; returns what was answered.
fn pass(c: &Client, actuators: &mut HashMap<String, String>) -> Vec<(String, Option<String>, ReportStatus)> {
    apply(c, &c.fetch_desired_states().unwrap(), actuators)
}

/// Drives the actuators to what `wanted` says and answers; returns what was answered.
fn apply(
    c: &Client,
    wanted: &realer::DesiredStates,
    actuators: &mut HashMap<String, String>,
) -> Vec<(String, Option<String>, ReportStatus)> {
    let mut answered = Vec::new();
    for state in &wanted.states.to_vec() {
        let actuator = actuators.entry(state.command_id.clone()).or_insert_with(|| "0".into());
        let Some(status) = drive(state, actuator) else { continue };
        let item = state.answer(actuator, status).unwrap();
        let r = c.post_feed_data(&item);
        assert!(r.is_accepted(), "{r:?}");
        answered.push((state.command_id.clone(), state.desired_id.clone(), status));
    }
    answered
}

#[test]
fn v1_drives_every_command_whose_catalog_value_differs_and_reports_it_without_desired_id() {
    let sim = sim();
    let c = client(&sim);
    let wanted = c.fetch_desired_states().unwrap();
    assert_eq!(wanted.source, DesiredSource::Catalog);
    let by_command: Vec<(&str, Option<&str>, Option<&str>)> =
        wanted.states.iter().map(|s| (s.command_id, s.value, s.desired_id)).collect();
    // Command 3 (unrepresentable) is not there; no desired ids anywhere.
    assert_eq!(by_command, [("1", Some("1.0"), None), ("2", Some("1.0"), None), ("4", Some("20.5"), None)]);
    assert!(wanted.states.iter().all(|s| s.action == DesiredAction::Apply && s.value_type.is_some()));

    let mut actuators = HashMap::from([("4".to_string(), "20.50".to_string())]);
    let answered = apply(&c, &wanted, &mut actuators);
    // Command 4's actuator already holds 20.5 (compared numerically): nothing to report.
    assert_eq!(answered.iter().map(|a| a.0.as_str()).collect::<Vec<_>>(), ["1", "2"]);
    let records = sim.records();
    assert_eq!(records.len(), 2);
    for r in &records {
        assert!(r.item.get("desired_id").is_none() && r.item.get("report_status").is_none(), "{r:?}");
        assert_eq!(r.item["value"], "1.0");
    }
    // A second pass: the catalog's values were acted on already, none is handed over again.
    assert!(c.fetch_desired_states().unwrap().states.is_empty());
    assert!(pass(&c, &mut actuators).is_empty());
    // The missing endpoint was asked once, then remembered.
    assert_eq!(requests_to(&sim, "/desired-states"), 1);
}

#[test]
fn v2_answers_every_pending_state_with_its_sequence_and_leaves_none() {
    let sim = v2();
    add_desired(&sim, 4, "des_low", 1, "18.0");
    add_desired(&sim, 4, "des_high", 2, "21.0");
    let c = client(&sim);
    let wanted = c.fetch_desired_states().unwrap();
    assert_eq!(wanted.source, DesiredSource::DesiredStates);
    let actions: Vec<(&str, DesiredAction)> = wanted.states.iter().map(|s| (s.desired_id.unwrap(), s.action)).collect();
    assert_eq!(
        actions,
        [
            (builtin::PENDING_DESIRED_ID, DesiredAction::Apply),
            (builtin::EXPIRED_DESIRED_ID, DesiredAction::Stale),
            ("des_low", DesiredAction::Stale),
            ("des_high", DesiredAction::Apply),
        ]
    );
    let mut actuators = HashMap::new();
    let answered = pass(&c, &mut actuators);
    assert_eq!(answered.len(), 4);
    assert!(sim.desired_states(builtin::DEVICE_ID).is_empty(), "{:?}", sim.desired_states(builtin::DEVICE_ID));
    assert!(c.fetch_desired_states().unwrap().states.is_empty());
    let records = sim.records();
    let answer = |id: &str| records.iter().find(|r| r.item["desired_id"] == id).unwrap().item.clone();
    assert_eq!(answer(builtin::PENDING_DESIRED_ID)["report_status"], "applied");
    assert_eq!(answer(builtin::PENDING_DESIRED_ID)["sequence_number"], 3);
    assert_eq!(answer(builtin::PENDING_DESIRED_ID)["value"], "1.0");
    assert_eq!(
        (
            answer(builtin::EXPIRED_DESIRED_ID)["report_status"].clone(),
            answer(builtin::EXPIRED_DESIRED_ID)["value"].clone()
        ),
        ("stale".into(), "0".into())
    );
    assert_eq!(answer(builtin::EXPIRED_DESIRED_ID)["sequence_number"], 5);
    assert_eq!(
        (answer("des_low")["report_status"].clone(), answer("des_low")["sequence_number"].clone()),
        ("stale".into(), 1.into())
    );
    assert_eq!(
        (answer("des_high")["report_status"].clone(), answer("des_high")["value"].clone()),
        ("applied".into(), "21.0".into())
    );
    // The catalog now shows the applied values as confirmed.
    let cmds = c.fetch_commands().unwrap().to_vec();
    assert_eq!(cmds[0].value.as_deref(), Some("1.0"));
    assert_eq!(cmds[3].value.as_deref(), Some("21.0"));
}

#[test]
fn a_restart_with_an_outbox_file_never_applies_an_old_sequence_again() {
    let dir = scratch("restart");
    let path = dir.join("outbox.db");
    let sim = v2();
    {
        let c = Client::new(&outbox_config(&sim, &path)).unwrap();
        pass(&c, &mut HashMap::new());
    }
    // A user's older setting arrives late, and one that came while the device was off is newer.
    add_desired(&sim, 1, "des_late_older", 2, "0.5");
    add_desired(&sim, 2, "des_newer", 6, "1.0");
    let restarted = Client::new(&outbox_config(&sim, &path)).unwrap();
    let wanted = restarted.fetch_desired_states().unwrap();
    let actions: Vec<(&str, DesiredAction)> = wanted.states.iter().map(|s| (s.desired_id.unwrap(), s.action)).collect();
    assert_eq!(actions, [("des_late_older", DesiredAction::Stale), ("des_newer", DesiredAction::Apply)]);
    // Without the file, a fresh client would know nothing and apply the old one.
    let forgetful = client(&sim);
    let wanted = forgetful.fetch_desired_states().unwrap();
    assert_eq!(wanted.states.get(0).unwrap().action, DesiredAction::Apply);
    drop(restarted);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_answer_queued_in_the_outbox_is_not_offered_again() {
    let dir = scratch("queued");
    let path = dir.join("outbox.db");
    let sim = v2();
    let c = Client::new(&outbox_config(&sim, &path)).unwrap();
    let wanted = c.fetch_desired_states().unwrap();
    let states = wanted.states.to_vec();
    let first = &states[0];
    c.outbox_push(&first.answer("1.0", ReportStatus::Applied).unwrap()).unwrap();
    // Still listed by Realer (the answer is not through), but not offered again, and not stale either.
    assert_eq!(sim.desired_states(builtin::DEVICE_ID).len(), 2);
    let again = c.fetch_desired_states().unwrap();
    assert_eq!(again.states.len(), 1);
    assert_eq!(again.states.get(0).unwrap().desired_id, Some(builtin::EXPIRED_DESIRED_ID));
    let (report, err) = c.outbox_flush(0);
    assert!(err.is_none(), "{err:?}");
    assert_eq!((report.sent, report.pending), (1, 0));
    assert_eq!(sim.desired_states(builtin::DEVICE_ID).len(), 1);
    drop(c);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_service_without_desired_states_or_without_the_scope_falls_back_to_the_catalog_once() {
    let sim = v2();
    let mut cfg = config(&sim);
    cfg.set_scope("iot:catalog:read iot:feed-data:write").unwrap();
    let c = Client::new(&cfg).unwrap();
    let wanted = c.fetch_desired_states().unwrap();
    assert_eq!(wanted.source, DesiredSource::Catalog);
    // v2's catalog holds confirmed values: "0.0" for the relays.
    assert_eq!(wanted.states.get(0).unwrap().value, Some("0.0"));
    c.fetch_desired_states().unwrap();
    let asked: Vec<u16> =
        sim.request_log().iter().filter(|e| e.path.ends_with("/desired-states")).map(|e| e.status).collect();
    assert_eq!(asked, [403], "asked once, then remembered");

    // Under the other label vocabulary the decision is the same (by status and code).
    let sim = common::sim();
    sim.set_labels(Labels::ResponseHandling);
    let c = client(&sim);
    assert_eq!(c.fetch_desired_states().unwrap().source, DesiredSource::Catalog);
}

#[test]
fn a_402_is_not_sent_and_the_same_message_id_is_created_after_the_fault_is_lifted() {
    let sim = sim();
    sim.set_labels(Labels::ResponseHandling);
    let c = client(&sim);
    sim.inject(Fault::SubscriptionInactive, Target::FeedData, 1);
    let item = FeedItem::sensor("7", "21.4");
    let r = c.post_feed_data(&item);
    assert_eq!(r.outcome, FeedOutcome::NotSent, "{r:?}");
    let e = r.error.as_ref().unwrap();
    assert_eq!(
        (e.kind, e.http_status, e.code, e.error_type.as_str()),
        (ErrorKind::Api, 402, 4002, "subscription_inactive")
    );
    assert!(sim.records().is_empty());
    let retry = FeedItem {
        message_id: Some(r.message_id.clone()),
        value_received_at: Some(r.value_received_at.clone()),
        ..item
    };
    let again = c.post_feed_data(&retry);
    assert_eq!((again.outcome, again.message_id.as_str()), (FeedOutcome::Created, r.message_id.as_str()));
    assert_eq!(sim.records().len(), 1);

    // A batch refused as a whole with 402: every item NOT_SENT, none rejected.
    sim.inject(Fault::SubscriptionInactive, Target::Batch, 1);
    let report = c.post_feed_batch(&[FeedItem::sensor("7", "1"), FeedItem::sensor("8", "2")]);
    assert_eq!(report.error.as_ref().map(|e| e.code), Some(4002));
    assert!(report.results.iter().all(|r| r.outcome == FeedOutcome::NotSent), "{:?}", report.results);
    // Judged items stay rejected: a conflict.
    let conflict = c.post_feed_data(&FeedItem { value: Some("99".into()), ..retry });
    assert_eq!((conflict.outcome, conflict.code), (FeedOutcome::Rejected, 4009));
}

fn readings(prefix: &str, n: usize) -> Vec<FeedItem> {
    (0..n)
        .map(|i| FeedItem { message_id: Some(format!("{prefix}-{i}")), ..FeedItem::sensor("7", &format!("{i}")) })
        .collect()
}

#[track_caller]
fn assert_each_stored_once(sim: &Sim, prefix: &str, n: usize) {
    let records: Vec<_> = sim.records().into_iter().filter(|r| r.message_id.starts_with(prefix)).collect();
    assert_eq!(records.len(), n, "{records:#?}");
    assert!(records.iter().all(|r| r.times_received == 1), "{records:#?}");
}

#[test]
fn with_the_batch_endpoint_missing_batches_and_flushes_still_store_every_item_once() {
    let sim = sim();
    sim.inject(Fault::NotFound, Target::Batch, 1000);
    let c = client(&sim);
    let report = c.post_feed_batch(&readings("direct", 150));
    assert!(report.error.is_none(), "{:?}", report.error);
    assert!(report.results.iter().all(|r| r.outcome == FeedOutcome::Created));
    assert_each_stored_once(&sim, "direct", 150);
    assert_eq!(requests_to(&sim, "/batches"), 1, "the missing endpoint is remembered");

    let dir = scratch("no-batches");
    let c = Client::new(&outbox_config(&sim, &dir.join("outbox.db"))).unwrap();
    c.outbox_push_many(&readings("queued", 120)).unwrap();
    let (flushed, err) = c.outbox_flush(0);
    assert!(err.is_none(), "{err:?}");
    assert_eq!((flushed.sent, flushed.pending, flushed.rejected), (120, 0, 0));
    assert_each_stored_once(&sim, "queued", 120);
    drop(c);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_unreadable_batch_answer_sends_the_items_one_by_one() {
    let sim = sim();
    sim.inject(Fault::UnreadableSuccess, Target::Batch, 1);
    let c = client(&sim);
    let report = c.post_feed_batch(&readings("odd", 5));
    assert!(report.error.is_none(), "{:?}", report.error);
    // The batch stored them; the one-by-one resend under the same message_ids is a replay, not a copy.
    assert!(report.results.iter().all(|r| r.outcome == FeedOutcome::Idempotent), "{:?}", report.results);
    let records: Vec<_> = sim.records();
    assert_eq!(records.len(), 5);
    assert!(records.iter().all(|r| r.times_received == 2));
}

#[test]
fn warnings_reach_the_caller_as_raw_json() {
    let sim = sim();
    let c = client(&sim);
    sim.inject(Fault::Warnings, Target::FeedData, 1);
    let r = c.post_feed_data(&FeedItem::sensor("7", "1"));
    assert_eq!(r.outcome, FeedOutcome::Created);
    let w: serde_json::Value = serde_json::from_str(r.warnings_json.as_deref().unwrap()).unwrap();
    assert_eq!(w[0]["type"], "clock_skew");
    assert_eq!(c.post_feed_data(&FeedItem::sensor("7", "2")).warnings_json, None, "[] is no warning");
}
