//! A generated test of the follow, `tag --follow` and `reconcile SOURCE --follow`: from one seed,
//! a world (which command: `tag --follow campaign=spring`, or `reconcile crm.sqlite --follow` of
//! a contact list giving customers' numbers a campaign value; queues followed, calls queued at
//! the start, event delay, visibility lag, whether attribute changes send events, a flow that
//! overwrites the key, `--concurrency`, `--verify-timeout`) and a sequence of things that happen
//! while it follows (calls arriving in a followed queue or another, on the list or not, calls
//! answered and ending, sockets closed by the server, dropped, stalled, channels expired,
//! requests held while calls arrive, new versions of the list committed, versions that do not
//! validate). Then SIGTERM, and invariants judged from the simulator and the audit store:
//!
//! 1. the follow exits 0, or 3 exactly when a target drifted or failed; the run is completed;
//! 2. nothing is left `planned`, `sending` or `applied`;
//! 3. every PATCH Genesys accepted is in the audit store as a change of that participant
//!    (verified or drift), and no change is recorded that Genesys did not accept;
//! 4. no participant is written more than twice per value asked of it (the change and its one
//!    re-application; a list asks anew with each valid version);
//! 5. every call still live in a followed queue at the end has the value asked of it (`spring`;
//!    for the list, the last valid version's value of its customer's number, if it has one), or
//!    its drift is recorded (with a flow overwriting the key: a change of it is recorded).
//!
//! `ATTRSYNC_FOLLOW_MODEL_SEED=N` replays one case.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use genesys_sim::{ArrivalNumbers, DriftConfig, FaultConfig, SimConfig};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sqlx::SqliteConnection;

use crate::support::{TestOrg, audit_targets, try_poll, try_wait_until};

const BASE_SEED: u64 = 0x5eed_f011_0003;
const CASES: u64 = 6;
/// Seeds that found defects, kept as fixed cases: a stalled socket never replaced (no
/// `--socket-idle-timeout` yet), twice; a flow putting back the value from before a change
/// verified by an event, taken for a stale event.
const KEPT_SEEDS: [u64; 5] = [
    104376027906051,
    104389300084896,
    104381336777589,
    // The soak's: requests held while stopping; a verification's read refused at once after
    // the stop (its budget not admitted on the first poll) left a change `applied`.
    1796591131048397246,
    // The soak's: a valid version replaced 13 ms later by an invalid one was never read by the
    // follow, while the model held it in force (the model now waits for each version it counts
    // on to be read).
    1796625005002950346,
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
    Arrive {
        followed: bool,
        count: usize,
    },
    ArriveWhileHeld {
        count: usize,
    },
    Answer,
    End,
    Close,
    Drop,
    Stall,
    Expire,
    /// A new version of the list: some numbers get a new value, some leave it, some join it.
    NewVersion,
    /// A version that does not validate (a number that is not one): refused, the last valid
    /// one stays in force.
    InvalidVersion,
}

/// The contact list's numbers; arriving calls are customers on it, mostly.
const LIST: [&str; 6] = [
    "+15550100001",
    "+15550100002",
    "+15550100003",
    "+15550100004",
    "+15550100005",
    "+15550100006",
];

/// `reconcile crm.sqlite --follow`'s source and what the model knows of it.
struct ContactList {
    crm: SqliteConnection,
    /// The last valid version: number -> campaign value.
    in_force: BTreeMap<String, String>,
    /// Valid versions committed (the first included).
    versions: usize,
}

impl ContactList {
    async fn create(org: &TestOrg) -> Self {
        let crm = org
            .sqlite_source(
                "crm.sqlite",
                "CREATE TABLE desired_attributes (customer_number TEXT, key TEXT, value TEXT)",
            )
            .await;
        let mut list = Self {
            crm,
            in_force: BTreeMap::new(),
            versions: 0,
        };
        let first = LIST
            .iter()
            .map(|n| ((*n).to_owned(), "v0".to_owned()))
            .collect();
        list.commit(first, false).await;
        list
    }

