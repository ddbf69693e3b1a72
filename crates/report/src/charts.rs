//! The SVG charts of `audit report`, drawn with plotters' SVG backend. Their text is SVG
//! `<text>` that the browser lays out, so neither the build nor the report needs a font file.
//!
//! Data preparation (`trailing_window_counts`, `window_series`, `Budget::of_run`,
//! `latency_bins`) is separate from drawing so it can be tested with exact numbers.

use std::time::Duration;

use genesys_core::{Pacing, RateSpec};
use plotters::coord::ranged1d::SegmentValue;
use plotters::drawing::DrawingAreaErrorKind;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use audit::{RequestRow, StatusCounts, TargetStatus, UnixMillis};

/// Why plotters could not draw a chart into its SVG string.
pub type DrawError = DrawingAreaErrorKind<std::io::Error>;

const WIDTH: u32 = 960;
const HEIGHT: u32 = 320;
/// Above this many steps, the rate line is drawn as the peak of each of half as many columns.
const MAX_DRAWN_STEPS: usize = 2_000;
/// About this many bars in the latency histogram.
const LATENCY_BINS: u32 = 24;
const FONT: &str = "sans-serif";

const INK: RGBColor = RGBColor(0x33, 0x33, 0x33);
/// Minor grid lines: barely there, so the data stands out.
const GRID: RGBColor = RGBColor(0xf2, 0xf2, 0xf2);
const RATE: RGBColor = RGBColor(0x1f, 0x77, 0xb4);
const BUDGET: RGBColor = RGBColor(0x2c, 0xa0, 0x2c);
const THROTTLED: RGBColor = RGBColor(0xd6, 0x27, 0x28);
const RETRY: RGBColor = RGBColor(0xff, 0x7f, 0x0e);
const EVEN: RGBColor = RGBColor(0x94, 0x67, 0xbd);

/// The window a rate chart counts in when the run recorded no rate: Genesys's budgets are per
/// minute.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(60);

/// What a run's limiter allowed, from the rate flags its options recorded (`"rate": "300/min"`,
/// `"pacing"`, `"burst"`, `"tokens"`), or its recorded rate per minute when the options name no
/// rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget {
    /// The trailing window the limiter counts in (W of `--rate B/W`).
    pub window: Duration,
    /// Requests allowed in any trailing window, over every token (B × tokens).
    pub per_window: f64,
    /// Present under even pacing only.
    pub even: Option<EvenPace>,
}

/// Even pacing (GCRA): a steady rate after a burst.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EvenPace {
    /// Requests per second over every token.
    pub per_second: f64,
    /// Requests admitted back to back, over every token.
    pub burst: f64,
}

impl Budget {
    pub fn of_run(options: &serde_json::Value, rate_per_minute: Option<f64>) -> Option<Budget> {
        let tokens = options["tokens"].as_u64().unwrap_or(1).max(1) as f64;
        let pacing = options["pacing"]
            .as_str()
            .and_then(|pacing| pacing.parse::<Pacing>().ok())
            .unwrap_or_default();
        let (window, per_window) = match options["rate"]
            .as_str()
            .and_then(|rate| rate.parse::<RateSpec>().ok())
        {
            Some(rate) => (rate.per(), f64::from(rate.count()) * tokens),
            // `rate_per_minute` already counts every token.
            None => (Duration::from_secs(60), rate_per_minute?),
        };
        let even = (pacing == Pacing::Even).then(|| EvenPace {
            per_second: per_window / window.as_secs_f64(),
            burst: options["burst"].as_u64().unwrap_or(1).max(1) as f64 * tokens,
        });
        Some(Budget {
            window,
            per_window,
            even,
        })
    }
}

/// The most requests even pacing lets through in the trailing window at `t` since the start:
/// the burst, then the steady rate, until the window is full (then old requests leave it as new
/// ones come).
fn even_envelope(pace: EvenPace, window: Duration, t_secs: f64) -> f64 {
    pace.burst + pace.per_second * t_secs.min(window.as_secs_f64())
}

