//! Serving: the router, a hyper accept loop that can drop single connections, graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, head, patch, post};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tower_service::Service;

use crate::config::SimConfig;
use crate::middleware::{ConnectionDropper, PeerAddr, api_gate, edge};
use crate::state::SimState;
use crate::{admin, analytics, api, driver, notifications, oauth, routing, socket};

#[cfg(feature = "tls")]
type Tls = crate::tls::SimTls;
/// Without the `tls` feature no simulator serves TLS: the type has no value.
#[cfg(not(feature = "tls"))]
#[derive(Clone, Debug)]
enum Tls {}

/// The simulator's TLS, when its config asks for it.
fn tls_for(config: &SimConfig) -> std::io::Result<Option<Tls>> {
    if !config.tls {
        return Ok(None);
    }
    #[cfg(feature = "tls")]
    return crate::tls::generate().map(Some);
    #[cfg(not(feature = "tls"))]
    Err(std::io::Error::other(
        "this simulator was built without its `tls` feature",
    ))
}

/// The simulator; see [`Simulator::start`].
#[derive(Debug)]
pub struct Simulator;

impl Simulator {
    /// Generates the org from `config` and serves it on `bind` (port 0 picks a free port).
    pub async fn start(config: SimConfig, bind: SocketAddr) -> std::io::Result<SimHandle> {
        let tls = tls_for(&config)?;
        let listener = TcpListener::bind(bind).await?;
        let addr = listener.local_addr()?;
        let state = SimState::new(&config, addr);
        let router = router(state.clone());
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        tokio::spawn(driver::run(state.clone(), shutdown_rx.clone()));
        let server = tokio::spawn(accept_loop(listener, router, tls.clone(), shutdown_rx));
        tracing::debug!(%addr, ?config, "genesys simulator listening");
        Ok(SimHandle {
            addr,
            tls,
            state,
            shutdown_tx,
            server: Some(server),
        })
    }
}

/// A running simulator. Dropping it stops accepting connections; [`SimHandle::shutdown`] also
/// waits for requests in flight.
#[derive(Debug)]
pub struct SimHandle {
    addr: SocketAddr,
    tls: Option<Tls>,
    state: SimState,
    shutdown_tx: watch::Sender<bool>,
    server: Option<tokio::task::JoinHandle<()>>,
}

