//! The core client against realer-sim: each behaviour the contract asks of it, seen from the server's side.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use realer::{Client, Config, ErrorKind, FeedItem, FeedOutcome, Level, Logger};

/// A reading with a fixed identity: the same call twice is a replay.
fn reading(id: &str) -> FeedItem {
    FeedItem {
        message_id: Some(id.into()),
        value_received_at: Some("2026-04-24T10:15:00Z".into()),
        ..FeedItem::sensor("7", "21.4")
    }
}

fn requests_to(sim: &Sim, suffix: &str) -> Vec<u16> {
    sim.request_log().into_iter().filter(|e| e.path.ends_with(suffix)).map(|e| e.status).collect()
}

#[test]
fn token_is_cached_then_renewed_after_renew_after() {
    let sim = sim_with(SimOptions { renew_after_secs: 1, ..SimOptions::default() });
    let c = client(&sim);
    c.fetch_sensors().unwrap();
    c.fetch_commands().unwrap();
    assert_eq!(sim.tokens_issued(), 1, "the token is reused while renew_after has not passed");
    std::thread::sleep(Duration::from_millis(1100));
    c.fetch_sensors().unwrap();
    assert_eq!(sim.tokens_issued(), 2, "renewed once renew_after passed");
    assert!(sim.request_log().iter().filter(|e| e.path.contains("/iot/")).all(|e| e.bearer_valid));
}

#[test]
fn a_401_brings_one_new_token_and_one_retry_with_the_same_message_id() {
    let sim = sim();
    let c = client(&sim);
    c.authenticate().unwrap();
    sim.expire_all_tokens();
    let r = c.post_feed_data(&reading("after-expiry-1"));
    assert_eq!(r.outcome, FeedOutcome::Created, "{r:?}");
    assert_eq!(sim.tokens_issued(), 2);
    assert_eq!(requests_to(&sim, "/feed-data"), vec![401, 201]);
    let records = sim.records();
    assert_eq!(records.len(), 1);
    assert_eq!((records[0].message_id.as_str(), records[0].times_received), ("after-expiry-1", 1));
}

#[test]
fn a_401_on_a_fresh_tokens_first_use_is_an_auth_error_not_a_loop() {
    // Tokens that are expired when issued: a token refused on its first use says the credentials or the
    // device's access are wrong (contract section 6), and a new one would be refused too.
    let sim = sim_with(SimOptions { token_ttl_secs: 0, renew_after_secs: 0, ..SimOptions::default() });
    let c = client(&sim);
    let e = c.fetch_sensors().unwrap_err();
    assert_eq!((e.kind, e.http_status, e.code), (ErrorKind::Auth, 401, 4001), "{e:?}");
    assert_eq!(requests_to(&sim, "/sensors"), vec![401]);
    assert_eq!(sim.tokens_issued(), 1);
}

#[test]
fn the_time_the_library_filled_in_is_returned_for_retries() {
    let sim = sim();
    let c = client(&sim);
    let first = c.post_feed_data(&FeedItem { message_id: Some("stamped".into()), ..FeedItem::sensor("7", "1") });
    assert_eq!(first.outcome, FeedOutcome::Created);
    realer::time::parse_rfc3339_utc_ms(&first.value_received_at).unwrap();
    // A retry with both the message_id and the value_received_at of the result is a replay.
    let again = c.post_feed_data(&FeedItem {
        message_id: Some(first.message_id.clone()),
        value_received_at: Some(first.value_received_at.clone()),
        ..FeedItem::sensor("7", "1")
    });
    assert_eq!((again.outcome, again.feed_data_id), (FeedOutcome::Idempotent, first.feed_data_id));
}

#[test]
fn transient_503_is_retried_and_stored_once() {
    let sim = sim();
    let c = client(&sim);
    sim.inject(Fault::ServiceUnavailable, Target::FeedData, 2);
    let r = c.post_feed_data(&reading("r-503"));
    assert_eq!((r.outcome, r.http_status, r.code), (FeedOutcome::Created, 201, 2000), "{r:?}");
    assert_eq!(requests_to(&sim, "/feed-data"), vec![503, 503, 201]);
    let records = sim.records();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].times_received, 1);
}

