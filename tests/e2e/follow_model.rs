//! A generated test of `tag --follow`: from one seed, a world (queues followed, calls queued at
//! the start, event delay, visibility lag, whether attribute changes send events, a flow that
//! overwrites the key, `--concurrency`, `--verify-timeout`) and a sequence of things that happen
//! while it follows (calls arriving in a followed queue or another, calls answered and ending,
//! sockets closed by the server, dropped, stalled, channels expired, requests held while calls
//! arrive). Then SIGTERM, and invariants judged from the simulator and the audit store:
//!
//! 1. the follow exits 0, or 3 exactly when a target drifted or failed; the run is completed;
//! 2. nothing is left `planned`, `sending` or `applied`;
//! 3. every PATCH Genesys accepted is in the audit store as a change of that participant
//!    (verified or drift), and no change is recorded that Genesys did not accept;
//! 4. no participant is written more than twice (the change and its one re-application);
//! 5. every call still live in a followed queue at the end is tagged, or its drift is recorded
//!    (with a flow overwriting the key: a change of it is recorded).
//!
//! `ATTRSYNC_FOLLOW_MODEL_SEED=N` replays one case.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use genesys_sim::{DriftConfig, FaultConfig, SimConfig};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::support::{TestOrg, audit_targets, try_poll, try_wait_until};

const BASE_SEED: u64 = 0x5eed_f011_0003;
const CASES: u64 = 6;
/// Seeds that found defects, kept as fixed cases: a stalled socket never replaced (no
/// `--socket-idle-timeout` yet), twice; a flow putting back the value from before a change
/// verified by an event, taken for a stale event.
const KEPT_SEEDS: [u64; 4] = [
    104376027906051,
    104389300084896,
    104381336777589,
    // The soak's: requests held while stopping; a verification's read refused at once after
    // the stop (its budget not admitted on the first poll) left a change `applied`.
    1796591131048397246,
];