/// How many requests were in the trailing window `(t - window, t]` at every instant `t` the
/// number changed: a step function as `(milliseconds, requests)` in time order, each value
/// holding until the next. A request counts from its own instant until `window` later. Offsets
/// may come in any order; a request arriving as another leaves makes no step.
pub fn trailing_window_counts(offsets_ms: &[i64], window_ms: i64) -> Vec<(i64, u64)> {
    let window_ms = window_ms.max(1);
    let mut arrivals = offsets_ms.to_vec();
    arrivals.sort_unstable();
    let mut steps: Vec<(i64, u64)> = Vec::new();
    let (mut arrived, mut left, mut count) = (0, 0, 0u64);
    while left < arrivals.len() {
        let leaving = arrivals[left] + window_ms;
        let now = arrivals.get(arrived).map_or(leaving, |&at| at.min(leaving));
        while left < arrivals.len() && arrivals[left] + window_ms == now {
            count -= 1;
            left += 1;
        }
        while arrived < arrivals.len() && arrivals[arrived] == now {
            count += 1;
            arrived += 1;
        }
        if steps.last().is_none_or(|&(_, last)| last != count) {
            steps.push((now, count));
        }
    }
    steps
}

/// The value of a step function at `t` (0 before its first step).
fn count_at(steps: &[(i64, u64)], t: i64) -> u64 {
    match steps.partition_point(|&(at, _)| at <= t) {
        0 => 0,
        next => steps[next - 1].1,
    }
}

/// At most `columns` steps with every peak kept: each column of `span_ms` gets the highest value
/// the step function takes in it.
fn peaks_per_column(steps: &[(i64, u64)], span_ms: i64, columns: i64) -> Vec<(i64, u64)> {
    let width = (span_ms + columns - 1) / columns;
    let width = width.max(1);
    let mut peaks: Vec<(i64, u64)> = Vec::new();
    let mut next = 0;
    let mut column_start = 0;
    while column_start <= span_ms {
        let column_end = column_start + width;
        let mut peak = count_at(steps, column_start);
        while next < steps.len() && steps[next].0 < column_end {
            peak = peak.max(steps[next].1);
            next += 1;
        }
        peaks.push((column_start, peak));
        column_start = column_end;
    }
    peaks
}

/// Requests in the limiter's trailing window over a run, with the 429s and retries placed on
/// the same line.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowSeries {
    pub window: Duration,
    /// The axis: from the run's start to its end (or its last request), in milliseconds.
    pub span_ms: i64,
    /// [`trailing_window_counts`] of the run's requests, up to `span_ms`.
    pub steps: Vec<(i64, u64)>,
    /// `(milliseconds since start, requests in the window then)` of every 429 response.
    pub throttled: Vec<(i64, u64)>,
    /// `(milliseconds since start, requests in the window then)` of every attempt after the
    /// first.
    pub retries: Vec<(i64, u64)>,
}

impl WindowSeries {
    /// The most requests the trailing window held at any instant.
    pub fn peak(&self) -> u64 {
        self.steps
            .iter()
            .map(|(_, count)| *count)
            .max()
            .unwrap_or(0)
    }
}

/// The requests of a run that started at `start` and ended at `end`, counted in a trailing
/// `window`. The axis spans the run (at least 1 ms), however short or long.
pub fn window_series(
    requests: &[RequestRow],
    start: UnixMillis,
    end: UnixMillis,
    window: Duration,
) -> WindowSeries {
    let offset_ms = |at: UnixMillis| (at.as_millis() - start.as_millis()).max(0);
    let offsets: Vec<i64> = requests
        .iter()
        .map(|request| offset_ms(request.at))
        .collect();
    let span_ms = offsets
        .iter()
        .copied()
        .fold(offset_ms(end), i64::max)
        .max(1);
    let window_ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
    let mut steps = trailing_window_counts(&offsets, window_ms);
    steps.retain(|&(at, _)| at <= span_ms);
    let marks = |keep: &dyn Fn(&RequestRow) -> bool| {
        requests
            .iter()
            .filter(|request| keep(request))
            .map(|request| {
                let at = offset_ms(request.at);
                (at, count_at(&steps, at))
            })
            .collect()
    };
    WindowSeries {
        window,
        span_ms,
        throttled: marks(&|request| request.status == Some(429)),
        retries: marks(&|request| request.attempt > 1),
        steps,
    }
}

