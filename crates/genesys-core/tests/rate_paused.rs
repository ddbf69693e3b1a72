//! The limiter's timing on tokio's paused clock: what the end-to-end rate tests
//! (tests/e2e/rate.rs) would otherwise have to judge by the wall clock (requests sent at once,
//! never more than the budget in a window, a cut learned in the first window) is checked here,
//! through the public API only, against a server's sliding window like the simulator's, exactly
//! and whatever the machine's load. The end-to-end tests keep what the server counted: the
//! requests, and the 429s.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use genesys_core::rate::{Pacing, RateLimiter, RateSpec};
use tokio::time::Instant;

const MAX_WAIT: Duration = Duration::from_secs(180);

/// The binary's default `--concurrency`.
const CONCURRENCY: usize = 16;

/// A server's window as the simulator's `LimitShape::Window`: at most `budget` admitted in any
/// trailing `window`; a refusal says the whole seconds (rounded up, at least 1) until the oldest
/// admitted request leaves it. A refused request is not counted.
struct ServerWindow {
    budget: usize,
    window: Duration,
    admitted: VecDeque<Instant>,
}

impl ServerWindow {
    fn new(budget: usize, window: Duration) -> Self {
        Self {
            budget,
            window,
            admitted: VecDeque::new(),
        }
    }

    fn check(&mut self, now: Instant) -> Result<(), Duration> {
        while self
            .admitted
            .front()
            .is_some_and(|at| *at + self.window <= now)
        {
            self.admitted.pop_front();
        }
        if self.admitted.len() >= self.budget {
            let wait = self.admitted[0] + self.window - now;
            let whole = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            return Err(Duration::from_secs(whole.max(1)));
        }
        self.admitted.push_back(now);
        Ok(())
    }
}

/// What the server saw of a job: each attempt's arrival (since the job began) and whether it
/// was refused; and when the job's last answer came back.
struct Job {
    arrivals: Vec<(Duration, bool)>,
    wall: Duration,
}

impl Job {
    fn refused(&self) -> usize {
        self.arrivals.iter().filter(|(_, refused)| *refused).count()
    }

    fn admitted(&self) -> Vec<Duration> {
        self.arrivals
            .iter()
            .filter(|(_, refused)| !refused)
            .map(|(at, _)| *at)
            .collect()
    }
}

/// The most of `times` in any trailing `window`.
fn most_in_any_window(times: &[Duration], window: Duration) -> usize {
    let mut sorted = times.to_vec();
    sorted.sort_unstable();
    (0..sorted.len())
        .map(|i| sorted[i..].partition_point(|t| *t < sorted[i] + window))
        .max()
        .unwrap_or(0)
}

