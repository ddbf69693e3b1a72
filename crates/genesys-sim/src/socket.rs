//! A channel's WebSocket at its `connectUri` (`/channels/{id}`, outside `/api/v2`: like Genesys's
//! streaming host it takes no bearer token, the channel id is the credential). One socket per
//! channel; it sends what the bus gives it, a `channel.metadata` heartbeat every
//! `heartbeat_interval` (real time), and a `pong` for a client's `{"message":"ping"}`.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use genesys_models::notifications::{HEARTBEAT_MESSAGE, METADATA_TOPIC, MetadataMessage};
use tokio::sync::mpsc;
use tokio::time::{Instant, Interval, MissedTickBehavior};

use crate::bus::{Outgoing, envelope};
use crate::state::SimState;

/// How long a closing socket waits for the client's close frame before dropping the connection.
const CLOSE_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(1);

/// `GET /channels/{channelId}` with an upgrade: 404 for no such channel (expired or evicted).
pub(crate) async fn connect(
    State(state): State<SimState>,
    Path(channel_id): Path<String>,
    upgrade: WebSocketUpgrade,
) -> Response {
    // Attached before the 101 is sent, so an event published once the client sees the
    // handshake complete is already queued for this socket.
    let Some((socket_id, outbox)) = state.attach_socket(&channel_id) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let failed_state = state.clone();
    let failed_channel = channel_id.clone();
    upgrade
        .on_failed_upgrade(move |_| failed_state.detach_socket(&failed_channel, socket_id))
        .on_upgrade(move |socket| serve(socket, state, channel_id, socket_id, outbox))
}

/// How a socket's life ends.
enum Ending {
    /// With a close frame (and the client's answer, if it comes).
    Close,
    /// The connection just goes (a dropped connection, or the client went first).
    Drop,
}

async fn serve(
    mut socket: WebSocket,
    state: SimState,
    channel_id: String,
    socket_id: u64,
    mut outbox: mpsc::UnboundedReceiver<Outgoing>,
) {
    let mut heartbeat = heartbeat(state.heartbeat_interval());
    let ending = loop {
        tokio::select! {
            command = outbox.recv() => match command {
                Some(Outgoing::Text(text)) => {
                    if send(&mut socket, &text).await.is_err() {
                        break Ending::Drop;
                    }
                }
                Some(Outgoing::Closing(text)) => {
                    let _ = send(&mut socket, &text).await;
                    break Ending::Close;
                }
                Some(Outgoing::Close) | None => break Ending::Close,
                Some(Outgoing::Drop) => break Ending::Drop,
                Some(Outgoing::Stall) => {
                    // Holds the connection, reading nothing (so not even protocol pings are
                    // answered), until the simulator stops.
                    while let Some(command) = outbox.recv().await {
                        if matches!(command, Outgoing::Drop | Outgoing::Close) {
                            break;
                        }
                    }
                    break Ending::Drop;
                }
            },
            () = tick(&mut heartbeat) => {
                let beat = envelope(METADATA_TOPIC, serde_json::json!({"message": HEARTBEAT_MESSAGE}));
                if send(&mut socket, &beat).await.is_err() {
                    break Ending::Drop;
                }
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    if is_ping(text.as_str()) {
                        let pong = envelope(METADATA_TOPIC, serde_json::json!({"message": "pong"}));
                        if send(&mut socket, &pong).await.is_err() {
                            break Ending::Drop;
                        }
                    }
                }
                // Protocol pings are answered by the WebSocket layer itself.
                Some(Ok(Message::Binary(_) | Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Close(_)) | Err(_)) | None => break Ending::Drop,
            },
        }
    };
    // Detached first, so that nothing more is queued for a socket on its way out.
    state.detach_socket(&channel_id, socket_id);
    if let Ending::Close = ending {
        close(socket).await;
    }
    // Dropping the socket closes the TCP connection; for `Ending::Drop` without a close frame.
}

async fn send(socket: &mut WebSocket, text: &str) -> Result<(), axum::Error> {
    socket.send(Message::Text(text.into())).await
}

/// Sends a close frame and waits briefly for the client's, as the closing handshake wants.
async fn close(mut socket: WebSocket) {
    let frame = CloseFrame {
        code: axum::extract::ws::close_code::NORMAL,
        reason: "".into(),
    };
    if socket.send(Message::Close(Some(frame))).await.is_err() {
        return;
    }
    let _ = tokio::time::timeout(CLOSE_HANDSHAKE_TIMEOUT, async {
        while let Some(Ok(message)) = socket.recv().await {
            if let Message::Close(_) = message {
                break;
            }
        }
    })
    .await;
}

fn heartbeat(every: Duration) -> Option<Interval> {
    (!every.is_zero()).then(|| {
        let mut interval = tokio::time::interval_at(Instant::now() + every, every);
        interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
        interval
    })
}

async fn tick(heartbeat: &mut Option<Interval>) {
    match heartbeat {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// A client's `{"message":"ping"}`.
fn is_ping(text: &str) -> bool {
    serde_json::from_str::<MetadataMessage>(text).is_ok_and(|m| m.message == "ping")
}