/// `second`, `minute`, `hour`, or a duration (`10s`): the window in words.
pub fn window_text(window: Duration) -> String {
    match window.as_millis() {
        1_000 => "second".to_owned(),
        60_000 => "minute".to_owned(),
        3_600_000 => "hour".to_owned(),
        _ => humantime::format_duration(window).to_string(),
    }
}

/// A count as people write it: `300`, `287.5`.
pub fn count_text(count: f64) -> String {
    if count.fract() == 0.0 {
        format!("{count:.0}")
    } else {
        format!("{count:.1}")
    }
}

/// A latency histogram: `counts[i]` requests took `i * width_ms ..< (i + 1) * width_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LatencyBins {
    pub width_ms: u32,
    pub counts: Vec<u64>,
}

pub fn latency_bins(latencies_ms: &[u32]) -> LatencyBins {
    let max = latencies_ms.iter().copied().max().unwrap_or(0);
    let width_ms = round_up_to_1_2_5(max / LATENCY_BINS + 1);
    let mut counts = vec![0u64; (max / width_ms + 1) as usize];
    for latency in latencies_ms {
        counts[(latency / width_ms) as usize] += 1;
    }
    LatencyBins { width_ms, counts }
}

/// The smallest of 1, 2, 5, 10, 20, 50, ... that is at least `value`: bin widths people read.
fn round_up_to_1_2_5(value: u32) -> u32 {
    let mut decade = 1u32;
    loop {
        for step in [1, 2, 5] {
            let candidate = step * decade;
            if candidate >= value {
                return candidate;
            }
        }
        match decade.checked_mul(10) {
            Some(next) => decade = next,
            None => return value,
        }
    }
}