#[tokio::test]
async fn follow_model_cases() {
    let env = |name: &str| {
        std::env::var(name)
            .ok()
            .map(|v| v.parse::<u64>().expect("a u64"))
    };
    // `cargo xtask soak` sets a base seed and a batch size; a replay, one seed.
    let seeds: Vec<u64> = match env("ATTRSYNC_FOLLOW_MODEL_SEED") {
        Some(seed) => vec![seed],
        None => {
            let base = env("ATTRSYNC_FOLLOW_MODEL_BASE_SEED");
            let cases = env("ATTRSYNC_FOLLOW_MODEL_CASES").unwrap_or(CASES);
            let generated =
                (0..cases).map(|i| base.unwrap_or(BASE_SEED).wrapping_add(i * 0x9e37_79b9));
            // The kept seeds belong to the fixed run, not to a soak's batches.
            let kept = base.is_none().then_some(KEPT_SEEDS).into_iter().flatten();
            generated.chain(kept).collect()
        }
    };
    let mut failures = Vec::new();
    for seed in seeds {
        if let Err(report) = run_case(seed).await {
            println!("FOLLOW MODEL FAIL seed={seed}");
            failures.push(format!("seed {seed}: {report}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[derive(Debug, Clone, Copy)]
enum Step {
    Arrive { followed: bool, count: usize },
    ArriveWhileHeld { count: usize },
    Answer,
    End,
    Close,
    Drop,
    Stall,
    Expire,
}

fn connected(org: &TestOrg) -> bool {
    org.state().notification_status().sockets > 0
}

async fn run_case(seed: u64) -> Result<(), String> {
    let mut rng = StdRng::seed_from_u64(seed);
    let attribute_events = rng.random_bool(0.7);
    let drift = rng.random_bool(0.3);
    let config = SimConfig {
        seed,
        calls: rng.random_range(0..6),
        queues: 2,
        event_delay: Duration::from_millis(rng.random_range(0..80)),
        attribute_events,
        heartbeat_interval: Duration::from_millis(200),
        ..TestOrg::fast_config(0)
    };
    let org = TestOrg::start(config).await;
    let mut faults = FaultConfig {
        visibility_lag: Duration::from_millis(*[0, 0, 60].get(rng.random_range(0..3)).unwrap()),
        ..FaultConfig::default()
    };
    if drift {
        faults.drift = Some(DriftConfig {
            key: "campaign".into(),
            value: "flow".into(),
            rate: 0.5,
        });
    }
    org.state().set_faults(faults);
    let queues: Vec<String> = org.state().queues().into_iter().map(|q| q.id).collect();
    let followed: Vec<String> = if rng.random_bool(0.5) {
        queues.clone()
    } else {
        vec![queues[0].clone()]
    };
    let concurrency = rng.random_range(1..=8).to_string();
    let verify_timeout = format!("{}ms", rng.random_range(300..1_000));
    let mut args = vec![
        "-v",
        "tag",
        "--follow",
        "--backfill-lag",
        "300ms",
        // The simulator's heartbeats come every 200 ms: a stalled socket is noticed soon.
        "--socket-idle-timeout",
        "1s",
    ];
    for q in &followed {
        args.extend(["--queue", q.as_str()]);
    }
    args.extend([
        "--concurrency",
        concurrency.as_str(),
        "--verify-timeout",
        verify_timeout.as_str(),
        "campaign=spring",
    ]);
    let child = org.spawn(&args);
    try_wait_until("the socket connects", || connected(&org)).await?;

    let steps: Vec<Step> = (0..rng.random_range(4..10))
        .map(|_| match rng.random_range(0..10) {
            0..=2 => Step::Arrive {
                followed: rng.random_bool(0.8),
                count: rng.random_range(1..4),
            },
            3 => Step::ArriveWhileHeld {
                count: rng.random_range(1..3),
            },
            4 => Step::Answer,
            5 => Step::End,
            6 => Step::Close,
            7 => Step::Drop,
            8 => Step::Stall,
            _ => Step::Expire,
        })
        .collect();
    for step in &steps {
        let state = org.state();
        match *step {
            Step::Arrive { followed: f, count } => {
                let queue = if f {
                    &followed[0]
                } else {
                    queues
                        .iter()
                        .find(|q| !followed.contains(q))
                        .unwrap_or(&queues[1])
                };
                for _ in 0..count {
                    state.arrive_call(Some(queue));
                }
            }
            Step::ArriveWhileHeld { count } => {
                // Calls arrive while the follower can send nothing (its socket is dropped and
                // its next request held): only the backfill can find them.
                state.hold_after(0);
                state.drop_sockets();
                for _ in 0..count {
                    state.arrive_call(Some(&followed[0]));
                }
                state.release();
            }
            Step::Answer | Step::End => {
                let live: Vec<String> = state
                    .calls()
                    .into_iter()
                    .filter(|c| !c.ended)
                    .map(|c| c.conversation.id)
                    .collect();
                if !live.is_empty() {
                    let id = &live[rng.random_range(0..live.len())];
                    if matches!(step, Step::Answer) {
                        state.answer_call(id);
                    } else {
                        state.end_call(id);
                    }
                }
            }
            Step::Close => {
                state.announce_socket_closing();
            }
            Step::Drop => {
                state.drop_sockets();
            }
            Step::Stall => {
                state.stall_sockets();
            }
            Step::Expire => {
                state.expire_channels();
            }
        }
        try_wait_until(
            &format!("the socket is connected again after {step:?}"),
            || connected(&org),
        )
        .await?;
    }

    // The end: every live call of a followed queue is tagged or its drift recorded.
    let audit = org.audit_path();
    // With a flow that overwrites the key, a call whose change was verified by a read may hold
    // the flow's value again with no event able to say so (the flow put back the value from
    // before): a recorded change is what can be asked for then.
    let untagged = || async {
        let settled: BTreeSet<String> = audit_targets(&audit)
            .await
            .into_iter()
            .filter(|r| r.status == "drift" || (drift && r.status == "verified"))
            .map(|r| r.conversation_id)
            .collect();
        untagged_calls(&org, &followed, &settled)
    };
    let tagged = try_poll("every live call of a followed queue is tagged", || async {
        let untagged = untagged().await;
        if untagged.is_empty() {
            Ok(())
        } else {
            Err(format!("untagged {untagged:?}"))
        }
    })
    .await;
    if let Err(never) = tagged {
        let untagged = untagged().await;
        let run = child.kill().await;
        return Err(format!(
            "invariant 5: calls never tagged: {untagged:?} (steps {steps:?})\n{never}\nnow {:?}\nrows {:?}\nstderr {}",
            untagged
                .iter()
                .map(|id| org.state().call(id).map(|c| c
                    .conversation
                    .participants
                    .iter()
                    .map(|p| (p.purpose.clone(), p.attributes.clone()))
                    .collect::<Vec<_>>()))
                .collect::<Vec<_>>(),
            audit_targets(&audit).await,
            run.stderr
        ));
    }
    child.id().ok_or("the follow exited early")?;
    child.signal("TERM");
    let run = child.finish().await;
    let code = run.code;
    let stderr = run.stderr;
    let rows = audit_targets(&audit).await;
    let context = || format!("steps {steps:?}\nrows {rows:?}\nstderr {stderr}");

    // 1.
    let bad = rows
        .iter()
        .any(|r| r.status == "drift" || r.status == "failed");
    let expected = if bad { 3 } else { 0 };
    if code != expected {
        return Err(format!(
            "invariant 1: exit {code}, expected {expected}\n{}",
            context()
        ));
    }
    // 2.
    if let Some(r) = rows
        .iter()
        .find(|r| ["planned", "sending", "applied"].contains(&r.status.as_str()))
    {
        return Err(format!(
            "invariant 2: left {}: {r:?}\n{}",
            r.status,
            context()
        ));
    }
    // 3 and 4: accepted PATCHes against recorded changes, per participant.
    let mut accepted: BTreeMap<String, usize> = BTreeMap::new();
    for r in org.state().request_log() {
        if r.method == "PATCH" && r.status == 202 {
            let participant = r.path.split('/').nth(7).unwrap_or_default().to_owned();
            *accepted.entry(participant).or_default() += 1;
        }
    }
    let mut recorded: BTreeMap<String, usize> = BTreeMap::new();
    for r in rows
        .iter()
        .filter(|r| r.status == "verified" || r.status == "drift")
    {
        *recorded
            .entry(r.participant_id.clone().unwrap_or_default())
            .or_default() += 1;
    }
    if accepted != recorded {
        return Err(format!(
            "invariant 3: accepted PATCHes {accepted:?} != recorded changes {recorded:?}\n{}",
            context()
        ));
    }
    if let Some((p, n)) = accepted.iter().find(|(_, n)| **n > 2) {
        return Err(format!("invariant 4: {p} written {n} times\n{}", context()));
    }
    Ok(())
}

/// Live calls of the followed queues whose customer lacks `campaign=spring` and has no drift
/// recorded.
fn untagged_calls(org: &TestOrg, followed: &[String], drifted: &BTreeSet<String>) -> Vec<String> {
    org.state()
        .calls()
        .into_iter()
        .filter(|c| !c.ended && c.queue_id.as_ref().is_some_and(|q| followed.contains(q)))
        .filter(|c| !drifted.contains(&c.conversation.id))
        .filter(|c| {
            c.conversation
                .participants
                .iter()
                .filter(|p| p.purpose.as_deref() == Some("customer"))
                .any(|p| p.attributes.get("campaign").map(String::as_str) != Some("spring"))
        })
        .map(|c| c.conversation.id)
        .collect()
}