impl SimHandle {
    /// `http://127.0.0.1:PORT` (`https://` when serving TLS): the API and the token endpoint
    /// share this origin.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// The PEM certificate of the test CA that signed the simulator's certificate (with
    /// [`SimConfig::tls`]): what a client under test is told to trust.
    pub fn ca_cert_pem(&self) -> Option<&str> {
        #[cfg(feature = "tls")]
        return self.tls.as_ref().map(|tls| tls.ca_pem.as_str());
        #[cfg(not(feature = "tls"))]
        None
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The first configured client (the demo client by default).
    pub fn demo_credentials(&self) -> (String, String) {
        self.state.demo_credentials().unwrap_or_default()
    }

    /// In-process access to the simulator's state (the same data as `/__sim/`).
    pub fn state(&self) -> SimState {
        self.state.clone()
    }

    /// Stops accepting, lets requests in flight finish, closes idle connections.
    pub async fn shutdown(mut self) {
        self.shutdown_tx.send_replace(true);
        self.state.close_sockets();
        if let Some(server) = self.server.take()
            && let Err(error) = server.await
        {
            tracing::warn!(%error, "simulator server task failed");
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.shutdown_tx.send_replace(true);
        self.state.close_sockets();
    }
}

fn router(state: SimState) -> Router {
    let api = Router::new()
        .route("/conversations/calls/{conversation_id}", get(api::get_call))
        .route(
            "/conversations/{conversation_id}",
            get(api::get_conversation),
        )
        .route(
            "/conversations/calls/{conversation_id}/participants/{participant_id}/attributes",
            patch(api::patch_call_participant_attributes),
        )
        .route(
            "/conversations/{conversation_id}/participants/{participant_id}/attributes",
            patch(api::patch_participant_attributes),
        )
        .route(
            "/organizations/limits/namespaces/{namespace_name}",
            get(api::get_org_limits),
        )
        .route("/routing/queues", get(routing::list_queues))
        .route("/routing/queues/{queue_id}", get(routing::get_queue))
        .route(
            "/analytics/conversations/details/query",
            post(analytics::query_conversation_details),
        )
        .route(
            "/analytics/conversations/details",
            get(analytics::get_conversation_details),
        )
        .route(
            "/notifications/channels",
            post(notifications::create_channel),
        )
        .route(
            "/notifications/channels/{channel_id}",
            head(notifications::head_channel),
        )
        .route(
            "/notifications/channels/{channel_id}/subscriptions",
            get(notifications::list_subscriptions)
                .post(notifications::add_subscriptions)
                .put(notifications::replace_subscriptions)
                .delete(notifications::delete_subscriptions),
        )
        .fallback(api::unknown_route)
        .layer(from_fn_with_state(state.clone(), api_gate));
    Router::new()
        .nest("/api/v2", api)
        .route("/oauth/token", post(oauth::issue_token))
        .nest("/__sim", admin::routes())
        .fallback(api::unknown_route)
        .layer(from_fn_with_state(state.clone(), edge))
        // After the edge layer: a socket is not an API request (not logged, held or faulted).
        .route("/channels/{channel_id}", get(socket::connect))
        .with_state(state)
}

async fn accept_loop(
    listener: TcpListener,
    router: Router,
    tls: Option<Tls>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    let connection_shutdown = shutdown.clone();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve(stream, tls.clone(), router.clone(), connection_shutdown.clone()));
                }
                Err(error) => tracing::warn!(%error, "simulator accept failed"),
            },
            _ = shutdown.wait_for(|stop| *stop) => break,
        }
        // Reap finished connections so the set does not grow without bound.
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

/// One accepted connection: its TLS handshake first, when the simulator serves TLS.
async fn serve(
    stream: TcpStream,
    tls: Option<Tls>,
    router: Router,
    shutdown: watch::Receiver<bool>,
) {
    let peer = stream.peer_addr().ok();
    let Some(tls) = tls else {
        return serve_connection(stream, peer, router, shutdown).await;
    };
    #[cfg(feature = "tls")]
    {
        // Bounded, so that a client that never finishes its handshake holds no task for long.
        let handshake = tls.acceptor.accept(stream);
        match tokio::time::timeout(std::time::Duration::from_secs(10), handshake).await {
            Ok(Ok(stream)) => serve_connection(stream, peer, router, shutdown).await,
            Ok(Err(error)) => tracing::debug!(%error, "simulator TLS handshake failed"),
            Err(_) => tracing::debug!("simulator TLS handshake timed out"),
        }
    }
    #[cfg(not(feature = "tls"))]
    match tls {}
}

async fn serve_connection<S>(
    stream: S,
    peer: Option<SocketAddr>,
    router: Router,
    mut shutdown: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let dropper = Arc::new(Notify::new());
    let service_dropper = dropper.clone();
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let mut request = request.map(Body::new);
        request
            .extensions_mut()
            .insert(ConnectionDropper(service_dropper.clone()));
        if let Some(peer) = peer {
            request.extensions_mut().insert(PeerAddr(peer));
        }
        let mut router = router.clone();
        async move { router.call(request).await }
    });
    // With upgrades: a channel's WebSocket is served on the same origin.
    let connection = http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(connection);
    let mut shutting_down = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, "simulator connection ended with an error");
                }
                return;
            }
            // A `drop_rate` fault: returning drops the connection (and the socket) unanswered.
            () = dropper.notified() => return,
            _ = shutdown.wait_for(|stop| *stop), if !shutting_down => {
                shutting_down = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}