    /// Replaces the table's rows in one committed transaction; `invalid` adds a row whose
    /// number is not one.
    async fn commit(&mut self, rows: BTreeMap<String, String>, invalid: bool) {
        use sqlx::Connection;
        let mut tx = self.crm.begin().await.expect("a transaction");
        sqlx::query("DELETE FROM desired_attributes")
            .execute(&mut *tx)
            .await
            .unwrap();
        let bad = invalid.then(|| ("not a number".to_owned(), "bad".to_owned()));
        for (number, value) in rows.iter().map(|(n, v)| (n.clone(), v.clone())).chain(bad) {
            sqlx::query(
                "INSERT INTO desired_attributes (customer_number, key, value) \
                 VALUES (?1, 'campaign', ?2)",
            )
            .bind(number)
            .bind(value)
            .execute(&mut *tx)
            .await
            .unwrap();
        }
        tx.commit().await.expect("the version is committed");
        if !invalid {
            self.in_force = rows;
            self.versions += 1;
        }
    }

    /// A next version: each number of the list kept, given a new value or left out.
    fn next_version(&self, rng: &mut StdRng) -> BTreeMap<String, String> {
        let version = self.versions;
        LIST.iter()
            .filter_map(|n| {
                let value = match (self.in_force.get(*n), rng.random_range(0..10)) {
                    (_, 0..=1) => return None,
                    (Some(value), 2..=5) => value.clone(),
                    _ => format!("v{version}"),
                };
                Some(((*n).to_owned(), value))
            })
            .collect()
    }
}

/// A call's customer number, as the simulator holds it (`tel:+1...`), in E.164.
fn customer_number(call: &genesys_sim::SimCall) -> Option<String> {
    call.conversation
        .participants
        .iter()
        .find(|p| p.purpose.as_deref() == Some("customer"))
        .and_then(|p| p.address.as_deref().or(p.ani.as_deref()))
        .map(|a| a.trim_start_matches("tel:").to_owned())
}

