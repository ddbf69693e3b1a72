//! The page: one self-contained HTML document about one run, for a reviewer who would rather
//! look than read. Inline CSS and inline SVG only: nothing is fetched (no script, font,
//! stylesheet or image), and a Content-Security-Policy forbids it should anything slip in.
//!
//! Every number a test or a reviewer may want to find is in an element with a stable id
//! (`total-requests`, `throttled`, `count-failed`, ...); the charts are `svg#chart-rps`,
//! `svg#chart-outcomes` and `svg#chart-latency`.

use audit::{
    RequestRow, RunSummary, StatusClass, StatusCounts, TargetRecord, TargetStatus, UnixMillis,
};
use maud::{DOCTYPE, Markup, PreEscaped, html};

use crate::ReportError;
use crate::charts::{
    Budget, DEFAULT_WINDOW, count_text, latency_bins, latency_chart, outcomes_chart, rate_chart,
    window_series, window_text,
};
use crate::text::{changes_text, counts_text, duration_text, revert_text};

pub const RATE_CHART_ID: &str = "chart-rps";
pub const OUTCOMES_CHART_ID: &str = "chart-outcomes";
pub const LATENCY_CHART_ID: &str = "chart-latency";

/// Everything the report shows, read from the audit store.
#[derive(Debug, Clone, Copy)]
pub struct ReportInput<'a> {
    pub summary: &'a RunSummary,
    /// Every HTTP attempt of the run.
    pub requests: &'a [RequestRow],
    /// The run's targets whose status [`is_problem`] (the store's listing of
    /// [`problem_statuses`]), at most [`MAX_PROBLEM_ROWS`] of them (a long follow may have many
    /// more; the count comes from the summary).
    pub problems: &'a [TargetRecord],
    /// The runs that reverted this one (`attrsync revert`), oldest first.
    pub reverted_by: &'a [RunSummary],
    pub tool_version: &'a str,
    pub generated_at: UnixMillis,
}

/// The most problem targets a report lists: a page stays readable (and small) for a run of any
/// length; `audit list` lists them all.
pub const MAX_PROBLEM_ROWS: u32 = 1_000;

/// Whether the report lists a target of this status as a problem: every status whose class
/// ([`TargetStatus::class`], the one classification) is not [`StatusClass::Done`]. Not done
/// (failed, drift, stale, unknown), gone (skipped) and not reached (not applied, unprocessed,
/// and those a run has not finished: planned, sending, applied but not verified) alike, so that
/// the report's "every target ended as planned" is true.
pub const fn is_problem(status: TargetStatus) -> bool {
    !matches!(status.class(), StatusClass::Done)
}

/// The statuses [`is_problem`] holds for, in lifecycle order: what to ask the store for.
pub fn problem_statuses() -> Vec<TargetStatus> {
    TargetStatus::ALL
        .into_iter()
        .filter(|status| is_problem(*status))
        .collect()
}

const STYLE: &str = "
body { font-family: system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif; color: #222;
       margin: 2rem auto; max-width: 1000px; padding: 0 1rem; line-height: 1.4; }
