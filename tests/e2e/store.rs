//! The audit store as a file other processes share: created and migrated by concurrent
//! openers, read while it is being created, written by a newer attrsync, named by a path that
//! does not exist, and pruned with any retention.

use serde_json::Value;

use crate::support::{Run, TestOrg, campaign_csv};

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
