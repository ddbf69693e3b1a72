//! `attrsync audit runs|show|list|export|report` over the audit store of real runs against the
//! simulator, and the report rendered by a real (headless) browser.

use std::path::Path;

use genesys_sim::{DriftConfig, FaultConfig, LimitShape, SimConfig};
use serde_json::Value;

use crate::support::{Run, TestOrg};

/// Debian's chromium, installed by `.ci/run`.
const CHROMIUM: &str = "/usr/bin/chromium";

/// A desired state giving the customer of every live call `key=value`.
fn desired_csv(org: &TestOrg, key: &str, value: &str) -> String {
    let mut csv = format!("conversation_id,{key}\n");
    for call in org.live_calls() {
        csv.push_str(&format!("{},{value}\n", call.id));
    }
    csv
}

#[track_caller]
fn json(run: &Run) -> Value {
    serde_json::from_str(&run.stdout)
        .unwrap_or_else(|error| panic!("stdout is not JSON ({error}):\n{}", run.stdout))
}

fn statuses(targets: &Value) -> Vec<String> {
    targets
        .as_array()
        .expect("targets array")
        .iter()
        .map(|target| target["status"].as_str().expect("status").to_owned())
        .collect()
}

/// One number read straight from the audit store (read-only), as an auditor would.
async fn store_count(path: &Path, sql: &str) -> i64 {
    use sqlx::ConnectOptions;
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .connect()
        .await
        .expect("audit store opens");
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(&mut conn)
        .await
        .expect("count query")
}

const LATEST_RUN: &str = "(SELECT id FROM runs ORDER BY started_at DESC, id DESC LIMIT 1)";

/// An org where a "flow" overwrites about half of the campaign tags: a run ends with verified
/// and drifted targets (exit 3). Enough calls that "none" or "all" drifting is vanishingly rare.
async fn drifting_org(calls: usize) -> TestOrg {
    let faults = FaultConfig {
        drift: Some(DriftConfig {
            key: "campaign".into(),
            value: "flow-override".into(),
            rate: 0.5,
        }),
        ..FaultConfig::default()
    };
    TestOrg::start(SimConfig {
        seed: 3,
        faults,
        ..TestOrg::fast_config(calls)
    })
    .await
}

