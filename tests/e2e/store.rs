//! The audit store as a file other processes share: created and migrated by concurrent
//! openers, read while it is being created, written by a newer attrsync, named by a path that
//! does not exist, and pruned with any retention.

use std::path::Path;

use serde_json::Value;

use crate::support::{Run, TestOrg, campaign_csv};

/// `args` followed by `--audit STORE`.
fn with_store<'a>(args: &[&'a str], store: &'a str) -> Vec<&'a str> {
    let mut args = args.to_vec();
    args.extend(["--audit", store]);
    args
}

#[track_caller]
fn json(run: &Run) -> Value {
    serde_json::from_str(&run.stdout)
        .unwrap_or_else(|error| panic!("stdout is not JSON ({error}):\n{}", run.stdout))
}

/// An org whose store holds one finished run.
async fn org_with_a_run() -> TestOrg {
    let org = TestOrg::start(TestOrg::fast_config(2)).await;
    org.write("desired.csv", &campaign_csv(&org));
    org.run(&["apply", "desired.csv"]).await.assert_code(0);
    org
}

#[tokio::test]
async fn prune_accepts_a_retention_reaching_before_1970_and_prunes_nothing() {
    let org = org_with_a_run().await;
    // 57 years, as reported (before the epoch until 2027), and 1000 years, before it always.
    for (older_than, cutoff_year) in [("57years", None), ("1000years", Some("10"))] {
        let dry = org
            .run(&["audit", "prune", "--older-than", older_than])
            .await;
        dry.assert_code(0);
        assert!(
            dry.stdout.starts_with("no finished run ended before "),
            "{}",
            dry.stdout
        );
        let listed = org
            .run(&["audit", "prune", "--older-than", older_than, "--json"])
            .await;
        listed.assert_code(0);
        let document = json(&listed);
        assert_eq!(document["rows"]["runs"], 0, "{document}");
        let cutoff = document["ended_before"].as_str().expect("ended_before");
        assert!(cutoff.ends_with('Z'), "{document}");
        if let Some(year) = cutoff_year {
            assert!(cutoff.starts_with(year), "{document}");
        }

        let pruned = org
            .run(&["audit", "prune", "--older-than", older_than, "--yes"])
            .await;
        pruned.assert_code(0);
        assert!(
            pruned.stdout.starts_with("no finished run"),
            "{}",
            pruned.stdout
        );
    }
    let runs = json(&org.run(&["audit", "runs", "--json"]).await);
    assert_eq!(runs["runs"].as_array().map(Vec::len), Some(1), "{runs}");
}

#[tokio::test]
async fn applies_started_together_on_a_new_store_all_succeed() {
    let org = TestOrg::start(TestOrg::fast_config(2)).await;
    org.write("desired.csv", &campaign_csv(&org));
    // Before the fix about one opener in three failed ("table runs already exists",
    // "duplicate column name"): five rounds of three make a pass by luck negligible.
    for round in 0..5 {
        let store = org.path(&format!("round-{round}/audit.sqlite"));
        let store = store.to_str().expect("utf-8 path");
        let args = with_store(&["apply", "desired.csv"], store);
        let runs: Vec<Run> = futures::future::join_all((0..3).map(|_| org.run(&args))).await;
        for run in &runs {
            assert_eq!(run.code, 0, "round {round}: {run:?}");
        }
        let listed = org
            .run(&with_store(&["audit", "runs", "--json"], store))
            .await;
        listed.assert_code(0);
        let document = json(&listed);
        assert_eq!(
            document["runs"].as_array().map(Vec::len),
            Some(3),
            "round {round}: {document}"
        );
    }
}

#[tokio::test]
async fn two_reconcile_once_on_a_new_store_one_runs_and_the_other_exits_75() {
    let org = TestOrg::start(TestOrg::fast_config(2)).await;
    org.write("desired.csv", &campaign_csv(&org));
    for round in 0..3 {
        let store = org.path(&format!("round-{round}/audit.sqlite"));
        let store = store.to_str().expect("utf-8 path");
        // The one that takes the lock is held at its first request after the token, so the
        // other one certainly finds the lock taken (rather than released after a quick run).
        org.state().hold_after(1);
        let args = with_store(&["reconcile", "desired.csv", "--once"], store);
        let mut first = org.spawn(&args);
        let mut second = org.spawn(&args);
        org.wait_until_holding().await;
        // The one not held exits on its own; then the holder is let go.
        let second_exited_first = tokio::select! {
            _ = first.wait() => false,
            _ = second.wait() => true,
        };
        let (loser, winner) = if second_exited_first {
            (second, first)
        } else {
            (first, second)
        };
        let loser = loser.finish().await;
        org.state().release();
        let winner = winner.finish().await;
        assert_eq!(
            (winner.code, loser.code),
            (0, 75),
            "round {round}\n--- winner ---\n{winner:?}\n--- loser ---\n{loser:?}"
        );
        assert!(
            loser.stderr.contains("another `attrsync reconcile`"),
            "{}",
            loser.stderr
        );
    }
}

