//! The SVG charts of `audit report`, drawn with plotters' SVG backend. Their text is SVG
//! `<text>` that the browser lays out, so neither the build nor the report needs a font file.
//!
//! Data preparation (`rate_series`, `latency_bins`) is separate from drawing so it can be tested
//! with exact numbers.

use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use audit::{RequestRow, StatusCounts, TargetStatus, UnixMillis};

const WIDTH: u32 = 960;
const HEIGHT: u32 = 320;
/// At most this many buckets on the rate line: longer runs get wider buckets.
const MAX_RATE_BUCKETS: i64 = 300;
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

/// Requests per second over a run, in buckets of whole seconds, with the 429s and retries
/// placed on the same line.
#[derive(Debug, Clone, PartialEq)]
pub struct RateSeries {
    pub bucket_secs: i64,
    /// `(bucket start in seconds since the run started, requests per second in the bucket)`.
    pub rates: Vec<(f64, f64)>,
    /// `(seconds since start, rate of its bucket)` of every 429 response.
    pub throttled: Vec<(f64, f64)>,
    /// `(seconds since start, rate of its bucket)` of every attempt after the first.
    pub retries: Vec<(f64, f64)>,
}

impl RateSeries {
    /// The end of the last bucket, in seconds.
    pub fn span_secs(&self) -> f64 {
        (self.rates.len() as i64 * self.bucket_secs) as f64
    }

    pub fn peak(&self) -> f64 {
        self.rates.iter().map(|(_, rate)| *rate).fold(0.0, f64::max)
    }
}

/// Buckets `requests` (in time order or not) by time since `start`.
pub fn rate_series(requests: &[RequestRow], start: UnixMillis) -> RateSeries {
    let offset_ms = |at: UnixMillis| (at.as_millis() - start.as_millis()).max(0);
    let last_ms = requests
        .iter()
        .map(|request| offset_ms(request.at))
        .max()
        .unwrap_or(0);
    let spanned_secs = last_ms / 1000 + 1;
    let bucket_secs = ((spanned_secs + MAX_RATE_BUCKETS - 1) / MAX_RATE_BUCKETS).max(1);
    let bucket_ms = bucket_secs * 1000;
    let bucket_of = |at: UnixMillis| usize::try_from(offset_ms(at) / bucket_ms).unwrap_or(0);

    let mut counts = vec![0u64; usize::try_from(last_ms / bucket_ms).unwrap_or(0) + 1];
    for request in requests {
        counts[bucket_of(request.at)] += 1;
    }
    let rate = |bucket: usize| counts[bucket] as f64 / bucket_secs as f64;
    let mark = |request: &RequestRow| {
        (
            offset_ms(request.at) as f64 / 1000.0,
            rate(bucket_of(request.at)),
        )
    };
    RateSeries {
        bucket_secs,
        rates: (0..counts.len())
            .map(|bucket| ((bucket as i64 * bucket_secs) as f64, rate(bucket)))
            .collect(),
        throttled: requests
            .iter()
            .filter(|request| request.status == Some(429))
            .map(mark)
            .collect(),
        retries: requests
            .iter()
            .filter(|request| request.attempt > 1)
            .map(mark)
            .collect(),
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

/// Requests per second as a step line, the budget as a flat line, 429s as red crosses and
/// retries as orange triangles on the rate line.
pub fn rate_chart(series: &RateSeries, budget_per_second: Option<f64>) -> anyhow::Result<String> {
    let x_max = series.span_secs();
    let y_max = (series.peak().max(budget_per_second.unwrap_or(0.0)) * 1.15).max(1.0);
    let steps: Vec<(f64, f64)> = series
        .rates
        .iter()
        .flat_map(|&(start, rate)| [(start, rate), (start + series.bucket_secs as f64, rate)])
        .collect();

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
            .x_desc(if series.bucket_secs == 1 {
                "seconds since the run started".to_owned()
            } else {
                format!(
                    "seconds since the run started ({} s buckets)",
                    series.bucket_secs
                )
            })
            .y_desc("requests per second")
            .light_line_style(GRID)
            .label_style((FONT, 16).into_font().color(&INK))
            .axis_desc_style((FONT, 17).into_font().color(&INK))
            .draw()?;
        chart
            .draw_series(LineSeries::new(steps, RATE.stroke_width(2)))?
            .label("requests/s")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], RATE.stroke_width(2)));
        if let Some(budget) = budget_per_second {
            chart
                .draw_series(LineSeries::new(
                    [(0.0, budget), (x_max, budget)],
                    BUDGET.stroke_width(2),
                ))?
                .label(format!("budget {budget:.1}/s"))
                .legend(|(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], BUDGET.stroke_width(2))
                });
        }
        if !series.retries.is_empty() {
            chart
                .draw_series(
                    series
                        .retries
                        .iter()
                        .map(|&point| TriangleMarker::new(point, 6, RETRY.filled())),
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
                        .map(|&point| Cross::new(point, 5, THROTTLED.stroke_width(2))),
                )?
                .label("429 throttled")
                .legend(|(x, y)| Cross::new((x + 9, y), 5, THROTTLED.stroke_width(2)));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
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
pub fn outcomes_chart(counts: &StatusCounts) -> anyhow::Result<String> {
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
pub fn latency_chart(bins: &LatencyBins) -> anyhow::Result<String> {
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
    fn rate_buckets_count_requests_per_second_since_the_start() {
        let start = UnixMillis::from_millis(10_000);
        let requests = [
            request(10_100, Some(200), 1, 5),
            request(10_900, Some(429), 1, 5),
            request(12_500, Some(200), 2, 5),
        ];
        let series = rate_series(&requests, start);
        assert_eq!(series.bucket_secs, 1);
        assert_eq!(series.rates, [(0.0, 2.0), (1.0, 0.0), (2.0, 1.0)]);
        assert_eq!(series.throttled, [(0.9, 2.0)]);
        assert_eq!(series.retries, [(2.5, 1.0)]);
        assert_eq!(series.span_secs(), 3.0);
        assert_eq!(series.peak(), 2.0);
    }

    #[test]
    fn long_runs_get_wider_buckets_and_rates_stay_per_second() {
        let requests: Vec<RequestRow> = (0..=1000)
            .map(|second| request(second * 1000, Some(200), 1, 5))
            .collect();
        let series = rate_series(&requests, UnixMillis::from_millis(0));
        assert_eq!(series.bucket_secs, 4);
        assert!(series.rates.len() <= MAX_RATE_BUCKETS as usize);
        assert_eq!(series.rates[0], (0.0, 1.0));
    }

    #[test]
    fn an_empty_timeline_is_one_empty_bucket() {
        let series = rate_series(&[], UnixMillis::from_millis(5));
        assert_eq!(series.rates, [(0.0, 0.0)]);
        assert!(series.throttled.is_empty() && series.retries.is_empty());
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
        let rate = rate_chart(
            &rate_series(&requests, UnixMillis::from_millis(0)),
            Some(5.0),
        )
        .unwrap();
        assert!(rate.starts_with("<svg"), "{rate}");
        assert!(rate.contains("budget 5.0/s") && rate.contains("429 throttled"));

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
