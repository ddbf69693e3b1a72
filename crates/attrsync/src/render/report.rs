//! `attrsync audit report`: one self-contained HTML page about one run, for a reviewer who would
//! rather look than read. Inline CSS and inline SVG only: nothing is fetched (no script, font,
//! stylesheet or image), and a Content-Security-Policy forbids it should anything slip in.
//!
//! Every number a test or a reviewer may want to find is in an element with a stable id
//! (`total-requests`, `throttled`, `count-failed`, ...); the charts are `svg#chart-rps`,
//! `svg#chart-outcomes` and `svg#chart-latency`.

use std::fmt::Write;

use audit::{RequestRow, RunSummary, TargetRecord, TargetStatus, UnixMillis};

use super::audit::{changes_text, counts_text, duration_text};
use super::charts::{latency_bins, latency_chart, outcomes_chart, rate_chart, rate_series};

pub const RATE_CHART_ID: &str = "chart-rps";
pub const OUTCOMES_CHART_ID: &str = "chart-outcomes";
pub const LATENCY_CHART_ID: &str = "chart-latency";

/// Everything the report shows, read from the audit store.
#[derive(Debug, Clone, Copy)]
pub struct ReportInput<'a> {
    pub summary: &'a RunSummary,
    /// Every HTTP attempt of the run.
    pub requests: &'a [RequestRow],
    /// The run's failed and drifted targets, at most [`MAX_PROBLEM_ROWS`] of them (a long
    /// follow may have many more; the count comes from the summary).
    pub problems: &'a [TargetRecord],
    pub tool_version: &'a str,
    pub generated_at: UnixMillis,
}

/// The most failed and drifted targets a report lists: a page stays readable (and small) for
/// a run of any length; `audit list` lists them all.
pub const MAX_PROBLEM_ROWS: u32 = 1_000;

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

pub fn html_report(input: &ReportInput<'_>) -> anyhow::Result<String> {
    let summary = input.summary;
    let run = &summary.run;
    let requests = &summary.requests;
    let start = input
        .requests
        .iter()
        .map(|request| request.at)
        .min()
        .map_or(run.started_at, |first| first.min(run.started_at));
    let series = rate_series(input.requests, start);
    let budget_per_second = run.rate_per_minute.map(|per_minute| per_minute / 60.0);
    let mut latencies: Vec<u32> = input
        .requests
        .iter()
        .map(|request| request.latency_ms)
        .collect();
    latencies.sort_unstable();

    let mut page = String::new();
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n\
         <title>attrsync run {id}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
         <h1>attrsync run <code id=\"run-id\">{id}</code></h1>\n\
         <p class=\"status\"><span id=\"run-status\">{status}</span>{exit}, {duration}</p>\n",
        id = escape(run.id.as_str()),
        status = run.status,
        exit = run
            .exit_code
            .map_or_else(String::new, |code| format!(", exit code {code}")),
        duration = escape(&duration_text(run)),
    );

    page.push_str("<dl class=\"run\">\n");
    let mut field = |name: &str, value: &str| {
        let _ = writeln!(page, "<dt>{}</dt><dd>{}</dd>", escape(name), escape(value));
    };
    field("command", &run.command);
    field("source", run.source_path.as_deref().unwrap_or("-"));
    field("source sha256", run.source_sha256.as_deref().unwrap_or("-"));
    field("started", &run.started_at.to_string());
    field(
        "finished",
        &run.finished_at
            .map_or_else(|| "-".to_owned(), |at| at.to_string()),
    );
    field("tool", &format!("attrsync {}", run.tool_version));
    field("host", &format!("{} (pid {})", run.host, run.pid));
    field("operator", run.operator.as_deref().unwrap_or("-"));
    field("options", &run.options.to_string());
    field("targets", &counts_text(&summary.counts));
    page.push_str("</dl>\n");

    let _ = write!(
        page,
        "<ul class=\"numbers\">\n\
         <li>requests<span id=\"total-requests\">{total}</span></li>\n\
         <li>throttled (429)<span id=\"throttled\">{throttled}</span></li>\n\
         <li>retries<span id=\"retries\">{retries}</span></li>\n\
         <li>without response<span id=\"transport-errors\">{transport}</span></li>\n\
         <li>peak requests/s<span id=\"peak-rps\">{peak:.1}</span></li>\n\
         <li>budget requests/s<span id=\"budget-rps\">{budget}</span></li>\n\
         <li>targets<span id=\"total-targets\">{targets}</span></li>\n\
         </ul>\n",
        total = requests.total,
        throttled = requests.throttled,
        retries = requests.retries,
        transport = requests.transport_errors,
        peak = series.peak(),
        budget = budget_per_second.map_or_else(|| "-".to_owned(), |b| format!("{b:.1}")),
        targets = summary.counts.total(),
    );

    let _ = write!(
        page,
        "<section>\n<h2>Requests per second</h2>\n\
         <p class=\"legend\">Blue: requests sent per second. Green: the configured budget \
         (rate per minute / 60). Red crosses: 429 responses. Orange triangles: retries.</p>\n{}\n</section>\n",
        inline_svg(
            &rate_chart(&series, budget_per_second)?,
            RATE_CHART_ID,
            "requests per second over time against the budget",
        ),
    );

    let _ = write!(
        page,
        "<section>\n<h2>Outcomes</h2>\n{}\n<table id=\"outcomes\">\n<tr><th>status</th><th>targets</th></tr>\n",
        inline_svg(
            &outcomes_chart(&summary.counts)?,
            OUTCOMES_CHART_ID,
            "targets per outcome"
        ),
    );
    for status in TargetStatus::ALL {
        let count = summary.counts.get(status);
        if count > 0 {
            let _ = writeln!(
                page,
                "<tr><td>{status}</td><td id=\"count-{status}\">{count}</td></tr>"
            );
        }
    }
    page.push_str("</table>\n</section>\n");

    let _ = write!(
        page,
        "<section>\n<h2>Latency</h2>\n<p class=\"legend\">p50 <span id=\"latency-p50\">{}</span> ms, \
         p95 <span id=\"latency-p95\">{}</span> ms, p99 <span id=\"latency-p99\">{}</span> ms, \
         max <span id=\"latency-max\">{}</span> ms over {} requests.</p>\n{}\n</section>\n",
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.95),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or(0),
        latencies.len(),
        inline_svg(
            &latency_chart(&latency_bins(&latencies))?,
            LATENCY_CHART_ID,
            "distribution of request latency",
        ),
    );

    let problem_count = input.summary.counts.get(audit::TargetStatus::Failed)
        + input.summary.counts.get(audit::TargetStatus::Drift);
    write_problems(&mut page, input.problems, problem_count, input.summary);

    let _ = write!(
        page,
        "<footer>Generated by attrsync {} at {} from the audit store.</footer>\n</body>\n</html>\n",
        escape(input.tool_version),
        input.generated_at,
    );
    Ok(page)
}