/// Requests in the trailing window as a step line over the run's duration; the window's
/// budget as a flat line; under even pacing, what the pace lets through; 429s as red crosses
/// and retries as orange triangles on the line.
pub fn rate_chart(series: &WindowSeries, budget: Option<&Budget>) -> Result<String, DrawError> {
    let secs = |ms: i64| ms as f64 / 1000.0;
    let x_max = secs(series.span_ms);
    let window = window_text(series.window);
    let even_line: Option<Vec<(f64, f64)>> = budget.and_then(|budget| {
        let pace = budget.even?;
        let full = x_max.min(budget.window.as_secs_f64());
        Some(vec![
            (0.0, even_envelope(pace, budget.window, 0.0)),
            (full, even_envelope(pace, budget.window, full)),
            (x_max, even_envelope(pace, budget.window, x_max)),
        ])
    });
    let y_top = [
        series.peak() as f64,
        budget.map_or(0.0, |budget| budget.per_window),
        even_line
            .as_ref()
            .and_then(|line| line.last())
            .map_or(0.0, |(_, y)| *y),
    ]
    .into_iter()
    .fold(0.0, f64::max);
    let y_max = (y_top * 1.15).max(1.0);
    let drawn = if series.steps.len() > MAX_DRAWN_STEPS {
        peaks_per_column(&series.steps, series.span_ms, MAX_DRAWN_STEPS as i64 / 2)
    } else {
        series.steps.clone()
    };
    let mut stairs: Vec<(f64, f64)> = vec![(0.0, 0.0)];
    for (at, count) in drawn {
        let (x, y) = (secs(at), count as f64);
        let previous = stairs.last().map_or(0.0, |(_, y)| *y);
        stairs.push((x, previous));
        stairs.push((x, y));
    }
    let last = stairs.last().map_or(0.0, |(_, y)| *y);
    stairs.push((x_max, last));

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..x_max, 0f64..y_max)?;
        chart
            .configure_mesh()
            .x_desc("seconds since the run started")
            .y_desc(format!("requests in the trailing {window}"))
            // Requests are whole: fractional ticks keep their grid line but no label.
            .y_label_formatter(&|y| {
                if (y - y.round()).abs() < 1e-6 {
                    format!("{y:.0}")
                } else {
                    String::new()
                }
            })
            .light_line_style(GRID)
            .label_style((FONT, 16).into_font().color(&INK))
            .axis_desc_style((FONT, 17).into_font().color(&INK))
            .draw()?;
        chart
            .draw_series(LineSeries::new(stairs, RATE.stroke_width(2)))?
            .label(format!("requests in the trailing {window}"))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], RATE.stroke_width(2)));
        if let Some(budget) = budget {
            chart
                .draw_series(LineSeries::new(
                    [(0.0, budget.per_window), (x_max, budget.per_window)],
                    BUDGET.stroke_width(2),
                ))?
                .label(format!(
                    "budget {} per {window}",
                    count_text(budget.per_window)
                ))
                .legend(|(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], BUDGET.stroke_width(2))
                });
        }
        if let (Some(line), Some(pace)) = (even_line, budget.and_then(|budget| budget.even)) {
            chart
                .draw_series(LineSeries::new(line, EVEN.stroke_width(2)))?
                .label(format!(
                    "even pacing {:.1}/s after a burst of {}",
                    pace.per_second,
                    count_text(pace.burst)
                ))
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], EVEN.stroke_width(2)));
        }
        let at = |&(ms, count): &(i64, u64)| (secs(ms), count as f64);
        if !series.retries.is_empty() {
            chart
                .draw_series(
                    series
                        .retries
                        .iter()
                        .map(|point| TriangleMarker::new(at(point), 6, RETRY.filled())),
                )?
                .label("retry")
                .legend(|(x, y)| TriangleMarker::new((x + 9, y), 6, RETRY.filled()));
        }
        if !series.throttled.is_empty() {
            chart
                .draw_series(
                    series
                        .throttled
                        .iter()
                        .map(|point| Cross::new(at(point), 5, THROTTLED.stroke_width(2))),
                )?
                .label("429 throttled")
                .legend(|(x, y)| Cross::new((x + 9, y), 5, THROTTLED.stroke_width(2)));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .label_font((FONT, 16).into_font().color(&INK))
            .background_style(WHITE.mix(0.85))
            .border_style(INK)
            .draw()?;
        root.present()?;
    }
    Ok(svg)
}

/// Targets per final status, as bars labelled with their counts. Only statuses that occur are
/// shown (all of them, at zero, for a run without targets).
pub fn outcomes_chart(counts: &StatusCounts) -> Result<String, DrawError> {
    let mut shown: Vec<(TargetStatus, u64)> = TargetStatus::ALL
        .iter()
        .map(|status| (*status, counts.get(*status)))
        .filter(|(_, count)| *count > 0)
        .collect();
    if shown.is_empty() {
        shown = TargetStatus::ALL
            .iter()
            .map(|status| (*status, 0))
            .collect();
    }
    let bars = u32::try_from(shown.len()).unwrap_or(u32::MAX);
    let peak = shown.iter().map(|(_, count)| *count).max().unwrap_or(0);
    let y_max = (peak as f64 * 1.2).ceil() as u64 + 1;
    let label = |value: &SegmentValue<u32>| match value {
        SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => shown
            .get(*i as usize)
            .map(|(status, _)| status.to_string())
            .unwrap_or_default(),
        SegmentValue::Last => String::new(),
    };
    let count_style = (FONT, 17)
        .into_font()
        .color(&INK)
        .pos(Pos::new(HPos::Center, VPos::Bottom));

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(60)
            .build_cartesian_2d((0u32..bars).into_segmented(), 0u64..y_max)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(shown.len())
            .x_label_formatter(&label)
            .y_desc("targets")
            .light_line_style(GRID)
            .label_style((FONT, 16).into_font().color(&INK))
            .axis_desc_style((FONT, 17).into_font().color(&INK))
            .draw()?;
        chart.draw_series(shown.iter().zip(0u32..).map(|((status, count), i)| {
            let mut bar = Rectangle::new(
                [
                    (SegmentValue::Exact(i), 0),
                    (SegmentValue::Exact(i + 1), *count),
                ],
                status_color(*status).filled(),
            );
            bar.set_margin(0, 0, 14, 14);
            bar
        }))?;
        chart.draw_series(shown.iter().zip(0u32..).map(|((_, count), i)| {
            Text::new(
                count.to_string(),
                (SegmentValue::CenterOf(i), *count),
                count_style.clone(),
            )
        }))?;
        root.present()?;
    }
    Ok(svg)
}

