//! fork(): a child that posts through the client it inherited must not touch the parent's connections (its
//! TLS records would reuse the parent's sequence numbers and break both sides). Parent and child each post
//! after the fork, and both are stored. The inherited outbox is refused in the child (an SQLite connection
//! does not survive a fork) and keeps working in the parent. One test in this binary: fork() keeps only the
//! calling thread.

mod common;

use common::*;
use realer::{Client, ErrorKind, FeedItem, FeedOutcome};

#[test]
fn parent_and_child_both_post_after_a_fork() {
    let sim = sim();
    let dir = std::env::temp_dir().join(format!("realer-fork-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut cfg = config(&sim);
    cfg.set_outbox(dir.join("outbox.db").to_str().unwrap(), 100, 0).unwrap();
    let c = Client::new(&cfg).unwrap();
    c.outbox_push(&FeedItem::sensor("7", "pushed-before-fork")).unwrap();
    // A kept-alive TLS connection in the pool before the fork.
    let r = c.post_feed_data(&FeedItem::sensor("7", "before-fork"));
    assert_eq!(r.outcome, FeedOutcome::Created, "{:?}", r.error);

    // SAFETY: the child only posts through the client (no locks are held by other threads of this test: the
    // sim's threads wait in accept/read) and leaves with _exit, never returning into the test harness.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let r = c.post_feed_data(&FeedItem::sensor("7", "from-child"));
        let mut code = match r.outcome {
            FeedOutcome::Created => 0,
            _ => {
                eprintln!("child: {:?}", r.error);
                1
            }
        };
        match c.outbox_push(&FeedItem::sensor("7", "pushed-in-child")) {
            Err(e) if e.kind == ErrorKind::Config => {}
            other => {
                eprintln!("child: the inherited outbox was used: {other:?}");
                code |= 2;
            }
        }
        // Freeing the client in the child must leave the parent's SQLite connection alone.
        drop(c);
        // SAFETY: ends the child at once, without running the parent's destructors or the harness.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waits for the child made above.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    let r = c.post_feed_data(&FeedItem::sensor("7", "from-parent"));
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "the child's post failed ({status})");
    assert_eq!(r.outcome, FeedOutcome::Created, "the parent's post after the fork: {:?}", r.error);
    let (report, err) = c.outbox_flush(0);
    assert!(err.is_none(), "the parent's outbox after the fork: {err:?}");
    assert_eq!((report.sent, report.pending), (1, 0));
    let values: Vec<String> = sim.records().iter().map(|r| r.item["value"].to_string()).collect();
    for v in ["before-fork", "from-child", "from-parent", "pushed-before-fork"] {
        assert!(values.iter().any(|s| s.contains(v)), "{v} not stored: {values:?}");
    }
    assert!(!values.iter().any(|s| s.contains("pushed-in-child")));
    let _ = std::fs::remove_dir_all(&dir);
}