/// `requests` requests, [`CONCURRENCY`] at a time, through `limiter` to `server`, as the client
/// sends them: each admitted by the limiter, `latency(n)` on its way to the server (`n` counts
/// attempts) and as long back; a 429 pauses the token for its `Retry-After` (see
/// `RateLimiter::on_throttled`) and the request goes again.
async fn send_job(
    limiter: &Arc<RateLimiter>,
    server: ServerWindow,
    requests: usize,
    latency: fn(usize) -> Duration,
) -> Job {
    let start = Instant::now();
    let server = Arc::new(Mutex::new((server, Vec::new())));
    let remaining = Arc::new(AtomicUsize::new(requests));
    let attempts = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (limiter, server, remaining, attempts) = (
                Arc::clone(limiter),
                Arc::clone(&server),
                Arc::clone(&remaining),
                Arc::clone(&attempts),
            );
            tokio::spawn(async move {
                while remaining
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok()
                {
                    loop {
                        let admission = limiter.acquire().await.expect("never set aside");
                        let way = latency(attempts.fetch_add(1, Ordering::SeqCst));
                        tokio::time::sleep(way).await;
                        let verdict = {
                            let mut guard = server.lock().unwrap();
                            let (server, log) = &mut *guard;
                            let now = Instant::now();
                            let verdict = server.check(now);
                            log.push((now - start, verdict.is_err()));
                            verdict
                        };
                        tokio::time::sleep(way).await;
                        match verdict {
                            Ok(()) => {
                                limiter.on_answered(admission.instant);
                                break;
                            }
                            Err(retry_after) => {
                                limiter.on_throttled(
                                    admission.instant,
                                    Some(retry_after),
                                    retry_after,
                                    MAX_WAIT,
                                );
                            }
                        }
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    let arrivals = std::mem::take(&mut server.lock().unwrap().1);
    Job {
        arrivals,
        wall: start.elapsed(),
    }
}

fn window_limiter(rate: &str) -> Arc<RateLimiter> {
    Arc::new(RateLimiter::new(rate.parse().unwrap(), Pacing::Window))
}

fn twenty_ms(_: usize) -> Duration {
    Duration::from_millis(20)
}

/// e2e `a_job_that_fits_the_window_is_sent_at_once_without_a_429`: 10 calls (30 requests) with
/// `--rate 300/min` against a window of 300 a minute.
#[tokio::test(start_paused = true)]
async fn a_job_that_fits_the_window_is_sent_at_once() {
    let limiter = window_limiter("300/min");
    let job = send_job(
        &limiter,
        ServerWindow::new(300, Duration::from_secs(60)),
        30,
        twenty_ms,
    )
    .await;
    assert_eq!(job.arrivals.len(), 30);
    assert_eq!(job.refused(), 0);
    // Even pacing would space them 200 ms apart (at most 5 in a second, 5.8 s in all); the
    // window budget sends them as fast as they are answered (slow start's rounds of 4, 8, 16:
    // a few round trips).
    let admitted = job.admitted();
    assert!(
        most_in_any_window(&admitted, Duration::from_secs(1)) > 10,
        "requests were paced, not sent at once: {admitted:?}"
    );
    assert!(job.wall < Duration::from_secs(1), "{:?}", job.wall);
}

/// e2e `a_job_longer_than_a_window_never_exceeds_the_budget_in_any_window`: 12 calls (36
/// requests), `--rate 10/2s` against a window of 10 per 2 s, each request's way taking between
/// 20 and 79 ms (a spread below the limiter's margin).
#[tokio::test(start_paused = true)]
async fn a_job_longer_than_a_window_never_exceeds_the_budget_in_any_window() {
    let limiter = window_limiter("10/2s");
    let window = Duration::from_secs(2);
    let job = send_job(&limiter, ServerWindow::new(10, window), 36, |n| {
        Duration::from_millis(20 + (n as u64 * 37) % 60)
    })
    .await;
    assert_eq!(job.arrivals.len(), 36, "never a 429, never a retry");
    assert_eq!(job.refused(), 0);
    let admitted = job.admitted();
    assert!(most_in_any_window(&admitted, window) <= 10, "{admitted:?}");
    // Nor slower than it must: four windows' budgets, three waits of a window and its margin.
    assert!(
        job.wall < limiter.window_span() * 3 + Duration::from_secs(1),
        "{:?}",
        job.wall
    );
}

/// e2e `rate_auto_spends_the_orgs_own_budget_and_never_more`: the org allows 600 a minute,
/// read before the first request; 110 calls (331 requests, the limits lookup included) fit its
/// window, not Genesys's default 300.
#[tokio::test(start_paused = true)]
async fn a_rate_read_from_the_org_is_a_window_budget_spent_at_once() {
    let window = Duration::from_secs(60);
    let limiter = Arc::new(RateLimiter::new(RateSpec::GENESYS_DEFAULT, Pacing::Window));
    limiter.set_configured_rate(RateSpec::new(600, window).unwrap());
    let job = send_job(&limiter, ServerWindow::new(600, window), 331, twenty_ms).await;
    assert_eq!(job.refused(), 0);
    let admitted = job.admitted();
    assert_eq!(admitted.len(), 331);
    assert!(most_in_any_window(&admitted, window) <= 600);
    assert!(
        most_in_any_window(&admitted, window) > 300,
        "the org's budget was not used"
    );

    // The default budget would have held the last 31 back for a window.
    let default = window_limiter("300/min");
    let job = send_job(&default, ServerWindow::new(600, window), 331, twenty_ms).await;
    assert_eq!(job.refused(), 0);
    assert_eq!(most_in_any_window(&job.admitted(), window), 300);
    assert!(job.wall > window, "{:?}", job.wall);
}

/// e2e `a_rate_four_times_the_servers_is_cut_to_what_the_server_allows`: 12 calls (36
/// requests), `--rate 48/8s` against a window of 12 per 8 s.
#[tokio::test(start_paused = true)]
async fn a_rate_four_times_the_servers_is_cut_in_the_first_window() {
    let limiter = window_limiter("48/8s");
    let window = Duration::from_secs(8);
    let job = send_job(&limiter, ServerWindow::new(12, window), 36, twenty_ms).await;
    assert_eq!(job.admitted().len(), 36);
    assert!(
        limiter.state().budget <= 12,
        "cut to what the server allows: {:?}",
        limiter.state()
    );
    // The first window teaches it; afterwards few requests are refused.
    let later: Vec<_> = job
        .arrivals
        .iter()
        .filter(|(at, _)| *at >= window * 2)
        .collect();
    let later_refused = later.iter().filter(|(_, refused)| *refused).count();
    assert!(
        later_refused * 5 <= later.len().max(1),
        "{later_refused} of {} requests refused after the first windows",
        later.len()
    );
}

/// What a progress display names instead of a silent wait: a request waiting for the window,
/// and when it may start (the window's end plus the limiter's margin; it then does).
#[tokio::test(start_paused = true)]
async fn a_request_waiting_for_the_window_says_when_it_may_start() {
    let limiter = window_limiter("2/min");
    let start = Instant::now();
    limiter.acquire().await.unwrap();
    limiter.acquire().await.unwrap();
    assert_eq!(limiter.waiting(), None, "nothing waits yet");
    let waiter = {
        let limiter = Arc::clone(&limiter);
        tokio::spawn(async move { limiter.acquire().await.map(|_| Instant::now()) })
    };
    tokio::task::yield_now().await;
    let (waiting, until) = limiter.waiting().expect("the third request waits");
    assert_eq!(waiting, 1);
    assert!(
        until >= start + Duration::from_secs(60) && until <= start + Duration::from_secs(62),
        "{:?}",
        until - start
    );
    let started = waiter.await.unwrap().unwrap();
    assert_eq!(started, until, "it started when it was said to");
    assert_eq!(limiter.waiting(), None);
}