/// A histogram of request latencies.
pub fn latency_chart(bins: &LatencyBins) -> Result<String, DrawError> {
    let bars = u32::try_from(bins.counts.len()).unwrap_or(u32::MAX);
    let peak = bins.counts.iter().copied().max().unwrap_or(0);
    let y_max = (peak as f64 * 1.15).ceil() as u64 + 1;
    let width = bins.width_ms;
    let label = |value: &SegmentValue<u32>| match value {
        SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => format!("{}", i * width),
        SegmentValue::Last => format!("{}", bars * width),
    };

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(60)
            .build_cartesian_2d((0u32..bars).into_segmented(), 0u64..y_max)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(bins.counts.len().min(16))
            .x_label_formatter(&label)
            .x_desc(format!(
                "latency in ms (bins of {width} ms, labelled by their start)"
            ))
            .y_desc("requests")
            .light_line_style(GRID)
            .label_style((FONT, 16).into_font().color(&INK))
            .axis_desc_style((FONT, 17).into_font().color(&INK))
            .draw()?;
        chart.draw_series(bins.counts.iter().zip(0u32..).map(|(count, i)| {
            let mut bar = Rectangle::new(
                [
                    (SegmentValue::Exact(i), 0),
                    (SegmentValue::Exact(i + 1), *count),
                ],
                RATE.filled(),
            );
            bar.set_margin(0, 0, 1, 1);
            bar
        }))?;
        root.present()?;
    }
    Ok(svg)
}