/// The table of failed and drifted targets.
fn write_problems(page: &mut String, problems: &[TargetRecord], count: u64, summary: &RunSummary) {
    let _ = writeln!(
        page,
        "<section>\n<h2>Failed and drifted targets (<span id=\"problem-count\">{count}</span>)</h2>",
    );
    if count > problems.len() as u64 {
        let _ = writeln!(
            page,
            "<p>The first {} are listed; <code>attrsync audit list --run {} --status failed,drift</code> lists them all.</p>",
            problems.len(),
            escape(summary.run.id.as_str()),
        );
    }
    if problems.is_empty() {
        page.push_str("<p>None: every target ended as planned.</p>\n</section>\n");
        return;
    }
    page.push_str(
        "<table id=\"problems\">\n<tr><th>#</th><th>status</th><th>conversation</th>\
         <th>participant</th><th>changes</th><th>HTTP</th><th>error or reason</th>\
         <th>correlation id</th><th>input</th></tr>\n",
    );
    for target in problems {
        // The recorded message has the code in it already (see `detail_text`).
        let error = [
            target
                .error_message
                .as_deref()
                .or(target.error_code.as_deref()),
            target.reason.as_deref(),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(": ");
        let _ = writeln!(
            page,
            "<tr><td>{seq}</td><td class=\"bad\">{status}</td><td class=\"mono\">{conversation}</td>\
             <td class=\"mono\">{participant}</td><td>{changes}</td><td>{http}</td><td>{error}</td>\
             <td class=\"mono\">{correlation}</td><td>{input}</td></tr>",
            seq = target.seq,
            status = target.status,
            conversation = escape(&target.conversation_id),
            participant = escape(target.participant_id.as_deref().unwrap_or(&target.selector)),
            changes = escape(&changes_text(target)),
            http = target
                .http_status
                .map_or_else(String::new, |status| status.to_string()),
            error = escape(&error),
            correlation = escape(target.correlation_id.as_deref().unwrap_or("")),
            input = escape(&target.input_lines),
        );
    }
    page.push_str("</table>\n</section>\n");
}

/// Text made safe for HTML element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            _ => escaped.push(c),
        }
    }
    escaped
}

/// A plotters SVG document as an element of the page: with an id and an accessible label, and
/// without the namespace URL (HTML puts `<svg>` in the SVG namespace by itself), so that the
/// page names no URL at all.
fn inline_svg(svg: &str, id: &str, label: &str) -> String {
    svg.replacen(r#" xmlns="http://www.w3.org/2000/svg""#, "", 1)
        .replacen(
            "<svg ",
            &format!(
                r#"<svg id="{}" role="img" aria-label="{}" "#,
                escape(id),
                escape(label)
            ),
            1,
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
    use crate::render::audit::tests::target;
    use audit::{RequestStats, RunId, RunRecord, RunStatus, StatusCounts};

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
            },
            counts,
            requests: RequestStats {
                total: 0,
                ..RequestStats::default()
            },
        }
    }

    #[test]
    fn escape_neutralises_markup() {
        assert_eq!(
            escape(r#"<script>alert("x") & 'y'</script>"#),
            "&lt;script&gt;alert(&quot;x&quot;) &amp; &#39;y&#39;&lt;/script&gt;"
        );
    }

    #[test]
    fn inline_svg_gets_an_id_and_loses_the_namespace_url() {
        let svg = r#"<svg width="1" height="1" viewBox="0 0 1 1" xmlns="http://www.w3.org/2000/svg"></svg>"#;
        assert_eq!(
            inline_svg(svg, "chart-x", "a label"),
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
        assert!(page.contains(r#"<span id="budget-rps">5.0</span>"#));
    }
}