#[tokio::test]
async fn a_review_of_a_store_being_created_waits_for_it_instead_of_calling_it_older() {
    let org = TestOrg::start(TestOrg::fast_config(2)).await;
    org.write("desired.csv", &campaign_csv(&org));
    // What a review finds while the first apply creates the store: the file, without a schema.
    // The review starts first; the apply then creates the store.
    std::fs::File::create(org.audit_path()).expect("empty store file");
    let review = org.spawn(&["audit", "runs", "--json"]);
    org.run(&["apply", "desired.csv"]).await.assert_code(0);
    let review = review.finish().await;
    review.assert_code(0);
    assert!(!review.stderr.contains("older"), "{}", review.stderr);
    let document = json(&review);
    // It read the store as created: before the apply's run began, or with it.
    assert!(
        document["runs"]
            .as_array()
            .is_some_and(|runs| runs.len() <= 1),
        "{document}"
    );
}

/// Records in the store at `path` a migration no attrsync of this version knows.
async fn record_a_newer_migration(path: &Path, version: i64) {
    use sqlx::{ConnectOptions, Connection};
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .connect()
        .await
        .expect("audit store opens");
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, \
         execution_time) VALUES (?1, 'from a newer attrsync', TRUE, x'00', 0)",
    )
    .bind(version)
    .execute(&mut conn)
    .await
    .expect("a newer migration");
    // Closed, so the insert is checkpointed into the file the test compares.
    conn.close().await.expect("close");
}

#[tokio::test]
async fn a_store_written_by_a_newer_attrsync_is_refused_saying_so_by_writers_and_readers() {
    const NEWER: &str = "29991231000000";
    let org = org_with_a_run().await;
    let store = org.audit_path();
    record_a_newer_migration(&store, NEWER.parse().expect("version")).await;
    let before = std::fs::read(&store).expect("read store");

    for args in [
        &["apply", "desired.csv"][..],
        &["reconcile", "desired.csv", "--once"],
        &["audit", "runs"],
        &["audit", "show", "latest"],
        &["audit", "prune", "--older-than", "1d", "--yes"],
        &["audit", "upgrade"],
    ] {
        let refused = org.run(args).await;
        refused.assert_code(1);
        for needle in [
            store.display().to_string().as_str(),
            "written by a newer attrsync",
            NEWER,
            "use that newer attrsync",
        ] {
            assert!(
                refused.stderr.contains(needle),
                "{args:?}: {needle}: {}",
                refused.stderr
            );
        }
        assert!(
            !refused.stderr.contains("previously applied but is missing")
                && !refused.stderr.contains("older"),
            "{args:?}: {}",
            refused.stderr
        );
    }
    assert!(
        std::fs::read(&store).expect("read store") == before,
        "a refused command changed the store"
    );
    assert_eq!(org.count_requests("PATCH", ""), 2, "only the first apply's");
}

/// Fails until `attrsync apply --resume` opens its store with `AuditStore::open_no_create`
/// (crates/attrsync/src/commands/apply.rs, the resume branch of `run`).
#[tokio::test]
async fn a_resume_on_a_store_path_that_does_not_exist_says_so_and_creates_nothing() {
    let org = TestOrg::start(TestOrg::fast_config(1)).await;
    for (missing, created) in [
        // A missing directory, as in /nonexistent/path.sqlite.
        (org.path("nonexistent/path.sqlite"), org.path("nonexistent")),
        // An existing directory, a missing file.
        (org.path("absent.sqlite"), org.path("absent.sqlite")),
    ] {
        let store = missing.to_str().expect("utf-8 path");
        let resumed = org
            .run(&with_store(&["apply", "--resume", "latest"], store))
            .await;
        resumed.assert_code(1);
        assert!(
            resumed
                .stderr
                .contains(&format!("no audit store at {store}")),
            "{}",
            resumed.stderr
        );
        assert!(
            !resumed.stderr.contains("no runs recorded"),
            "{}",
            resumed.stderr
        );
        assert!(
            !created.exists(),
            "the resume created {}",
            created.display()
        );
        assert_eq!(org.count_requests("PATCH", ""), 0);
    }
}

/// A source given with `--resume` must be the run's own: another file is a usage error, never
/// silently ignored (it was never read).
#[tokio::test]
async fn a_resume_given_another_source_is_a_usage_error() {
    let org = TestOrg::start(TestOrg::fast_config(2)).await;
    org.write("desired.csv", &crate::support::campaign_csv(&org));
    org.write("other.csv", &crate::support::campaign_csv(&org));
    org.run(&["apply", "desired.csv"]).await.assert_code(0);
    let other = org.run(&["apply", "other.csv", "--resume", "latest"]).await;
    other.assert_code(64);
    assert!(
        other.stderr.contains("other.csv is not the source of run"),
        "{}",
        other.stderr
    );
    let own = org
        .run(&["apply", "desired.csv", "--resume", "latest"])
        .await;
    own.assert_code(0);
}