fn status_color(status: TargetStatus) -> RGBColor {
    match status {
        TargetStatus::Verified => RGBColor(0x2c, 0xa0, 0x2c),
        TargetStatus::Unchanged => RGBColor(0x98, 0xdf, 0x8a),
        TargetStatus::Applied => RGBColor(0x1f, 0x77, 0xb4),
        TargetStatus::Planned
        | TargetStatus::Sending
        | TargetStatus::NotApplied
        | TargetStatus::Unprocessed => RGBColor(0xae, 0xc7, 0xe8),
        TargetStatus::Skipped => RGBColor(0xc7, 0xc7, 0xc7),
        TargetStatus::Stale => RGBColor(0xbc, 0xbd, 0x22),
        TargetStatus::Drift => RETRY,
        TargetStatus::Failed | TargetStatus::Unknown => THROTTLED,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use audit::RunId;

    fn request(at_ms: i64, status: Option<u16>, attempt: u32, latency_ms: u32) -> RequestRow {
        RequestRow {
            run_id: RunId::from_stored("r".into()),
            at: UnixMillis::from_millis(at_ms),
            method: "GET".into(),
            route: "/api/v2/conversations/calls/{conversationId}".into(),
            conversation_id: None,
            participant_id: None,
            status,
            latency_ms,
            attempt,
            retry_after_ms: None,
            error_class: None,
            correlation_id: None,
            token_slot: None,
        }
    }

    #[test]
    fn the_trailing_window_counts_each_request_from_its_instant_until_a_window_later() {
        // Window 1 s: requests at 0, 100, 100 and 1500 ms.
        assert_eq!(
            trailing_window_counts(&[0, 100, 100, 1_500], 1_000),
            [
                (0, 1),
                (100, 3),
                (1_000, 2),
                (1_100, 0),
                (1_500, 1),
                (2_500, 0)
            ]
        );
        // In any order.
        assert_eq!(
            trailing_window_counts(&[1_500, 100, 0, 100], 1_000),
            trailing_window_counts(&[0, 100, 100, 1_500], 1_000)
        );
        assert!(trailing_window_counts(&[], 60_000).is_empty());
    }

    #[test]
    fn a_request_arriving_as_another_leaves_makes_no_step() {
        assert_eq!(
            trailing_window_counts(&[0, 1_000, 2_000], 1_000),
            [(0, 1), (3_000, 0)]
        );
    }

    #[test]
    fn a_window_paced_burst_is_counted_whole_in_a_minute_window() {
        // 160 requests sent within 1 s under a 300/min window budget: 160 in the trailing
        // minute, not "160 per second" against 5/s.
        let offsets: Vec<i64> = (0..160).map(|i| i * 6).collect();
        let steps = trailing_window_counts(&offsets, 60_000);
        assert_eq!(steps.iter().map(|(_, c)| *c).max(), Some(160));
        assert_eq!(steps[159], (954, 160));
        assert_eq!(steps.last(), Some(&(60_954, 0)));
    }

    #[test]
    fn the_axis_spans_the_run_however_short_and_marks_sit_on_the_line() {
        let start = UnixMillis::from_millis(10_000);
        let requests = [
            request(10_010, Some(200), 1, 5),
            request(10_020, Some(429), 1, 5),
            request(10_300, Some(200), 2, 5),
        ];
        let series = window_series(
            &requests,
            start,
            UnixMillis::from_millis(10_350),
            Duration::from_secs(60),
        );
        assert_eq!(series.span_ms, 350);
        assert_eq!(series.steps, [(10, 1), (20, 2), (300, 3)]);
        assert_eq!(series.peak(), 3);
        assert_eq!(series.throttled, [(20, 2)]);
        assert_eq!(series.retries, [(300, 3)]);

        // Steps after the run's end (requests leaving the window) are not on the axis; a run
        // still going ends at its last request.
        let series = window_series(&requests, start, start, Duration::from_millis(100));
        assert_eq!(series.span_ms, 300);
        assert_eq!(
            series.steps,
            [(10, 1), (20, 2), (110, 1), (120, 0), (300, 1)]
        );
        let empty = window_series(&[], start, start, DEFAULT_WINDOW);
        assert_eq!((empty.span_ms, empty.peak()), (1, 0));
    }

    #[test]
    fn long_runs_are_drawn_by_column_peaks() {
        let steps: Vec<(i64, u64)> = (0..10_000).map(|i| (i, (i % 7) as u64)).collect();
        let peaks = peaks_per_column(&steps, 9_999, 100);
        assert_eq!(peaks.len(), 100);
        assert!(peaks.iter().all(|(_, peak)| *peak == 6), "{peaks:?}");
        // A value carried into a column from before counts for it.
        let mut expected: Vec<(i64, u64)> = (0..10).map(|i| (i * 100, 5)).collect();
        expected.push((1_000, 0));
        assert_eq!(peaks_per_column(&[(0, 5), (950, 0)], 1_000, 10), expected);
    }

    #[test]
    fn the_budget_is_the_windows_over_every_token_and_even_only_under_even_pacing() {
        let options =
            serde_json::json!({"rate": "300/min", "burst": 5, "pacing": "window", "tokens": 2});
        assert_eq!(
            Budget::of_run(&options, Some(600.0)),
            Some(Budget {
                window: Duration::from_secs(60),
                per_window: 600.0,
                even: None,
            })
        );
        let options = serde_json::json!({"rate": "5/s", "burst": 3, "pacing": "even", "tokens": 2});
        assert_eq!(
            Budget::of_run(&options, Some(600.0)),
            Some(Budget {
                window: Duration::from_secs(1),
                per_window: 10.0,
                even: Some(EvenPace {
                    per_second: 10.0,
                    burst: 6.0,
                }),
            })
        );
        // No rate in the options (older runs, `demo`): the recorded rate per minute, paced by
        // window; nothing recorded, no budget.
        assert_eq!(
            Budget::of_run(&serde_json::json!({"rate": "auto"}), Some(287.5)),
            Some(Budget {
                window: Duration::from_secs(60),
                per_window: 287.5,
                even: None,
            })
        );
        assert_eq!(Budget::of_run(&serde_json::Value::Null, None), None);
    }

    #[test]
    fn even_pacing_lets_through_its_burst_then_its_rate_until_the_window_is_full() {
        let pace = EvenPace {
            per_second: 5.0,
            burst: 2.0,
        };
        let minute = Duration::from_secs(60);
        assert_eq!(even_envelope(pace, minute, 0.0), 2.0);
        assert_eq!(even_envelope(pace, minute, 10.0), 52.0);
        assert_eq!(even_envelope(pace, minute, 600.0), 302.0);
    }

    #[test]
    fn latency_bins_have_readable_widths_and_count_every_request() {
        let bins = latency_bins(&[0, 3, 9, 10, 47]);
        assert_eq!(bins.width_ms, 2);
        assert_eq!(bins.counts.iter().sum::<u64>(), 5);
        assert_eq!(bins.counts[0], 1);
        assert_eq!(bins.counts[1], 1);
        assert_eq!(bins.counts[4], 1);
        assert_eq!(bins.counts[5], 1);
        assert_eq!(bins.counts[23], 1);
        assert_eq!(latency_bins(&[]).counts, [0]);
        assert_eq!(round_up_to_1_2_5(3), 5);
        assert_eq!(round_up_to_1_2_5(11), 20);
        assert_eq!(round_up_to_1_2_5(50), 50);
    }

    #[test]
    fn charts_are_svg_with_their_labels_as_text() {
        let requests = [
            request(100, Some(200), 1, 12),
            request(900, Some(429), 1, 30),
        ];
        let series = window_series(
            &requests,
            UnixMillis::from_millis(0),
            UnixMillis::from_millis(950),
            DEFAULT_WINDOW,
        );
        let window_paced = Budget::of_run(
            &serde_json::json!({"rate": "300/min", "pacing": "window"}),
            None,
        );
        let rate = rate_chart(&series, window_paced.as_ref()).unwrap();
        assert!(rate.starts_with("<svg"), "{rate}");
        assert!(rate.contains("budget 300 per minute") && rate.contains("429 throttled"));
        assert!(rate.contains("requests in the trailing minute"));
        assert!(
            !rate.contains("even pacing") && !rate.contains("budget 5.0/s"),
            "{rate}"
        );
        let even_paced = Budget::of_run(
            &serde_json::json!({"rate": "300/min", "pacing": "even", "burst": 5}),
            None,
        );
        let rate = rate_chart(&series, even_paced.as_ref()).unwrap();
        assert!(rate.contains("budget 300 per minute"));
        assert!(
            rate.contains("even pacing 5.0/s after a burst of 5"),
            "{rate}"
        );
        assert!(!rate_chart(&series, None).unwrap().contains("budget"));

        let mut counts = StatusCounts::default();
        counts.add(TargetStatus::Verified, 7);
        counts.add(TargetStatus::Drift, 2);
        let outcomes = outcomes_chart(&counts).unwrap();
        // plotters writes each text on a line of its own.
        assert!(outcomes.contains("\nverified\n") && outcomes.contains("\ndrift\n"));
        assert!(!outcomes.contains("\nskipped\n"));

        let latency = latency_chart(&latency_bins(&[12, 30])).unwrap();
        assert!(latency.contains("<rect"));
    }
}