#[test]
fn retries_stop_at_max_attempts_with_a_retryable_error() {
    let sim = sim();
    let mut cfg = config(&sim);
    cfg.set_retry(3, Duration::from_millis(10), Duration::from_millis(50)).unwrap();
    let c = Client::new(&cfg).unwrap();
    sim.inject(Fault::ServiceUnavailable, Target::FeedData, 10);
    let r = c.post_feed_data(&reading("r-exhausted"));
    assert_eq!(r.outcome, FeedOutcome::NotSent);
    assert_eq!(r.message_id, "r-exhausted");
    let e = r.error.unwrap();
    assert_eq!((e.kind, e.http_status, e.code, e.retryable), (ErrorKind::Api, 503, 5003, true));
    assert_eq!(requests_to(&sim, "/feed-data").len(), 3);
}

#[test]
fn rate_limit_waits_for_retry_after() {
    let sim = sim();
    sim.inject(Fault::RateLimited { retry_after_secs: 1 }, Target::FeedData, 1);
    // max_delay must allow the server's wait: a Retry-After beyond it ends the call instead.
    let mut cfg = config(&sim);
    cfg.set_retry(3, Duration::from_millis(10), Duration::from_secs(2)).unwrap();
    let c2 = Client::new(&cfg).unwrap();
    let started = Instant::now();
    let r = c2.post_feed_data(&reading("r-429"));
    assert_eq!(r.outcome, FeedOutcome::Created, "{r:?}");
    assert!(started.elapsed() >= Duration::from_secs(1), "Retry-After honoured: {:?}", started.elapsed());
    assert_eq!(requests_to(&sim, "/feed-data"), vec![429, 201]);

    // A Retry-After longer than max_delay_ms is handed to the caller, with the wait.
    sim.inject(Fault::RateLimited { retry_after_secs: 5 }, Target::FeedData, 1);
    let r = c2.post_feed_data(&reading("r-429-long"));
    let e = r.error.unwrap();
    assert_eq!(
        (r.outcome, e.code, e.retryable, e.retry_after),
        (FeedOutcome::NotSent, 4029, true, Some(Duration::from_secs(5)))
    );
}

#[test]
fn proxy_html_502_is_retried() {
    let sim = sim();
    let c = client(&sim);
    sim.inject(Fault::ProxyBadGateway, Target::Catalog, 1);
    assert_eq!(c.fetch_sensors().unwrap().len(), 2);
}

#[test]
fn a_connection_closed_before_the_answer_is_retried_with_the_same_message_id() {
    let sim = sim();
    let c = client(&sim);
    sim.inject(Fault::CloseBeforeAnswer, Target::FeedData, 1);
    let r = c.post_feed_data(&reading("r-closed"));
    assert_eq!(r.outcome, FeedOutcome::Created, "{r:?}");
    // Stored, then the answer was lost: the resend is a replay.
    sim.inject(Fault::StoreThenClose, Target::FeedData, 1);
    let r = c.post_feed_data(&reading("r-stored"));
    assert_eq!(r.outcome, FeedOutcome::Idempotent, "{r:?}");
    let rec = sim.records().into_iter().find(|r| r.message_id == "r-stored").unwrap();
    assert_eq!((rec.times_received, Some(rec.feed_data_id as i64)), (2, r.feed_data_id));
}

#[test]
fn conflict_and_validation_are_rejected_without_retry() {
    let sim = sim();
    let c = client(&sim);
    assert_eq!(c.post_feed_data(&reading("dup")).outcome, FeedOutcome::Created);
    let replay = c.post_feed_data(&reading("dup"));
    assert_eq!(replay.outcome, FeedOutcome::Idempotent);
    let r = c.post_feed_data(&FeedItem { value: Some("99.9".into()), ..reading("dup") });
    let e = r.error.clone().unwrap();
    assert_eq!(
        (r.outcome, r.http_status, r.code, e.kind, e.error_type.as_str()),
        (FeedOutcome::Rejected, 409, 4009, ErrorKind::Api, "conflict")
    );
    assert!(!e.retryable && !e.request_id.is_empty());

    let r = c.post_feed_data(&FeedItem { message_id: Some("bad-sensor".into()), ..FeedItem::sensor("99", "1") });
    let e = r.error.unwrap();
    assert_eq!(
        (r.outcome, e.http_status, e.code, e.error_type.as_str()),
        (FeedOutcome::Rejected, 422, 4022, "validation_failed")
    );
    assert!(e.details_json().contains("sensor_id"), "{}", e.details_json());
    assert_eq!(requests_to(&sim, "/feed-data"), vec![201, 200, 409, 422], "no retries of final refusals");
}

#[test]
fn another_devices_path_is_forbidden() {
    let sim = sim();
    let mut cfg = config(&sim);
    cfg.set_device_id(builtin::OTHER_DEVICE_ID).unwrap();
    let c = Client::new(&cfg).unwrap();
    let e = c.fetch_sensors().unwrap_err();
    assert_eq!((e.kind, e.http_status, e.code, e.retryable), (ErrorKind::Api, 403, 4003, false));
    assert_eq!(sim.request_log().iter().filter(|e| e.path.contains("/sensors")).count(), 1);
}