/// A counter of the follow's metrics file (0 before it is written).
fn follow_metric(org: &TestOrg, name: &str) -> f64 {
    std::fs::read_to_string(org.path("follow.prom"))
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix(&format!("{name} ")))
                .and_then(|value| value.parse().ok())
        })
        .unwrap_or(0.0)
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
    let mut list = match rng.random_bool(0.5) {
        true => Some(ContactList::create(&org).await),
        false => None,
    };
    let concurrency = rng.random_range(1..=8).to_string();
    let verify_timeout = format!("{}ms", rng.random_range(300..1_000));
    let mut args = match list {
        None => vec!["-v", "tag", "--follow"],
        Some(_) => vec![
            "-v",
            "reconcile",
            "crm.sqlite",
            "--follow",
            "--poll-interval",
            "50ms",
            "--metrics-file",
            "follow.prom",
        ],
    };
    args.extend([
        "--backfill-lag",
        "300ms",
        // The simulator's heartbeats come every 200 ms: a stalled socket is noticed soon.
        "--socket-idle-timeout",
        "1s",
    ]);
    for q in &followed {
        args.extend(["--queue", q.as_str()]);
    }
    args.extend([
        "--concurrency",
        concurrency.as_str(),
        "--verify-timeout",
        verify_timeout.as_str(),
    ]);
    if list.is_none() {
        args.push("campaign=spring");
    }
    let child = org.spawn(&args);
    try_wait_until("the socket connects", || connected(&org)).await?;

    let versions = list.is_some();
    let steps: Vec<Step> = (0..rng.random_range(4..10))
        .map(
            |_| match rng.random_range(0..if versions { 13 } else { 10 }) {
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
                9 => Step::Expire,
                10 | 11 => Step::NewVersion,
                _ => Step::InvalidVersion,
            },
        )
        .collect();
    // With the list, arriving customers are on it (4 in 5) or not.
    let numbers: Vec<Option<String>> = (0..64)
        .map(|i| {
            list.as_ref().map(|_| match rng.random_range(0..5) {
                0 => format!("+1555019{i:04}"),
                _ => LIST[rng.random_range(0..LIST.len())].to_owned(),
            })
        })
        .collect();
    let mut next_number = numbers.iter().cycle();
    let arrive = |queue: &str, number: &Option<String>| match number {
        None => {
            org.state().arrive_call(Some(queue));
        }
        Some(number) => {
            org.state().arrive_call_with(
                Some(queue),
                &ArrivalNumbers {
                    customer_number: Some(number.clone()),
                    dialed_number: None,
                },
            );
        }
    };
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
                    arrive(queue, next_number.next().unwrap());
                }
            }
            Step::ArriveWhileHeld { count } => {
                // Calls arrive while the follower can send nothing (its socket is dropped and
                // its next request held): only the backfill can find them.
                state.hold_after(0);
                state.drop_sockets();
                for _ in 0..count {
                    arrive(&followed[0], next_number.next().unwrap());
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
            Step::NewVersion | Step::InvalidVersion => {
                if let Some(list) = list.as_mut() {
                    let rows = list.next_version(&mut rng);
                    let invalid = matches!(step, Step::InvalidVersion);
                    // A poll sees the table as it is: a version replaced before the follow read
                    // it was never in force. Each one the model counts on is waited for.
                    let counter = match (invalid, rows == list.in_force) {
                        (true, _) => Some("attrsync_follow_source_versions_refused_total"),
                        (false, false) => Some("attrsync_follow_source_versions_applied_total"),
                        (false, true) => None,
                    };
                    let before = counter.map(|name| follow_metric(&org, name));
                    list.commit(rows, invalid).await;
                    if let (Some(name), Some(before)) = (counter, before) {
                        try_wait_until("the follow reads the new version", || {
                            follow_metric(&org, name) > before
                        })
                        .await?;
                    }
                }
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
        untagged_calls(
            &org,
            &followed,
            &settled,
            list.as_ref().map(|l| &l.in_force),
        )
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

    println!(
        "follow model seed={seed}: {}, flow overwriting: {drift}, steps {steps:?}, {} verified changes",
        list.as_ref().map_or_else(
            || "tag --follow".to_owned(),
            |l| format!("reconcile --follow, {} valid versions", l.versions)
        ),
        rows.iter().filter(|r| r.status == "verified").count()
    );

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
    let values_asked = list.as_ref().map_or(1, |l| l.versions);
    if let Some((p, n)) = accepted.iter().find(|(_, n)| **n > 2 * values_asked) {
        return Err(format!("invariant 4: {p} written {n} times\n{}", context()));
    }
    Ok(())
}

/// Live calls of the followed queues whose customer lacks the `campaign` value asked of it
/// (`spring`; with a list, `in_force`'s value of its number, if it has one) and has no drift
/// recorded.
fn untagged_calls(
    org: &TestOrg,
    followed: &[String],
    drifted: &BTreeSet<String>,
    in_force: Option<&BTreeMap<String, String>>,
) -> Vec<String> {
    org.state()
        .calls()
        .into_iter()
        .filter(|c| !c.ended && c.queue_id.as_ref().is_some_and(|q| followed.contains(q)))
        .filter(|c| !drifted.contains(&c.conversation.id))
        .filter(|c| {
            let wanted = match in_force {
                None => "spring",
                Some(in_force) => match customer_number(c).and_then(|n| in_force.get(&n)) {
                    Some(value) => value.as_str(),
                    None => return false,
                },
            };
            c.conversation
                .participants
                .iter()
                .filter(|p| p.purpose.as_deref() == Some("customer"))
                .any(|p| p.attributes.get("campaign").map(String::as_str) != Some(wanted))
        })
        .map(|c| c.conversation.id)
        .collect()
}