h1 { font-size: 1.5rem; margin-bottom: .25rem; } h2 { font-size: 1.15rem; margin-top: 2rem; }
code, td.mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .85em; }
dl.run { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; }
dl.run dt { color: #666; } dl.run dd { margin: 0; overflow-wrap: anywhere; }
.numbers { display: flex; flex-wrap: wrap; gap: .75rem; padding: 0; list-style: none; }
.numbers li { border: 1px solid #ddd; border-radius: 6px; padding: .5rem .9rem; }
.numbers span { display: block; font-size: 1.4rem; font-weight: 600; }
.status { color: #666; } .bad { color: #d62728; }
svg { max-width: 100%; height: auto; border: 1px solid #eee; }
table { border-collapse: collapse; width: 100%; font-size: .9rem; }
th, td { text-align: left; border-bottom: 1px solid #ddd; padding: .3rem .5rem; vertical-align: top; }
th { background: #f6f6f6; } td { overflow-wrap: anywhere; }
.legend { color: #555; font-size: .9rem; }
footer { margin-top: 3rem; color: #888; font-size: .8rem; }
";

/// The page of one run, as one HTML string.
pub fn html_report(input: &ReportInput<'_>) -> Result<String, ReportError> {
    let summary = input.summary;
    let run = &summary.run;
    let requests = &summary.requests;
    let start = input
        .requests
        .iter()
        .map(|request| request.at)
        .min()
        .map_or(run.started_at, |first| first.min(run.started_at));
    let end = input
        .requests
        .iter()
        .map(|request| request.at)
        .chain(run.finished_at)
        .max()
        .unwrap_or(start);
    let budget = Budget::of_run(&run.options, run.rate_per_minute);
    let window = budget.map_or(DEFAULT_WINDOW, |budget| budget.window);
    let window_words = window_text(window);
    let series = window_series(input.requests, start, end, window);
    let mut latencies: Vec<u32> = input
        .requests
        .iter()
        .map(|request| request.latency_ms)
        .collect();
    latencies.sort_unstable();

    let rate_svg = inline_svg(
        &rate_chart(&series, budget.as_ref()).map_err(chart_error("rate"))?,
        RATE_CHART_ID,
        "requests in the trailing window over the run against the window's budget",
    );
    let outcomes_svg = inline_svg(
        &outcomes_chart(&summary.counts).map_err(chart_error("outcomes"))?,
        OUTCOMES_CHART_ID,
        "targets per outcome",
    );
    let latency_svg = inline_svg(
        &latency_chart(&latency_bins(&latencies)).map_err(chart_error("latency"))?,
        LATENCY_CHART_ID,
        "distribution of request latency",
    );

    let fields: [(&str, String); 11] = [
        ("command", run.command.clone()),
        (
            "source",
            run.source_path.clone().unwrap_or_else(|| "-".to_owned()),
        ),
        (
            "source sha256",
            run.source_sha256.clone().unwrap_or_else(|| "-".to_owned()),
        ),
        ("started", run.started_at.to_string()),
        (
            "finished",
            run.finished_at
                .map_or_else(|| "-".to_owned(), |at| at.to_string()),
        ),
        ("tool", format!("attrsync {}", run.tool_version)),
        ("host", format!("{} (pid {})", run.host, run.pid)),
        (
            "operator",
            run.operator.clone().unwrap_or_else(|| "-".to_owned()),
        ),
        ("options", run.options.to_string()),
        ("targets", counts_text(&summary.counts)),
        ("ended", crate::text::ended_rows_text(run.ended_rows)),
    ];

    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta http-equiv="Content-Security-Policy"
                    content="default-src 'none'; style-src 'unsafe-inline'";
                title { "attrsync run " (run.id) }
                style { (PreEscaped(STYLE)) }
            }
            body {
                h1 { "attrsync run " code id="run-id" { (run.id) } }
                p.status {
                    span id="run-status" { (run.status) }
                    @if let Some(code) = run.exit_code { ", exit code " (code) }
                    ", " (duration_text(run))
                }
                dl.run {
                    @for (name, value) in &fields {
                        dt { (name) }
                        dd { (value) }
                    }
                }
                @if let Some(original) = &run.reverts {
                    p id="reverts" { "This run reverts run " code { (original) } "." }
                }
                @if !input.reverted_by.is_empty() {
                    section id="reverted-by" {
                        h2 { "Reverted" }
                        ul {
                            @for revert in input.reverted_by {
                                li { "by " (revert_text(revert)) }
                            }
                        }
                    }
                }
                ul.numbers {
                    li { "requests" span id="total-requests" { (requests.total) } }
                    li { "throttled (429)" span id="throttled" { (requests.throttled) } }
                    li { "retries" span id="retries" { (requests.retries) } }
                    li { "without response" span id="transport-errors" { (requests.transport_errors) } }
                    li {
                        "peak requests in a " (window_words)
                        span id="peak-in-window" { (series.peak()) }
                    }
                    li {
                        "budget per " (window_words)
                        span id="window-budget" {
                            (budget.map_or_else(|| "-".to_owned(), |b| count_text(b.per_window)))
                        }
                    }
                    li { "targets" span id="total-targets" { (summary.counts.total()) } }
                    li {
                        "rows of ended calls (no request, no target)"
                        span id="ended-rows" { (run.ended_rows) }
                    }
                }
                section {
                    h2 { "Requests in the trailing " (window_words) }
                    p.legend {
                        "Blue: requests sent in the trailing " (window_words)
                        " at every instant, as the limiter counts them. "
                        @match budget {
                            Some(budget) => {
                                "Green: the budget, " (count_text(budget.per_window)) " per "
                                (window_words) " over every token. "
                                @if let Some(even) = budget.even {
                                    "Purple: the most even pacing lets through, "
                                    (format!("{:.1}", even.per_second)) "/s after a burst of "
                                    (count_text(even.burst)) ". "
                                }
                            }
                            None => { "The run recorded no rate: no budget is drawn. " }
                        }
                        "Red crosses: 429 responses. Orange triangles: retries."
                    }
                    (rate_svg)
                }
                section {
                    h2 { "Outcomes" }
                    (outcomes_svg)
                    table id="outcomes" {
                        tr { th { "status" } th { "targets" } }
                        @for status in TargetStatus::ALL {
                            @let count = summary.counts.get(status);
                            @if count > 0 {
                                tr { td { (status) } td id=(format!("count-{status}")) { (count) } }
                            }
                        }
                    }
                }
                section {
                    h2 { "Latency" }
                    p.legend {
                        "p50 " span id="latency-p50" { (percentile(&latencies, 0.50)) } " ms, "
                        "p95 " span id="latency-p95" { (percentile(&latencies, 0.95)) } " ms, "
                        "p99 " span id="latency-p99" { (percentile(&latencies, 0.99)) } " ms, "
                        "max " span id="latency-max" { (latencies.last().copied().unwrap_or(0)) } " ms "
                        "over " (latencies.len()) " requests."
                    }
                    (latency_svg)
                }
                (problems_section(input.problems, summary))
                footer {
                    "Generated by attrsync " (input.tool_version) " at " (input.generated_at)
                    " from the audit store."
                }
            }
        }
    };
    Ok(page.into_string())
}

fn chart_error(chart: &'static str) -> impl FnOnce(crate::charts::DrawError) -> ReportError {
    move |source| ReportError { chart, source }
}

/// The table of every target that did not end as planned (see [`is_problem`]), under a heading
/// that names their statuses.
fn problems_section(problems: &[TargetRecord], summary: &RunSummary) -> Markup {
    let present: Vec<TargetStatus> = problem_statuses()
        .into_iter()
        .filter(|status| summary.counts.get(*status) > 0)
        .collect();
    let count: u64 = present
        .iter()
        .map(|status| summary.counts.get(*status))
        .sum();
    let names: Vec<&str> = present.iter().map(|status| status.as_str()).collect();
    let done: Vec<&str> = TargetStatus::ALL
        .into_iter()
        .filter(|status| !is_problem(*status))
        .map(TargetStatus::as_str)
        .collect();
    let done = words_list(&done, "or");
    html! {
        section {
            h2 {
                @if present.is_empty() {
                    "Targets that did not end as planned"
                } @else {
                    (capitalised(&words_list(&names, "and"))) " targets"
                }
                " (" span id="problem-count" { (count) } ")"
            }
            @if present.is_empty() {
                p { "None: every target ended as planned (" (done) ")." }
            } @else {
                p {
                    "Every target that did not end " (done) ": "
                    span id="problem-statuses" { (counts_text(&problem_counts(&summary.counts))) }
                    "."
                }
                @if count > problems.len() as u64 {
                    p {
                        "The first " (problems.len()) " are listed; "
                        code {
                            "attrsync audit list --run " (summary.run.id)
                            " --status " (names.join(","))
                        }
                        " lists them all."
                    }
                }
                table id="problems" {
                    tr {
                        th { "#" } th { "status" } th { "conversation" } th { "participant" }
                        th { "changes" } th { "HTTP" } th { "error or reason" }
                        th { "correlation id" } th { "input" }
                    }
                    @for target in problems {
                        tr {
                            td { (target.seq) }
                            td.bad { (target.status) }
                            td.mono { (target.conversation_id) }
                            td.mono { (target.participant_id.as_deref().unwrap_or(&target.selector)) }
                            td { (changes_text(target)) }
                            td { @if let Some(status) = target.http_status { (status) } }
                            td { (error_text(target)) }
                            td.mono { (target.correlation_id.as_deref().unwrap_or("")) }
                            td { (target.input_lines) }
                        }
                    }
                }
            }
        }
    }
}

/// Only the counts of the statuses [`is_problem`] holds for.
fn problem_counts(counts: &StatusCounts) -> StatusCounts {
    let mut problems = StatusCounts::default();
    for status in problem_statuses() {
        problems.add(status, counts.get(status));
    }
    problems
}

/// `a`, `a and b`, `a, b and c` (or `a or b`, with `or`).
fn words_list(words: &[&str], conjunction: &str) -> String {
    match words {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [rest @ .., last] => format!("{} {conjunction} {last}", rest.join(", ")),
    }
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(chars).collect()
    })
}

/// A target's error and reason, as one text. The recorded message has the code in it already
/// (see `detail_text`); the code stands in for a row without one.
fn error_text(target: &TargetRecord) -> String {
    [
        target
            .error_message
            .as_deref()
            .or(target.error_code.as_deref()),
        target.reason.as_deref(),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(": ")
}

/// A plotters SVG document as an element of the page: with an id and an accessible label, and
/// without the namespace URL (HTML puts `<svg>` in the SVG namespace by itself), so that the
/// page names no URL at all. The SVG is plotters' own markup (it escapes its texts); the id and
/// label are escaped by maud.
fn inline_svg(svg: &str, id: &str, label: &str) -> Markup {
    let attributes = html! { svg id=(id) role="img" aria-label=(label) {} }.into_string();
    let opening = attributes
        .strip_suffix("></svg>")
        .unwrap_or(&attributes)
        .to_owned()
        + " ";
    PreEscaped(
        svg.replacen(r#" xmlns="http://www.w3.org/2000/svg""#, "", 1)
            .replacen("<svg ", &opening, 1),
    )
}

/// Nearest-rank percentile of sorted values (0 for none).
fn percentile(sorted: &[u32], fraction: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (fraction * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::target;
    use audit::{RequestStats, RunId, RunRecord, RunStatus};

    fn summary() -> RunSummary {
        let mut counts = StatusCounts::default();
        counts.add(TargetStatus::Verified, 3);
        counts.add(TargetStatus::Failed, 1);
        RunSummary {
            run: RunRecord {
                id: RunId::from_stored("20261124T101530Z-ab12cd".into()),
                started_at: UnixMillis::from_millis(1_000),
                finished_at: Some(UnixMillis::from_millis(3_500)),
                status: RunStatus::Completed,
                exit_code: Some(3),
                command: "apply".into(),
                source_path: Some("<desired>.csv".into()),
                source_sha256: None,
                options: serde_json::json!({"concurrency": 4}),
                tool_version: "0.1.0".into(),
                host: "host".into(),
                pid: 7,
                operator: None,
                rate_per_minute: Some(300.0),
                resumed_count: 0,
                reverts: None,
                ended_rows: 0,
                no_live_call_rows: 0,
            },
            counts,
            requests: RequestStats {
                total: 0,
                ..RequestStats::default()
            },
        }
    }

    #[test]
    fn hostile_recorded_text_is_escaped_in_attributes_reasons_and_the_source_path() {
        let hostile = r#"<script>alert("x")</script> & 'y'"#;
        let escaped = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; 'y'";
        let mut summary = summary();
        summary.run.source_path = Some(format!("{hostile}.csv"));
        summary.run.operator = Some(hostile.into());
        let mut failed = target(TargetStatus::Failed);
        failed.desired = [("campaign".to_owned(), hostile.to_owned())].into();
        failed.reason = Some(format!("reason {hostile}"));
        failed.input_lines = format!("{hostile}.csv:2");
        let page = html_report(&ReportInput {
            summary: &summary,
            requests: &[],
            problems: &[failed],
            reverted_by: &[],
            tool_version: "0.1.0",
            generated_at: UnixMillis::from_millis(10_000),
        })
        .unwrap();
        assert!(!page.contains("<script"), "{page}");
        assert!(!page.contains(r#"alert("x")"#), "{page}");
        for shown in [
            format!("<dd>{escaped}.csv</dd>"),
            format!("<dd>{escaped}</dd>"),
            // The value is shown JSON-quoted (`\"` inside), then escaped.
            r#"campaign: &quot;fall&quot; → &quot;&lt;script&gt;alert(\&quot;x\&quot;)&lt;/script&gt; &amp; 'y'&quot;"#.to_owned(),
            format!("reason {escaped}"),
            format!("<td>{escaped}.csv:2</td>"),
        ] {
            assert!(page.contains(&shown), "missing {shown:?} in\n{page}");
        }
    }

    #[test]
    fn a_reverted_run_names_each_revert_and_what_it_did_and_a_revert_names_its_run() {
        let original = summary();
        let mut revert = summary();
        revert.run.id = RunId::from_stored("20261124T111530Z-cd34ef".into());
        revert.run.command = "revert".into();
        revert.run.reverts = Some(original.run.id.clone());
        revert.counts = StatusCounts::default();
        revert.counts.add(TargetStatus::Verified, 170);
        revert.counts.add(TargetStatus::Stale, 20);
        revert.counts.add(TargetStatus::Skipped, 10);
        let page = |summary: &RunSummary, reverted_by: &[RunSummary]| {
            html_report(&ReportInput {
                summary,
                requests: &[],
                problems: &[],
                reverted_by,
                tool_version: "0.1.0",
                generated_at: UnixMillis::from_millis(10_000),
            })
            .unwrap()
        };
        let of_original = page(&original, std::slice::from_ref(&revert));
        assert!(
            of_original.contains(
                "<li>by run 20261124T111530Z-cd34ef (completed, exit 3): 10 skipped, 20 stale, 170 verified</li>"
            ),
            "{of_original}"
        );
        assert!(!of_original.contains(r#"id="reverts""#));
        let of_revert = page(&revert, &[]);
        assert!(
            of_revert.contains(
                r#"<p id="reverts">This run reverts run <code>20261124T101530Z-ab12cd</code>.</p>"#
            ),
            "{of_revert}"
        );
        assert!(!of_revert.contains(r#"id="reverted-by""#));
    }

    fn page_with(counts: &[(TargetStatus, u64)], problems: &[TargetRecord]) -> String {
        let mut summary = summary();
        summary.counts = StatusCounts::default();
        for (status, count) in counts {
            summary.counts.add(*status, *count);
        }
        html_report(&ReportInput {
            summary: &summary,
            requests: &[],
            problems,
            reverted_by: &[],
            tool_version: "0.1.0",
            generated_at: UnixMillis::from_millis(10_000),
        })
        .unwrap()
    }

    #[test]
    fn every_status_but_verified_and_unchanged_is_a_problem() {
        for status in TargetStatus::ALL {
            let done = matches!(status, TargetStatus::Verified | TargetStatus::Unchanged);
            assert_eq!(is_problem(status), !done, "{status}");
            assert_eq!(problem_statuses().contains(&status), !done, "{status}");
        }
    }

    #[test]
    fn a_stale_target_is_listed_under_a_heading_that_names_it() {
        let mut stale = target(TargetStatus::Stale);
        stale.reason = Some("campaign changed since the plan".into());
        let page = page_with(
            &[(TargetStatus::Verified, 1), (TargetStatus::Stale, 1)],
            &[stale],
        );
        assert!(
            page.contains(r#"<h2>Stale targets (<span id="problem-count">1</span>)</h2>"#),
            "{page}"
        );
        assert!(page.contains(r#"<td class="bad">stale</td>"#), "{page}");
        assert!(page.contains("campaign changed since the plan"), "{page}");
        assert!(
            !page.contains("None: every target ended as planned"),
            "{page}"
        );
    }

    #[test]
    fn every_status_that_is_not_done_is_counted_and_named() {
        let not_done = [
            (TargetStatus::Skipped, 1),
            (TargetStatus::Stale, 2),
            (TargetStatus::Drift, 3),
            (TargetStatus::Failed, 4),
            (TargetStatus::NotApplied, 5),
            (TargetStatus::Unknown, 6),
            (TargetStatus::Unprocessed, 7),
        ];
        let mut counts = vec![(TargetStatus::Verified, 10), (TargetStatus::Unchanged, 20)];
        counts.extend(not_done);
        let rows: Vec<TargetRecord> = not_done.iter().map(|(status, _)| target(*status)).collect();
        let page = page_with(&counts, &rows);
        assert!(
            page.contains(
                "<h2>Skipped, stale, drift, failed, not_applied, unknown and unprocessed targets \
                 (<span id=\"problem-count\">28</span>)</h2>"
            ),
            "{page}"
        );
        for (status, _) in not_done {
            assert!(
                page.contains(&format!(r#"<td class="bad">{status}</td>"#)),
                "{status}"
            );
        }
        // 28 counted, 7 listed: the command that lists them all names every status.
        assert!(
            page.contains("--status skipped,stale,drift,failed,not_applied,unknown,unprocessed")
        );
        assert!(!page.contains("None: every target ended as planned"));
    }

    #[test]
    fn none_is_said_only_when_every_target_is_verified_or_unchanged() {
        let page = page_with(
            &[(TargetStatus::Verified, 2), (TargetStatus::Unchanged, 3)],
            &[],
        );
        // The statuses of the class `Done`, named.
        assert!(
            page.contains("None: every target ended as planned (unchanged or verified)."),
            "{page}"
        );
        assert!(page.contains(r#"<span id="problem-count">0</span>"#));
        assert!(!page.contains(r#"id="problems""#));
    }

    fn request_at(at_ms: i64) -> RequestRow {
        RequestRow {
            run_id: RunId::from_stored("r".into()),
            at: UnixMillis::from_millis(at_ms),
            method: "GET".into(),
            route: "/api/v2/conversations/calls/{conversationId}".into(),
            conversation_id: None,
            participant_id: None,
            status: Some(200),
            latency_ms: 5,
            attempt: 1,
            retry_after_ms: None,
            error_class: None,
            correlation_id: None,
            token_slot: None,
        }
    }

    /// The text labels of one chart of a page, in order.
    fn chart_texts(page: &str, id: &str) -> Vec<String> {
        let start = page.find(&format!(r#"<svg id="{id}""#)).unwrap();
        let svg = &page[start..start + page[start..].find("</svg>").unwrap()];
        svg.split("<text")
            .skip(1)
            .map(|text| {
                let text = &text[text.find('>').unwrap() + 1..text.find("</text>").unwrap()];
                text.trim().to_owned()
            })
            .collect()
    }

    #[test]
    fn a_window_paced_sub_second_run_is_drawn_over_its_duration_against_the_window_budget() {
        // 160 requests in 954 ms under `--rate 300/min --pacing window`.
        let mut summary = summary();
        summary.run.options =
            serde_json::json!({"rate": "300/min", "burst": 1, "pacing": "window", "tokens": 1});
        summary.run.started_at = UnixMillis::from_millis(1_000);
        summary.run.finished_at = Some(UnixMillis::from_millis(1_960));
        let requests: Vec<RequestRow> = (0..160).map(|i| request_at(1_000 + i * 6)).collect();
        let page = html_report(&ReportInput {
            summary: &summary,
            requests: &requests,
            problems: &[],
            reverted_by: &[],
            tool_version: "0.1.0",
            generated_at: UnixMillis::from_millis(10_000),
        })
        .unwrap();
        assert!(
            page.contains(r#"<span id="peak-in-window">160</span>"#),
            "{page}"
        );
        assert!(
            page.contains(r#"<span id="window-budget">300</span>"#),
            "{page}"
        );
        let texts = chart_texts(&page, RATE_CHART_ID);
        assert!(
            texts.contains(&"budget 300 per minute".to_owned()),
            "{texts:?}"
        );
        assert!(
            texts.contains(&"requests in the trailing minute".to_owned()),
            "{texts:?}"
        );
        assert!(
            !texts.iter().any(|text| text.contains("/s")),
            "no per-second line: {texts:?}"
        );
        // The time axis ends with the run (0.96 s), not at a whole second.
        assert!(texts.contains(&"0.9".to_owned()), "{texts:?}");
        assert!(!texts.contains(&"1.0".to_owned()), "{texts:?}");
    }

    #[test]
    fn an_even_paced_run_is_drawn_with_its_even_rate() {
        let mut summary = summary();
        summary.run.options =
            serde_json::json!({"rate": "300/min", "burst": 3, "pacing": "even", "tokens": 1});
        let requests: Vec<RequestRow> = (0..10).map(|i| request_at(1_000 + i * 200)).collect();
        let page = html_report(&ReportInput {
            summary: &summary,
            requests: &requests,
            problems: &[],
            reverted_by: &[],
            tool_version: "0.1.0",
            generated_at: UnixMillis::from_millis(10_000),
        })
        .unwrap();
        let texts = chart_texts(&page, RATE_CHART_ID);
        assert!(
            texts.contains(&"budget 300 per minute".to_owned()),
            "{texts:?}"
        );
        assert!(
            texts.contains(&"even pacing 5.0/s after a burst of 3".to_owned()),
            "{texts:?}"
        );
    }

    #[test]
    fn inline_svg_gets_an_id_and_loses_the_namespace_url() {
        let svg = r#"<svg width="1" height="1" viewBox="0 0 1 1" xmlns="http://www.w3.org/2000/svg"></svg>"#;
        assert_eq!(
            inline_svg(svg, "chart-x", "a label").into_string(),
            r#"<svg id="chart-x" role="img" aria-label="a label" width="1" height="1" viewBox="0 0 1 1"></svg>"#
        );
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let values: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&values, 0.50), 50);
        assert_eq!(percentile(&values, 0.99), 99);
        assert_eq!(percentile(&[7], 0.95), 7);
        assert_eq!(percentile(&[], 0.5), 0);
    }

    /// The problems table has the status and the correlation id in columns of their own, and
    /// the recorded message (which has the code in it) in the error column: the code once.
    #[test]
    fn a_problem_shows_the_recorded_error_code_once() {
        let mut failed = target(TargetStatus::Failed);
        failed.http_status = Some(404);
        failed.error_code = Some("not.found".into());
        failed.error_message = Some("HTTP 404 not.found: gone (correlation id c-1)".into());
        let summary = summary();
        let page = html_report(&ReportInput {
            summary: &summary,
            requests: &[],
            problems: &[failed],
            reverted_by: &[],
            tool_version: "0.1.0",
            generated_at: UnixMillis::from_millis(10_000),
        })
        .unwrap();
        assert_eq!(page.matches("not.found").count(), 1, "{page}");
        assert!(page.contains("<td>HTTP 404 not.found: gone (correlation id c-1)</td>"));
    }

    #[test]
    fn report_is_self_contained_and_escapes_recorded_text() {
        let mut failed = target(TargetStatus::Failed);
        failed.error_message = Some("<img src=x onerror=alert(1)>".into());
        let summary = summary();
        let page = html_report(&ReportInput {
            summary: &summary,
            requests: &[],
            problems: &[failed],
            reverted_by: &[],
            tool_version: "0.1.0",
            generated_at: UnixMillis::from_millis(10_000),
        })
        .unwrap();
        for id in [RATE_CHART_ID, OUTCOMES_CHART_ID, LATENCY_CHART_ID] {
            assert!(page.contains(&format!(r#"<svg id="{id}""#)), "{id}");
        }
        assert!(!page.contains("http://") && !page.contains("https://"));
        assert!(!page.contains("<script") && !page.contains("<link"));
        assert!(!page.contains("<img"), "recorded text is escaped");
        assert!(page.contains("&lt;desired&gt;.csv"));
        assert!(page.contains(r#"<td id="count-failed">1</td>"#));
        assert!(page.contains(r#"<span id="window-budget">300</span>"#));
    }
}