#[test]
fn a_scope_without_feed_data_write_is_forbidden_for_feed_data() {
    let sim = sim();
    let mut cfg = config(&sim);
    cfg.set_scope("iot:catalog:read").unwrap();
    let c = Client::new(&cfg).unwrap();
    assert!(c.fetch_sensors().is_ok());
    let r = c.post_feed_data(&reading("scoped"));
    // The request was refused, not the item: it stays sendable under its message_id.
    assert_eq!((r.outcome, r.code, r.message_id.as_str()), (FeedOutcome::NotSent, 4003, "scoped"));
}

#[test]
fn wrong_credentials_are_an_auth_error_without_retries() {
    let sim = sim();
    let mut cfg = config(&sim);
    cfg.set_credentials(builtin::CLIENT_ID, "not-the-secret").unwrap();
    let c = Client::new(&cfg).unwrap();
    let e = c.authenticate().unwrap_err();
    assert_eq!((e.kind, e.http_status, e.error_type.as_str()), (ErrorKind::Auth, 401, "invalid_client"));
    assert!(!e.message.contains("not-the-secret"));
    let e = c.fetch_commands().unwrap_err();
    assert_eq!(e.kind, ErrorKind::Auth);
    assert_eq!(requests_to(&sim, "/oauth/token").len(), 2, "one token request per call, none retried");
}

#[test]
fn catalog_items_carry_no_desired_state() {
    let sim = sim();
    let c = client(&sim);
    let cmds = c.fetch_commands().unwrap();
    let by_id = |id: u64| cmds.iter().find(|c| c.id == id.to_string()).unwrap().to_owned();
    // v1: the catalog's value is the value Realer wants.
    let pending = by_id(builtin::PENDING_COMMAND_ID);
    assert_eq!(pending.value.as_deref(), Some(builtin::PENDING_DESIRED_VALUE));
    let unrepresentable = by_id(builtin::UNREPRESENTABLE_COMMAND_ID);
    assert!(unrepresentable.error.is_some() && unrepresentable.value.is_none());

    let one = c.fetch_command(&builtin::PENDING_COMMAND_ID.to_string()).unwrap();
    assert_eq!(one, pending);
    let s = c.fetch_sensor(&builtin::TEMPERATURE_SENSOR_ID.to_string()).unwrap();
    assert_eq!(
        (s.qc.as_deref(), s.mu.as_deref(), s.pin_port.as_deref()),
        (Some("celsius_temperature"), Some("degree_celsius:0"), Some("5"))
    );
    let e = c.fetch_sensor("404").unwrap_err();
    assert_eq!((e.kind, e.code), (ErrorKind::Api, 4004));
}

#[test]
fn batch_with_mixed_outcomes_and_more_than_100_items() {
    let sim = sim();
    let c = client(&sim);
    assert_eq!(c.post_feed_data(&reading("b-old")).outcome, FeedOutcome::Created);
    let report = c.post_feed_batch(&[
        reading("b-new"),
        reading("b-old"),
        FeedItem { message_id: Some("b-bad".into()), ..FeedItem::sensor("99", "1") },
        FeedItem { value: Some("99.9".into()), ..reading("b-old") },
    ]);
    assert!(report.error.is_none(), "{:?}", report.error);
    let outcomes: Vec<FeedOutcome> = report.results.iter().map(|r| r.outcome).collect();
    assert_eq!(
        outcomes,
        vec![FeedOutcome::Created, FeedOutcome::Idempotent, FeedOutcome::Rejected, FeedOutcome::Rejected]
    );
    assert_eq!(report.results[2].code, 4022);
    assert!(report.results[2].error.as_ref().unwrap().details_json().contains("sensor_id"));
    assert_eq!(report.results[3].code, 4009);

    let many: Vec<FeedItem> = (0..250).map(|i| reading(&format!("many-{i}"))).collect();
    let report = c.post_feed_batch(&many);
    assert!(report.error.is_none());
    assert!(report.results.iter().all(|r| r.outcome == FeedOutcome::Created));
    assert_eq!(requests_to(&sim, "/batches").len(), 1 + 3, "250 items go out as 3 requests");
    assert_eq!(sim.records().len(), 2 + 250);
}

