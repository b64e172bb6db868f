//! A hostile program that SIGSTOPs every process of the executions' uid, in a test
//! binary of its own: `kill -STOP -1` reaches every process of uid 65532 on the
//! machine, so it must not run next to other tests' sidecars (cargo runs test binaries
//! one after another, and the tests of one binary at the same time).

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use sidecar_tests::{protection_active, timed, Sidecar};

/// Slack over the timeout for the wall time around a request.
const SLACK: Duration = Duration::from_secs(3);

/// Code that SIGSTOPs every process of its uid, over and over: the other executions'
/// programs are stopped (and time out), and the sidecar keeps answering. Such a loop
/// can also hit a child in the instant between its uid drop and exec, while the
/// sidecar thread that spawned it waits for that exec; whether a given run does is
/// luck, so that case is tested deterministically by the spawn watchdog's unit test
/// (exec/spawn.rs, `a_child_stuck_before_exec_is_killed_and_reported`).
#[test]
fn stopping_every_process_of_the_uid_does_not_hang_the_sidecar() {
    let sc = Arc::new(Sidecar::start());
    // Without a uid drop, the loop would stop the sidecar's own uid: nothing to test.
    if !protection_active(&sc, "uid_drop") {
        return;
    }
    let attacker = {
        let sc = Arc::clone(&sc);
        std::thread::spawn(move || {
            sc.execute(&json!({
                "language": "bash",
                "code": "while :; do kill -STOP -1 2>/dev/null; done",
                "timeoutSeconds": 5,
                "sessionId": "attacker",
            }))
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let started = std::time::Instant::now();
    let mut answered = 0;
    while started.elapsed() < Duration::from_secs(4) {
        let (v, took) = timed(|| {
            sc.execute(&json!({"language": "bash", "code": "echo hi", "timeoutSeconds": 1}))
        });
        assert!(
            took < Duration::from_secs(1) + SLACK,
            "took {took:?}: {v:#}"
        );
        answered += 1;
    }
    let v = attacker.join().unwrap();
    assert_eq!(v["status"], "timeout", "{v:#}");
    assert!(answered > 0);
    let v = sc.execute(&json!({"language": "bash", "code": "echo alive", "timeoutSeconds": 10}));
    assert_eq!(v["stdout"], "alive\n", "{v:#}");
}
