//! The client's side of the Engine.IO upgrade from long-polling to WebSocket: a WebSocket for
//! the session, the probe (`2probe`, answered `3probe`), polling paused, then `5`.
//!
//! The driver runs [`probe`] beside the polling session. Polling is paused when the probe is
//! sent, so the server's noop (which it queues with `3probe`) releases the last GET and no GET
//! is left waiting once the WebSocket takes over; the driver sends `5` only after the GET task
//! reported [`Polled::Paused`](super::polling::Polled::Paused), so every message polled comes
//! before the first one read from the WebSocket. A failed probe resumes polling; the upgrade is
//! tried once per session.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::time::timeout;

use super::ClientError;
use super::driver::{Ws, connect_websocket};
use super::state::Settings;
use crate::Message;

/// A probe under way; it borrows the settings.
pub(crate) type Probe<'a> = Pin<Box<dyn Future<Output = Result<Ws, ClientError>> + Send + 'a>>;

/// Opens a WebSocket for the session `sid` and probes it, within the connect timeout; pauses
/// polling (through `pause`) once the probe is sent. Returns the WebSocket once the server
/// answered `3probe`: the driver then sends `5` when polling has stopped.
pub(crate) fn probe<'a>(
    settings: &'a Settings,
    sid: &str,
    pause: Arc<watch::Sender<bool>>,
) -> Probe<'a> {
    let url = format!("{}&sid={}", settings.ws_url, encode_sid(sid));
    Box::pin(async move {
        let run = async {
            let mut ws = connect_websocket(settings, &url).await?;
            pause.send_replace(true);
            ws.send(Message::text("2probe")).await?;
            match ws.read().await? {
                Some(message) if message.as_text() == Some("3probe") => Ok(ws),
                other => Err(ClientError::Handshake(format!(
                    "upgrade probe answered with {other:?}"
                ))),
            }
        };
        timeout(settings.connect_timeout, run)
            .await
            .unwrap_or(Err(ClientError::ConnectTimeout(settings.connect_timeout)))
    })
}

/// Percent-encodes what a session id may hold beyond URL-safe characters.
fn encode_sid(sid: &str) -> String {
    let mut out = String::with_capacity(sid.len());
    for byte in sid.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(byte));
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::encode_sid;

    #[test]
    fn session_ids_are_percent_encoded() {
        assert_eq!(encode_sid("lv_VI97HAXpY6yYWAAAC"), "lv_VI97HAXpY6yYWAAAC");
        assert_eq!(encode_sid("a+b/c="), "a%2Bb%2Fc%3D");
    }
}
