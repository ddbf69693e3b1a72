//! The service surface of long-running commands (`tag --follow`, `reconcile --follow`,
//! `reconcile --every`) behind `--listen ADDR`: `GET /metrics` for a Prometheus scrape and
//! `GET /healthz` for an orchestrator's probe. Nothing else is served (any other path is a 404).
//!
//! The server holds no state of its own: each request asks the command, through the two shared
//! handles, for the exposition text of the moment and for its health.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Yields the current metrics in the Prometheus text format ([`super::metrics::encode`] of the
/// command's registry, e.g. [`super::metrics::render_follow`]), made when scraped.
pub type MetricsSource = Arc<dyn Fn() -> String + Send + Sync>;

/// Yields the command's health: `Ok`, or why it is not healthy (said in the 503's body).
pub type HealthSource = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// Binds `addr` (port 0: any free port) and serves `/metrics` and `/healthz` on a task of its
/// own until that task is aborted or the runtime ends. Returns the bound address and the task,
/// whose output is the server's error, if it fails.
pub async fn serve(
    addr: SocketAddr,
    metrics: MetricsSource,
    health: HealthSource,
) -> io::Result<(SocketAddr, JoinHandle<io::Result<()>>)> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(healthz))
        .with_state(Sources { metrics, health });
    let task = tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((bound, task))
}

/// [`serve`] for a command: `cannot listen on ADDR` when the address cannot be bound, the
/// address in the log, and the server ended with the command (when the returned value is
/// dropped).
pub async fn listen(
    addr: SocketAddr,
    metrics: MetricsSource,
    health: HealthSource,
) -> Result<Serving, ListenError> {
    let (bound, task) = serve(addr, metrics, health)
        .await
        .map_err(|source| ListenError { addr, source })?;
    tracing::info!("serving /metrics and /healthz on http://{bound}");
    Ok(Serving(task))
}

/// `--listen ADDR` could not be served.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr}")]
pub struct ListenError {
    pub addr: SocketAddr,
    #[source]
    pub source: io::Error,
}

/// A server of [`listen`]: it stops when this is dropped.
pub struct Serving(JoinHandle<io::Result<()>>);

impl Drop for Serving {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[derive(Clone)]
struct Sources {
    metrics: MetricsSource,
    health: HealthSource,
}

async fn metrics_text(State(sources): State<Sources>) -> Response {
    (
        [(header::CONTENT_TYPE, super::metrics::CONTENT_TYPE)],
        (sources.metrics)(),
    )
        .into_response()
}

async fn healthz(State(sources): State<Sources>) -> Response {
    let plain = [(header::CONTENT_TYPE, "text/plain; charset=utf-8")];
    match (sources.health)() {
        Ok(()) => (StatusCode::OK, plain, "ok\n".to_owned()).into_response(),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            plain,
            format!("{reason}\n"),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::service::metrics::{FollowMetrics, render_follow};

    fn client() -> reqwest::Client {
        // reqwest is built without a TLS provider; its builder needs one even for http.
        let _ = rustls::crypto::ring::default_provider().install_default();
        reqwest::Client::new()
    }

    fn follow(calls_seen: u64) -> FollowMetrics {
        FollowMetrics {
            updated_at: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            running_for: Duration::from_secs(5),
            calls_seen,
            tagged: 0,
            verified_by_event: 0,
            verified_by_read: 0,
            skipped: 0,
            failed: 0,
            drift: 0,
            reconnects: 0,
            source_versions_applied: 0,
            source_versions_refused: 0,
            tracked_calls: 0,
            requests: 0,
            throttled: 0,
            event_lag_seconds: None,
            exit_code: None,
        }
    }

    fn local() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 0))
    }

    #[tokio::test]
    async fn metrics_are_the_current_exposition_text_at_each_scrape() {
        let seen = Arc::new(AtomicU64::new(3));
        let metrics: MetricsSource = {
            let seen = seen.clone();
            Arc::new(move || render_follow(&follow(seen.load(Ordering::SeqCst))))
        };
        let (addr, server) = serve(local(), metrics, Arc::new(|| Ok(()))).await.unwrap();
        assert_ne!(addr.port(), 0, "the bound port is returned");
        let client = client();
        let url = format!("http://{addr}/metrics");

        let response = client.get(&url).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()[reqwest::header::CONTENT_TYPE],
            "text/plain; version=0.0.4; charset=utf-8"
        );
        let text = response.text().await.unwrap();
        assert!(
            text.contains("# TYPE attrsync_follow_calls_seen_total counter\nattrsync_follow_calls_seen_total 3\n"),
            "{text}"
        );

        seen.store(7, Ordering::SeqCst);
        let text = client.get(&url).send().await.unwrap().text().await.unwrap();
        assert!(
            text.contains("attrsync_follow_calls_seen_total 7\n"),
            "{text}"
        );
        server.abort();
    }

    #[tokio::test]
    async fn healthz_is_ok_or_503_with_the_reason() {
        let health_now: Arc<Mutex<Result<(), String>>> = Arc::new(Mutex::new(Ok(())));
        let health: HealthSource = {
            let health_now = health_now.clone();
            Arc::new(move || health_now.lock().unwrap().clone())
        };
        let (addr, server) = serve(local(), Arc::new(String::new), health).await.unwrap();
        let client = client();
        let url = format!("http://{addr}/healthz");

        let response = client.get(&url).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.text().await.unwrap(), "ok\n");

        *health_now.lock().unwrap() = Err("no notification event for 120 s".to_owned());
        let response = client.get(&url).send().await.unwrap();
        assert_eq!(response.status(), 503);
        assert_eq!(
            response.text().await.unwrap(),
            "no notification event for 120 s\n"
        );

        let other = client.get(format!("http://{addr}/")).send().await.unwrap();
        assert_eq!(other.status(), 404, "nothing else is served");
        server.abort();
    }

    #[tokio::test]
    async fn an_address_in_use_is_an_error() {
        let taken = TcpListener::bind(local()).await.unwrap();
        let addr = taken.local_addr().unwrap();
        let err = serve(addr, Arc::new(String::new), Arc::new(|| Ok(())))
            .await
            .expect_err("the port is taken");
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    }
}