#[test]
fn a_server_that_never_answers_times_out_within_the_request_timeout() {
    let sim = sim();
    let mut cfg = config(&sim);
    cfg.set_timeouts(Duration::from_secs(1), Duration::from_secs(2)).unwrap();
    let c = Client::new(&cfg).unwrap();
    c.authenticate().unwrap();
    sim.inject(Fault::Hang, Target::FeedData, 100);
    let started = Instant::now();
    let r = c.post_feed_data(&reading("hang"));
    let took = started.elapsed();
    let e = r.error.unwrap();
    assert_eq!((r.outcome, e.kind), (FeedOutcome::NotSent, ErrorKind::Timeout), "{e:?}");
    assert!(took < Duration::from_secs(3), "took {took:?}");

    // A listener that accepts and never speaks TLS.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut cfg = config(&sim);
    cfg.set_base_url(&format!("https://{}", silent.local_addr().unwrap())).unwrap();
    cfg.set_timeouts(Duration::from_secs(1), Duration::from_secs(2)).unwrap();
    let c = Client::new(&cfg).unwrap();
    let started = Instant::now();
    let e = c.fetch_sensors().unwrap_err();
    assert_eq!(e.kind, ErrorKind::Timeout, "{e:?}");
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
}

#[test]
fn an_untrusted_certificate_is_a_tls_error() {
    let sim = sim();
    let other = common::sim();
    let mut cfg = config(&sim);
    cfg.set_ca_pem(other.ca_pem().as_bytes()).unwrap();
    let c = Client::new(&cfg).unwrap();
    let e = c.authenticate().unwrap_err();
    assert_eq!((e.kind, e.retryable), (ErrorKind::Tls, false), "{e:?}");
    assert_eq!(sim.tokens_issued(), 0);
    // The bundled Mozilla roots do not trust the sim either.
    let mut cfg = Config::new();
    cfg.set_base_url(&sim.base_url()).unwrap();
    cfg.set_device_id("12345").unwrap();
    cfg.set_credentials("a", "b").unwrap();
    assert_eq!(Client::new(&cfg).unwrap().authenticate().unwrap_err().kind, ErrorKind::Tls);
}

#[test]
fn an_expired_server_certificate_is_a_certificate_time_error() {
    let sim = sim_with(SimOptions { expired_certificate: true, ..SimOptions::default() });
    let e = client(&sim).authenticate().unwrap_err();
    assert_eq!((e.kind, e.retryable), (ErrorKind::TlsCertTime, false), "{e:?}");
    assert!(e.message.contains("clock"), "{}", e.message);
}

#[test]
fn connection_refused_is_a_retryable_network_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let sim = sim();
    let mut cfg = config(&sim);
    cfg.set_base_url(&format!("https://127.0.0.1:{port}")).unwrap();
    cfg.set_retry(2, Duration::from_millis(1), Duration::from_millis(5)).unwrap();
    let e = Client::new(&cfg).unwrap().authenticate().unwrap_err();
    assert_eq!((e.kind, e.retryable), (ErrorKind::Network, true), "{e:?}");
}

#[test]
fn eight_threads_share_one_client() {
    let sim = sim();
    let c = Arc::new(client(&sim));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let c = c.clone();
            std::thread::spawn(move || {
                for i in 0..25 {
                    let r = c.post_feed_data(&reading(&format!("t{t}-{i}")));
                    assert_eq!(r.outcome, FeedOutcome::Created, "{r:?}");
                }
                c.fetch_commands().unwrap().len()
            })
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), 4);
    }
    assert_eq!(sim.records().len(), 200);
    assert_eq!(sim.tokens_issued(), 1, "one token request in flight, shared by all threads");
}

#[test]
fn logs_never_carry_the_secret_or_the_token() {
    let sim = sim();
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut cfg = config(&sim);
    let sink = lines.clone();
    cfg.set_logger(Some(Logger::new(Level::Debug, move |_, m| sink.lock().unwrap().push(m.to_string()))));
    let c = Client::new(&cfg).unwrap();
    sim.inject(Fault::ServiceUnavailable, Target::FeedData, 1);
    c.post_feed_data(&reading("logged"));
    sim.expire_all_tokens();
    c.fetch_sensors().unwrap();
    c.post_feed_data(&FeedItem::sensor("99", "1"));
    let lines = lines.lock().unwrap();
    assert!(lines.len() >= 6, "{lines:#?}");
    for l in lines.iter() {
        assert!(!l.contains(builtin::CLIENT_SECRET) && !l.contains("Bearer") && !l.contains("Basic"), "{l}");
    }
    assert!(!format!("{cfg:?}{c:?}").contains(builtin::CLIENT_SECRET));
}