#[tokio::test]
async fn runs_lists_every_run_newest_first_with_counts_and_exit_codes() {
    let org = TestOrg::start(TestOrg::fast_config(4)).await;
    org.write("desired.csv", &desired_csv(&org, "campaign", "spring"));
    org.run(&["apply", "desired.csv"]).await.assert_code(0);
    org.run(&["apply", "desired.csv"]).await.assert_code(0);

    let listed = org.run(&["audit", "runs", "--json"]).await;
    listed.assert_code(0);
    let document = json(&listed);
    assert_eq!(document["format_version"], 1);
    let runs = document["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 2, "{document}");
    // Newest first: the second apply found everything in sync.
    assert_eq!(runs[0]["counts"]["unchanged"], 4, "{document}");
    assert_eq!(runs[1]["counts"]["verified"], 4, "{document}");
    for run in runs {
        assert_eq!(run["command"], "apply");
        assert_eq!(run["exit_code"], 0);
        assert_eq!(run["status"], "completed");
        assert!(
            run["source_path"]
                .as_str()
                .unwrap()
                .ends_with("desired.csv")
        );
        assert!(run["duration_ms"].as_i64().is_some(), "{run}");
        assert!(run["started_at"].as_str().unwrap().ends_with('Z'), "{run}");
    }

    let text = org.run(&["audit", "runs"]).await;
    text.assert_code(0);
    let lines: Vec<&str> = text.stdout.lines().collect();
    assert_eq!(lines.len(), 1 + 2, "{}", text.stdout);
    assert!(lines[0].starts_with("RUN"), "{}", text.stdout);
    let newest = runs[0]["id"].as_str().unwrap();
    assert!(lines[1].starts_with(newest), "{}", text.stdout);
    assert!(lines[1].contains("4 unchanged") && lines[2].contains("4 verified"));
    assert!(lines[1].contains("apply") && lines[1].contains("desired.csv"));

    let limited = org.run(&["audit", "runs", "--json", "--limit", "1"]).await;
    assert_eq!(json(&limited)["runs"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn show_has_the_runs_summary_and_its_targets_filterable_by_status() {
    let org = drifting_org(16).await;
    org.write("desired.csv", &desired_csv(&org, "campaign", "spring"));
    // Read back: an event may show the written values before the flow's own event.
    org.run(&[
        "apply",
        "desired.csv",
        "--verify-via",
        "get",
        "--verify-timeout",
        "1s",
        "--rate",
        "60000/min",
        "--burst",
        "100",
    ])
    .await
    .assert_code(3);
    let audit = org.audit_path();

    let shown = org.run(&["audit", "show", "latest", "--json"]).await;
    shown.assert_code(0);
    let document = json(&shown);
    let run = &document["run"];
    assert_eq!(run["exit_code"], 3);
    assert_eq!(run["tool_version"], env!("CARGO_PKG_VERSION"));
    assert!(!run["host"].as_str().unwrap().is_empty());
    assert_eq!(
        run["source_sha256"].as_str().map(str::len),
        Some(64),
        "{run}"
    );
    assert!(run["options"]["concurrency"].is_number(), "{run}");
    let requests = store_count(
        &audit,
        &format!("SELECT count(*) FROM requests WHERE run_id = {LATEST_RUN}"),
    )
    .await;
    assert_eq!(run["requests"]["total"], requests);
    let all = statuses(&document["targets"]);
    assert_eq!(all.len(), 16);
    let drifted = all.iter().filter(|s| *s == "drift").count();
    assert!(drifted > 0 && drifted < 16, "{all:?}");

    let only_drift = org
        .run(&["audit", "show", "latest", "--status", "drift", "--json"])
        .await;
    only_drift.assert_code(0);
    let filtered = statuses(&json(&only_drift)["targets"]);
    assert_eq!(filtered, vec!["drift".to_owned(); drifted]);

    // A unique prefix of the id works as well as the id.
    let id = run["id"].as_str().unwrap();
    let text = org.run(&["audit", "show", &id[..id.len() - 2]]).await;
    text.assert_code(0);
    for expected in [
        id,
        "sha256",
        "operator",
        "throttled (429)",
        "verified",
        "(now \"flow-override\")",
    ] {
        assert!(
            text.stdout.contains(expected),
            "{expected}:\n{}",
            text.stdout
        );
    }

    // A long run is shown in part, saying how much is left out.
    let limited = org.run(&["audit", "show", "latest", "--limit", "5"]).await;
    limited.assert_code(0);
    assert!(
        limited.stdout.contains("... and 11 more targets"),
        "{}",
        limited.stdout
    );
    let limited = json(
        &org.run(&["audit", "show", "latest", "--limit", "5", "--json"])
            .await,
    );
    assert_eq!(statuses(&limited["targets"]).len(), 5);
    assert_eq!(limited["targets_not_shown"], 11);
}

#[tokio::test]
async fn list_filters_targets_across_runs() {
    let org = TestOrg::start(TestOrg::fast_config(3)).await;
    let calls = org.live_calls();
    org.write("campaign.csv", &desired_csv(&org, "campaign", "spring"));
    org.write("tier.csv", &desired_csv(&org, "tier", "gold"));
    org.run(&["apply", "campaign.csv"]).await.assert_code(0);
    org.run(&["apply", "tier.csv"]).await.assert_code(0);

    let targets = |run: Run| -> Vec<Value> {
        run.assert_code(0);
        json(&run)["targets"].as_array().expect("targets").clone()
    };

    let everything = targets(org.run(&["audit", "list", "--json"]).await);
    assert_eq!(everything.len(), 6);

    let one_call = targets(
        org.run(&["audit", "list", "--json", "--conversation", &calls[0].id])
            .await,
    );
    assert_eq!(one_call.len(), 2, "one target per run");
    assert!(one_call.iter().all(|t| t["conversation_id"] == calls[0].id));

    let participant = one_call[0]["participant_id"].as_str().unwrap().to_owned();
    let by_participant = targets(
        org.run(&["audit", "list", "--json", "--participant", &participant])
            .await,
    );
    assert_eq!(by_participant.len(), 2);

    let tier = targets(org.run(&["audit", "list", "--json", "--key", "tier"]).await);
    assert_eq!(tier.len(), 3);
    assert!(tier.iter().all(|t| t["desired"]["tier"] == "gold"));

    let verified = targets(
        org.run(&["audit", "list", "--json", "--status", "verified,failed"])
            .await,
    );
    assert_eq!(verified.len(), 6);
    let none_failed = targets(
        org.run(&["audit", "list", "--json", "--status", "failed"])
            .await,
    );
    assert!(none_failed.is_empty());

    let recent = targets(org.run(&["audit", "list", "--json", "--since", "1h"]).await);
    assert_eq!(recent.len(), 6);
    let older = targets(org.run(&["audit", "list", "--json", "--until", "1h"]).await);
    assert!(
        older.is_empty(),
        "nothing was updated more than an hour ago"
    );
    let future = targets(
        org.run(&["audit", "list", "--json", "--since", "2999-01-01T00:00:00Z"])
            .await,
    );
    assert!(future.is_empty());

    let limited = targets(org.run(&["audit", "list", "--json", "--limit", "2"]).await);
    assert_eq!(limited.len(), 2);
    // Most recently updated first: the tier run's targets.
    assert!(limited.iter().all(|t| t["desired"]["tier"] == "gold"));

    let text = org.run(&["audit", "list", "--key", "tier"]).await;
    text.assert_code(0);
    assert_eq!(text.stdout.lines().count(), 1 + 3, "{}", text.stdout);
    assert!(
        text.stdout.contains("tier: (absent) → \"gold\""),
        "{}",
        text.stdout
    );

    let bad = org.run(&["audit", "list", "--since", "last tuesday"]).await;
    bad.assert_code(64);
    assert!(bad.stderr.contains("RFC 3339"), "{}", bad.stderr);
}

#[tokio::test]
async fn export_csv_escapes_formulas_and_all_formats_agree() {
    let org = TestOrg::start(TestOrg::fast_config(3)).await;
    org.write("desired.csv", &desired_csv(&org, "campaign", "=1+2"));
    org.run(&["apply", "desired.csv"]).await.assert_code(0);
    // The value reached Genesys as written: escaping is for the spreadsheet only.
    assert!(org.live_calls().iter().all(|call| {
        call.participants
            .iter()
            .any(|p| p.attributes.get("campaign").map(String::as_str) == Some("=1+2"))
    }));

    let csv_run = org.run(&["audit", "export", "--format", "csv"]).await;
    csv_run.assert_code(0);
    let mut reader = csv::Reader::from_reader(csv_run.stdout.as_bytes());
    let headers = reader.headers().unwrap().clone();
    let column = |name: &str| headers.iter().position(|h| h == name).unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 3, "{}", csv_run.stdout);
    for row in &rows {
        assert_eq!(&row[column("key")], "campaign");
        assert_eq!(&row[column("desired")], "'=1+2", "{}", csv_run.stdout);
        assert_eq!(&row[column("observed")], "'=1+2");
        assert_eq!(&row[column("status")], "verified");
    }
    assert!(
        !csv_run
            .stdout
            .lines()
            .any(|line| line.split(',').any(|cell| cell.starts_with('='))),
        "no cell starts with a formula:\n{}",
        csv_run.stdout
    );

    let json_run = org.run(&["audit", "export", "--format", "json"]).await;
    json_run.assert_code(0);
    let array: Vec<Value> = serde_json::from_str(&json_run.stdout).unwrap();
    assert_eq!(array.len(), 3);
    assert!(
        array.iter().all(|t| t["desired"]["campaign"] == "=1+2"),
        "JSON keeps values exact"
    );

    let ndjson_run = org
        .run(&[
            "audit", "export", "--format", "ndjson", "--status", "verified",
        ])
        .await;
    ndjson_run.assert_code(0);
    let lines: Vec<Value> = ndjson_run
        .stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines, array);

    let filtered = org
        .run(&[
            "audit", "export", "--format", "ndjson", "--status", "failed",
        ])
        .await;
    filtered.assert_code(0);
    assert!(filtered.stdout.is_empty());
}

#[tokio::test]
async fn unknown_runs_and_missing_stores_are_errors_that_say_what_to_do() {
    let org = TestOrg::start(TestOrg::fast_config(2)).await;

    // No store yet: an error, and the read command does not create one.
    let missing = org.run(&["audit", "runs"]).await;
    missing.assert_code(1);
    assert!(
        missing.stderr.contains("no audit store"),
        "{}",
        missing.stderr
    );
    assert!(
        !org.audit_path().exists(),
        "a review command created the store"
    );

    org.write("desired.csv", &desired_csv(&org, "campaign", "spring"));
    org.run(&["apply", "desired.csv"]).await.assert_code(0);
    for args in [
        &["audit", "show", "no-such-run"][..],
        &["audit", "report", "no-such-run", "--html", "r.html"],
        &["audit", "list", "--run", "no-such-run"],
    ] {
        let unknown = org.run(args).await;
        unknown.assert_code(1);
        assert!(
            unknown.stderr.contains("no run matches \"no-such-run\""),
            "{}",
            unknown.stderr
        );
        assert!(
            unknown.stderr.contains("attrsync audit runs"),
            "{}",
            unknown.stderr
        );
    }
    assert!(!org.path("r.html").exists());
}

/// The store's files (the database, and its `-wal` when present) with bytes and mtime.
fn store_files(org: &TestOrg) -> Vec<(String, Vec<u8>, std::time::SystemTime)> {
    let path = org.audit_path();
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    [name.clone(), format!("{name}-wal")]
        .into_iter()
        .filter_map(|file| {
            let file_path = org.path(&file);
            let bytes = std::fs::read(&file_path).ok()?;
            let modified = std::fs::metadata(&file_path).ok()?.modified().ok()?;
            // An empty WAL, which SQLite may create for a reader, holds nothing.
            (!(file.ends_with("-wal") && bytes.is_empty())).then_some((file, bytes, modified))
        })
        .collect()
}

#[tokio::test]
async fn review_commands_leave_the_store_byte_identical() {
    let org = TestOrg::start(TestOrg::fast_config(3)).await;
    org.write("desired.csv", &desired_csv(&org, "campaign", "spring"));
    org.run(&["apply", "desired.csv"]).await.assert_code(0);
    let before = store_files(&org);
    assert!(!before.is_empty(), "apply left no store");
    // Any write would now give the file a different mtime.
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;

    let runs = org.run(&["audit", "runs"]).await;
    runs.assert_code(0);
    assert_eq!(runs.stdout.lines().count(), 1 + 1, "{}", runs.stdout);
    assert_eq!(store_files(&org), before, "`audit runs` changed the store");
    for args in [
        &["audit", "runs", "--json"][..],
        &["audit", "show", "latest"],
        &["audit", "list"],
        &["audit", "export", "--format", "json"],
    ] {
        org.run(args).await.assert_code(0);
    }
    assert_eq!(
        store_files(&org),
        before,
        "a review command changed the store"
    );
}

#[tokio::test]
async fn a_store_from_an_older_attrsync_is_refused_until_upgraded() {
    let org = TestOrg::start(TestOrg::fast_config(1)).await;
    // A store whose schema predates every migration this build embeds: migrated with none.
    {
        use sqlx::ConnectOptions;
        let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(org.audit_path())
            .create_if_missing(true)
            .connect()
            .await
            .expect("create the store");
        sqlx::migrate::Migrator::with_migrations(Vec::new())
            .run(&mut conn)
            .await
            .expect("empty migration table");
    }
    let before = store_files(&org);
    let store = org.audit_path().display().to_string();

    let refused = org.run(&["audit", "runs"]).await;
    refused.assert_code(1);
    for needle in [
        store.as_str(),
        "written by an older attrsync",
        "attrsync audit upgrade",
    ] {
        assert!(
            refused.stderr.contains(needle),
            "{needle}: {}",
            refused.stderr
        );
    }
    assert_eq!(
        store_files(&org),
        before,
        "a refused review changed the store"
    );

    let upgraded = org.run(&["audit", "upgrade"]).await;
    upgraded.assert_code(0);
    assert!(
        upgraded.stderr.contains("applied migration"),
        "{}",
        upgraded.stderr
    );
    let again = org.run(&["audit", "upgrade"]).await;
    again.assert_code(0);
    assert!(
        again.stderr.contains("already up to date"),
        "{}",
        again.stderr
    );
    let runs = org.run(&["audit", "runs"]).await;
    runs.assert_code(0);
    assert!(runs.stderr.contains("no runs recorded"), "{}", runs.stderr);

    // `upgrade` does not create a store either.
    let missing = org
        .run(&["audit", "upgrade", "--audit", "nowhere.sqlite"])
        .await;
    missing.assert_code(1);
    assert!(
        missing.stderr.contains("no audit store"),
        "{}",
        missing.stderr
    );
    assert!(!org.path("nowhere.sqlite").exists());
}

/// A run with 429s: the simulator's burst is far below the tool's, and the tool reads all calls
/// at once.
async fn throttled_run() -> TestOrg {
    let org = TestOrg::start(SimConfig {
        calls: 6,
        rate_per_minute: 6_000,
        limit_shape: LimitShape::Bucket,
        burst: 2,
        ..SimConfig::default()
    })
    .await;
    org.write("desired.csv", &desired_csv(&org, "campaign", "spring"));
    org.run(&[
        "apply",
        "desired.csv",
        "--rate",
        "60000/min",
        "--burst",
        "100",
    ])
    .await
    .assert_code(0);
    org
}

#[tokio::test]
async fn report_is_one_self_contained_page_with_the_runs_real_numbers() {
    let org = throttled_run().await;
    let audit = org.audit_path();
    let report = org
        .run(&["audit", "report", "latest", "--html", "report.html"])
        .await;
    report.assert_code(0);
    let page = std::fs::read_to_string(org.path("report.html")).unwrap();

    for forbidden in ["<script", "<link", "http://", "https://", "@import", "url("] {
        assert!(!page.contains(forbidden), "the page references {forbidden}");
    }
    for chart in ["chart-rps", "chart-outcomes", "chart-latency"] {
        assert!(page.contains(&format!("<svg id=\"{chart}\"")), "{chart}");
    }
    let total = store_count(
        &audit,
        &format!("SELECT count(*) FROM requests WHERE run_id = {LATEST_RUN}"),
    )
    .await;
    let throttled = store_count(
        &audit,
        &format!("SELECT count(*) FROM requests WHERE status = 429 AND run_id = {LATEST_RUN}"),
    )
    .await;
    assert!(
        total > 0 && throttled > 0,
        "{total} requests, {throttled} throttled"
    );
    assert!(page.contains(&format!("<span id=\"total-requests\">{total}</span>")));
    assert!(page.contains(&format!("<span id=\"throttled\">{throttled}</span>")));
    assert!(page.contains("<td id=\"count-verified\">6</td>"));
    // The configured window budget (60000/min, window pacing) is drawn and stated; no
    // per-second line stands for it.
    assert!(page.contains("<span id=\"window-budget\">60000</span>"));
    assert!(page.contains("budget 60000 per minute"));
    assert!(!page.contains("even pacing") && !page.contains("budget 1000.0/s"));
    let peak = page
        .split("<span id=\"peak-in-window\">")
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .and_then(|peak| peak.parse::<i64>().ok())
        .expect("the peak is stated");
    assert!(peak > 0 && peak <= total, "peak {peak} of {total} requests");
    assert!(
        page.contains("429 throttled"),
        "429s are marked on the timeline"
    );
}

#[tokio::test]
async fn report_of_a_run_with_a_stale_target_lists_it_and_never_says_none() {
    let org = TestOrg::start(TestOrg::fast_config(2)).await;
    let calls = org.live_calls();
    // A hostile value and file name: the page shows them as text.
    org.write(
        "desired.csv",
        &format!(
            "conversation_id,campaign\n{},spring\n{},\"<script>alert(\"\"x\"\")</script> & co\"\n",
            calls[0].id, calls[1].id
        ),
    );
    let plan = r#"plan <&">.json"#;
    org.run(&["plan", "desired.csv", "--out", plan])
        .await
        .assert_code(0);
    // Someone changes call 1 after the plan was reviewed: its target goes stale.
    org.run(&["set", &calls[1].id, "campaign=summer"])
        .await
        .assert_code(0);
    org.run(&["apply", plan]).await.assert_code(3);
    org.run(&["audit", "report", "latest", "--html", "report.html"])
        .await
        .assert_code(0);
    let page = std::fs::read_to_string(org.path("report.html")).unwrap();
    let stale = store_count(
        &org.audit_path(),
        &format!("SELECT count(*) FROM targets WHERE status = 'stale' AND run_id = {LATEST_RUN}"),
    )
    .await;
    assert_eq!(stale, 1);
    assert!(
        page.contains(r#"<h2>Stale targets (<span id="problem-count">1</span>)</h2>"#),
        "{page}"
    );
    let table = &page[page
        .find(r#"<table id="problems">"#)
        .expect("a problems table")..];
    assert!(table.contains(r#"<td class="bad">stale</td>"#), "{table}");
    assert!(table.contains(&calls[1].id), "the stale call is listed");
    assert!(!table.contains(&calls[0].id), "the verified call is not");
    assert!(
        !page.contains("None: every target ended as planned"),
        "{page}"
    );
    assert!(page.contains(r#"<td id="count-verified">1</td>"#));
    // Recorded text is text.
    assert!(!page.contains("<script") && !page.contains("<&"), "{page}");
    assert!(
        table.contains(
            r#"→ &quot;&lt;script&gt;alert(\&quot;x\&quot;)&lt;/script&gt; &amp; co&quot;"#
        ),
        "{table}"
    );
    assert!(
        page.contains("<dd>plan &lt;&amp;&quot;&gt;.json</dd>"),
        "{page}"
    );
}

#[tokio::test]
async fn report_renders_in_a_real_headless_browser() {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: install Debian's chromium \
         (apt-get install --no-install-recommends chromium; .ci/run does it)"
    );
    let org = drifting_org(16).await;
    org.write("desired.csv", &desired_csv(&org, "campaign", "spring"));
    // Read back: an event may show the written values before the flow's own event.
    org.run(&[
        "apply",
        "desired.csv",
        "--verify-via",
        "get",
        "--verify-timeout",
        "1s",
        "--rate",
        "60000/min",
        "--burst",
        "100",
    ])
    .await
    .assert_code(3);
    org.run(&["audit", "report", "latest", "--html", "report.html"])
        .await
        .assert_code(0);
    let audit = org.audit_path();
    let total = store_count(
        &audit,
        &format!("SELECT count(*) FROM requests WHERE run_id = {LATEST_RUN}"),
    )
    .await;
    let drifted = store_count(
        &audit,
        &format!("SELECT count(*) FROM targets WHERE status = 'drift' AND run_id = {LATEST_RUN}"),
    )
    .await;

    let profile = tempfile::tempdir().unwrap();
    let url = format!("file://{}", org.path("report.html").display());
    let output = crate::support::output(
        tokio::process::Command::new(CHROMIUM)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(["--dump-dom", &url])
            .env("HOME", profile.path())
            .stdin(std::process::Stdio::null()),
    )
    .await;
    let dom = &output.stdout;
    assert!(
        output.status.success() && dom.contains("</html>"),
        "chromium failed ({}):\n{}",
        output.status,
        output.stderr
    );
    for chart in ["chart-rps", "chart-outcomes", "chart-latency"] {
        let start = dom
            .find(&format!("<svg id=\"{chart}\""))
            .unwrap_or_else(|| panic!("{chart} is not in the rendered DOM:\n{dom}"));
        let end = start + dom[start..].find("</svg>").expect("svg closes");
        let svg = &dom[start..end];
        assert!(
            svg.contains("<rect") || svg.contains("<polyline"),
            "{chart} draws nothing"
        );
        assert!(svg.contains("<text"), "{chart} has no labels");
    }
    assert!(
        dom.contains(&format!("<span id=\"total-requests\">{total}</span>")),
        "{dom}"
    );
    assert!(
        dom.contains(&format!("<span id=\"problem-count\">{drifted}</span>")),
        "{dom}"
    );
    assert!(
        dom.contains("flow-override"),
        "the drifted values are in the table"
    );
}

/// Moves the runs chosen by `condition` (SQL on `runs`) `days` days into the past: start,
/// heartbeat and (when recorded) finish. Time travel is the one thing the test does by hand.
async fn age_runs(path: &Path, condition: &str, days: i64) {
    use sqlx::ConnectOptions;
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .busy_timeout(std::time::Duration::from_secs(5))
        .connect()
        .await
        .expect("audit store opens");
    let shift = days * 24 * 3600 * 1000;
    let sql = format!(
        "UPDATE runs SET started_at = started_at - {shift}, \
         heartbeat_at = coalesce(heartbeat_at, started_at) - {shift}, \
         finished_at = finished_at - {shift} WHERE {condition}"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .execute(&mut conn)
        .await
        .expect("age runs");
}

fn run_ids(document: &Value, field: &str) -> Vec<String> {
    document[field]
        .as_array()
        .unwrap_or_else(|| panic!("{field}: {document}"))
        .iter()
        .map(|run| {
            run.get("id")
                .unwrap_or(run)
                .as_str()
                .expect("run id")
                .to_owned()
        })
        .collect()
}

#[tokio::test]
async fn prune_is_a_dry_run_unless_yes_and_deletes_only_old_finished_runs() {
    let org = TestOrg::start(TestOrg::fast_config(3)).await;
    let store = org.audit_path();

    // Usage errors exit 64 before the store is looked at; a missing store is an error and is
    // not created.
    for args in [
        &["audit", "prune"][..],
        &["audit", "prune", "--older-than", "soon"],
        &["audit", "prune", "--older-than"],
    ] {
        org.run(args).await.assert_code(64);
    }
    // A bare number is told the unit a retention means, not "90sec or 90ms".
    let bare = org.run(&["audit", "prune", "--older-than", "90"]).await;
    bare.assert_code(64);
    assert!(bare.stderr.contains("90days"), "{}", bare.stderr);
    assert!(!bare.stderr.contains("90sec"), "{}", bare.stderr);
    // A fresh install's prune timer runs before any run made the store: nothing to prune, 0.
    for args in [
        &["audit", "prune", "--older-than", "90d", "--yes"][..],
        &["audit", "prune", "--older-than", "90d"],
    ] {
        let missing = org.run(args).await;
        missing.assert_code(0);
        assert!(
            missing.stderr.contains("nothing to prune"),
            "{}",
            missing.stderr
        );
    }
    assert!(!store.exists(), "prune created a store");

    org.write("desired.csv", &desired_csv(&org, "campaign", "spring"));
    org.run(&["apply", "desired.csv"]).await.assert_code(0);
    org.run(&["apply", "desired.csv"]).await.assert_code(0);
    org.write("autumn.csv", &desired_csv(&org, "campaign", "autumn"));
    org.run(&["apply", "autumn.csv"]).await.assert_code(0);
    let runs = json(&org.run(&["audit", "runs", "--json"]).await);
    let ids = run_ids(&runs, "runs"); // newest first
    assert_eq!(ids.len(), 3);
    let (recent, old) = (ids[0].clone(), vec![ids[2].clone(), ids[1].clone()]);
    age_runs(&store, &format!("id <> '{recent}'"), 100).await;

    // A run in progress: an apply held at its first read after the token. Made old too; kept.
    org.state().hold_after(1);
    let in_progress = org.spawn(&["apply", "desired.csv"]);
    org.wait_until_holding().await;
    let running = store_count(&store, "SELECT count(*) FROM runs WHERE status = 'running'").await;
    assert_eq!(running, 1);
    age_runs(&store, "status = 'running'", 200).await;
    let targets_before = store_count(&store, "SELECT count(*) FROM targets").await;
    let requests_before = store_count(&store, "SELECT count(*) FROM requests").await;

    let dry = org.run(&["audit", "prune", "--older-than", "90d"]).await;
    dry.assert_code(0);
    assert!(
        dry.stdout.contains("would delete 2 runs")
            && dry.stdout.contains("kept 1 run still in progress"),
        "{}",
        dry.stdout
    );
    for id in &old {
        assert!(dry.stdout.contains(id.as_str()), "{}", dry.stdout);
    }
    assert!(!dry.stdout.contains(recent.as_str()), "{}", dry.stdout);
    assert!(dry.stderr.contains("--yes"), "{}", dry.stderr);
    let dry_json = json(
        &org.run(&["audit", "prune", "--older-than", "90d", "--json"])
            .await,
    );
    assert_eq!(dry_json["dry_run"], true);
    assert_eq!(run_ids(&dry_json, "runs"), old, "oldest first");
    assert_eq!(dry_json["rows"]["runs"], 2);
    assert_eq!(dry_json["rows"]["targets"], 6, "{dry_json}");
    assert_eq!(dry_json["rows"]["input_rows"], 6, "{dry_json}");
    let old_requests = store_count(
        &store,
        &format!(
            "SELECT count(*) FROM requests WHERE run_id IN ('{}', '{}')",
            old[0], old[1]
        ),
    )
    .await;
    assert!(old_requests >= 3 * 3 + 3, "{old_requests}");
    assert_eq!(dry_json["rows"]["requests"], old_requests, "{dry_json}");
    assert_eq!(run_ids(&dry_json, "in_progress").len(), 1);
    // The dry runs deleted nothing.
    assert_eq!(store_count(&store, "SELECT count(*) FROM runs").await, 4);
    assert_eq!(
        store_count(&store, "SELECT count(*) FROM targets").await,
        targets_before
    );

    let pruned = org
        .run(&["audit", "prune", "--older-than", "90d", "--yes", "--json"])
        .await;
    pruned.assert_code(0);
    let pruned = json(&pruned);
    assert_eq!(pruned["dry_run"], false);
    assert_eq!(
        pruned["rows"], dry_json["rows"],
        "deleted what the dry run showed"
    );
    let left: Vec<String> = {
        let listed = json(&org.run(&["audit", "runs", "--json"]).await);
        run_ids(&listed, "runs")
    };
    assert_eq!(
        left.len(),
        2,
        "the recent run and the one in progress: {left:?}"
    );
    assert!(left.contains(&recent));
    for table in ["targets", "input_rows", "requests", "run_processes"] {
        let orphans = store_count(
            &store,
            &format!("SELECT count(*) FROM {table} WHERE run_id NOT IN (SELECT id FROM runs)"),
        )
        .await;
        assert_eq!(orphans, 0, "{table}");
    }
    assert_eq!(
        store_count(&store, "SELECT count(*) FROM requests").await,
        requests_before - pruned["rows"]["requests"].as_i64().unwrap()
    );

    // Its process killed, the old run reads as interrupted: now it is prunable.
    in_progress.kill().await;
    org.state().release();
    let text = org
        .run(&["audit", "prune", "--older-than", "90d", "--yes"])
        .await;
    text.assert_code(0);
    assert!(text.stdout.contains("deleted 1 run "), "{}", text.stdout);
    assert_eq!(
        run_ids(&json(&org.run(&["audit", "runs", "--json"]).await), "runs"),
        vec![recent]
    );
    let nothing = org.run(&["audit", "prune", "--older-than", "90d"]).await;
    nothing.assert_code(0);
    assert!(
        nothing.stdout.starts_with("no finished run"),
        "{}",
        nothing.stdout
    );
}
