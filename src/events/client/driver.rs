//! The task that owns the connection: Engine.IO heartbeat, packets in and out, reconnection.

use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::{Instant, sleep_until, timeout};

use super::backoff::Backoff;
use super::polling::{Polled, Polling};
use super::state::{Deferred, Settings, Shared};
use super::upgrade::{self, Probe};
use super::{ClientError, DisconnectReason, Transport};
use crate::events::{Decoder, EnginePacket, OpenInfo};
use crate::proto::ProtocolError;
use crate::proto::handshake::ClientRequest;
use crate::tokio::{MaybeTlsStream, WebSocketStream, connect_async_with};

/// The WebSocket the client talks over.
pub(crate) type Ws = WebSocketStream<MaybeTlsStream>;

/// How long closing the WebSocket may take once no namespace is left.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// The connection to the server: a WebSocket, or long-polling where a WebSocket is refused.
pub(crate) enum Link {
    WebSocket(Box<Ws>),
    Polling(Box<Polling>),
}

impl Link {
    async fn write(&mut self, message: crate::Message) -> Result<(), DisconnectReason> {
        match self {
            Self::WebSocket(ws) => ws.write(message).await.map_err(transport_error),
            Self::Polling(polling) => {
                polling.write(message);
                Ok(())
            }
        }
    }

    async fn flush(&mut self) -> Result<(), DisconnectReason> {
        match self {
            Self::WebSocket(ws) => ws.flush().await.map_err(transport_error),
            Self::Polling(polling) => polling.flush().await.map_err(transport_error),
        }
    }

    async fn read(&mut self) -> Result<Read, DisconnectReason> {
        match self {
            Self::WebSocket(ws) => match ws.read().await {
                Ok(Some(message)) => Ok(Read::Message(message)),
                Ok(None) => Ok(Read::Closed),
                Err(error) => Err(read_failure(&error)),
            },
            Self::Polling(polling) => match polling.read().await {
                Polled::Message(message) => Ok(Read::Message(message)),
                Polled::Paused => Ok(Read::Paused),
                Polled::Closed => Ok(Read::Closed),
                Polled::Failed(error) => Err(DisconnectReason::TransportError(error)),
            },
        }
    }

    fn transport(&self) -> Transport {
        match self {
            Self::WebSocket(_) => Transport::WebSocket,
            Self::Polling(_) => Transport::Polling,
        }
    }

    async fn close(self) {
        match self {
            Self::WebSocket(ws) => close(*ws).await,
            Self::Polling(polling) => polling.close().await,
        }
    }
}

/// What reading the connection gave.
enum Read {
    Message(crate::Message),
    /// The server ended the connection.
    Closed,
    /// Long-polling stopped, as asked for the upgrade.
    Paused,
}

fn transport_error(error: impl std::fmt::Display) -> DisconnectReason {
    DisconnectReason::TransportError(error.to_string())
}

/// Opens the connection and reads the Engine.IO `open` packet, within the connect timeout:
/// a WebSocket, or, when it is refused and the fallback is on, long-polling; or long-polling
/// first when the builder asks for it.
pub(crate) async fn open_engine(settings: &Settings) -> Result<(Link, OpenInfo), ClientError> {
    let max_body = settings.decode_limits.max_packet_size.saturating_mul(2);
    let open = async {
        if settings.polling_first {
            let (polling, info) =
                Polling::open(&settings.ws_url, &settings.headers, max_body).await?;
            return Ok((Link::Polling(Box::new(polling)), info));
        }
        // With the fallback, the WebSocket gets half the connect timeout: a refusal whose body
        // never ends (a kept-alive, chunked 400) must leave time for polling.
        let attempt = match settings.polling_fallback {
            true => {
                let wait = settings.connect_timeout / 2;
                timeout(wait, open_websocket(settings))
                    .await
                    .unwrap_or(Err(ClientError::ConnectTimeout(wait)))
            }
            false => open_websocket(settings).await,
        };
        match attempt {
            Ok((ws, info)) => Ok((Link::WebSocket(Box::new(ws)), info)),
            Err(ClientError::Transport(_) | ClientError::ConnectTimeout(_))
                if settings.polling_fallback =>
            {
                let (polling, info) =
                    Polling::open(&settings.ws_url, &settings.headers, max_body).await?;
                Ok((Link::Polling(Box::new(polling)), info))
            }
            Err(error) => Err(error),
        }
    };
    timeout(settings.connect_timeout, open)
        .await
        .map_err(|_| ClientError::ConnectTimeout(settings.connect_timeout))?
}

/// Opens a WebSocket to `url` with the client's extra headers and options.
pub(super) async fn connect_websocket(settings: &Settings, url: &str) -> Result<Ws, ClientError> {
    let mut request =
        ClientRequest::new(url).map_err(|error| ClientError::InvalidUrl(error.to_string()))?;
    for (name, value) in &settings.headers {
        request = request
            .header(name, value)
            .map_err(|error| ClientError::InvalidUrl(error.to_string()))?;
    }
    let (ws, _response) = connect_async_with(request, &settings.ws_options).await?;
    Ok(ws)
}

/// Opens the WebSocket and reads the Engine.IO `open` packet.
async fn open_websocket(settings: &Settings) -> Result<(Ws, OpenInfo), ClientError> {
    let mut ws = connect_websocket(settings, &settings.ws_url).await?;
    let Some(message) = ws.read().await? else {
        return Err(ClientError::Handshake(
            "closed before the open packet".into(),
        ));
    };
    match EnginePacket::decode(&message) {
        Ok(EnginePacket::Open(info)) => Ok((ws, info)),
        Ok(other) => Err(ClientError::Handshake(format!(
            "expected the open packet, got {other:?}"
        ))),
        Err(error) => Err(ClientError::Handshake(error.to_string())),
    }
}

/// Runs the connection until no namespace is left, every handle is dropped, or reconnection
/// gives up.
pub(crate) async fn run(shared: Weak<Shared>, wake: Arc<Notify>, mut ws: Link, mut info: OpenInfo) {
    let Some(settings) = shared.upgrade().map(|shared| Arc::clone(&shared.settings)) else {
        return;
    };
    let mut backoff = Backoff::new(settings.reconnection);
    loop {
        let reason = match drive(&shared, &wake, &settings, ws, &info).await {
            Some(reason) => reason,
            None => return,
        };
        let Some(strong) = shared.upgrade() else {
            return;
        };
        let (deferred, ended) = {
            let mut state = strong.lock();
            let deferred = state.on_lost(&reason, settings.reconnection.enabled);
            (deferred, state.ended)
        };
        drop(strong);
        run_all(deferred);
        if ended {
            return;
        }
        let mut attempt = 0;
        (ws, info) = loop {
            attempt += 1;
            if attempt > settings.reconnection.attempts {
                if let Some(strong) = shared.upgrade() {
                    let deferred = strong.lock().give_up();
                    drop(strong);
                    run_all(deferred);
                }
                return;
            }
            if !wait_until(&shared, &wake, Instant::now() + backoff.delay(attempt)).await {
                return;
            }
            let result = open_engine(&settings).await;
            let Some(strong) = shared.upgrade() else {
                return;
            };
            let deferred: Vec<Deferred> = match &result {
                Ok(_) => strong.lock().reconnected(attempt).into_iter().collect(),
                Err(error) => strong.lock().on_attempt_failed(error),
            };
            drop(strong);
            run_all(deferred);
            if let Ok(connection) = result {
                break connection;
            }
        };
    }
}

/// Sleeps until `deadline`; false when the client ended meanwhile.
async fn wait_until(shared: &Weak<Shared>, wake: &Notify, deadline: Instant) -> bool {
    loop {
        match shared.upgrade() {
            Some(strong) if !strong.lock().ended => {}
            _ => return false,
        }
        tokio::select! {
            () = sleep_until(deadline) => return true,
            () = wake.notified() => {}
        }
    }
}

/// What woke the connection loop.
enum Step {
    Read(Result<Read, DisconnectReason>),
    Wake,
    PingTimeout,
    /// An emit with retries timed out.
    Retry,
    /// The upgrade probe ended (boxed: a WebSocket is large beside the other steps).
    Probed(Box<Result<Ws, ClientError>>),
}

/// Drives one Engine.IO connection. Returns why it was lost, or `None` when the client is
/// done with it (it is then closed).
async fn drive(
    shared: &Weak<Shared>,
    wake: &Notify,
    settings: &Settings,
    mut ws: Link,
    info: &OpenInfo,
) -> Option<DisconnectReason> {
    let heartbeat = Duration::from_millis(info.ping_interval.saturating_add(info.ping_timeout));
    let mut deadline = Instant::now() + heartbeat;
    let mut decoder = Decoder::new(settings.decode_limits);
    shared.upgrade()?.lock().on_open(info, ws.transport());
    // The upgrade to WebSocket, tried once on a polling session the server offers it for.
    let mut probe: Option<Probe<'_>> = None;
    let mut pauser = None;
    if let Link::Polling(polling) = &ws
        && settings.upgrade
        && info.upgrades.iter().any(|name| name == "websocket")
    {
        let pause = polling.pauser();
        probe = Some(upgrade::probe(settings, &info.sid, Arc::clone(&pause)));
        pauser = Some(pause);
    }
    let mut probed: Option<Box<Ws>> = None;
    let mut polling_paused = false;
    loop {
        let Some(strong) = shared.upgrade() else {
            ws.close().await;
            return None;
        };
        let flush = strong.lock().flush();
        drop(strong);
        for message in flush.messages {
            if let Err(reason) = ws.write(message).await {
                return Some(reason);
            }
        }
        if let Err(reason) = ws.flush().await {
            return Some(reason);
        }
        if flush.close {
            ws.close().await;
            return None;
        }
        if polling_paused && let Some(mut upgraded) = probed.take() {
            // Nothing is left to poll and every POST was answered: the WebSocket takes over.
            let switch = async {
                upgraded.write(EnginePacket::Upgrade.encode()).await?;
                upgraded.flush().await
            };
            if let Err(error) = switch.await {
                return Some(transport_error(error));
            }
            ws = Link::WebSocket(upgraded);
            let strong = shared.upgrade()?;
            let deferred = strong.lock().on_upgrade();
            drop(strong);
            run_all(deferred);
            continue;
        }
        let step = tokio::select! {
            read = ws.read() => Step::Read(read),
            () = wake.notified() => Step::Wake,
            () = sleep_until(deadline) => Step::PingTimeout,
            () = sleep_until_some(flush.retry_deadline) => Step::Retry,
            result = probing(&mut probe) => Step::Probed(Box::new(result)),
        };
        let message = match step {
            Step::Wake => continue,
            Step::Probed(result) => {
                probe = None;
                match *result {
                    Ok(upgraded) => probed = Some(Box::new(upgraded)),
                    // The server does not take a WebSocket after all: poll on.
                    Err(_) => {
                        if let Some(pause) = &pauser {
                            pause.send_replace(false);
                        }
                    }
                }
                continue;
            }
            Step::Read(Ok(Read::Paused)) => {
                polling_paused = true;
                continue;
            }
            Step::Retry => {
                shared.upgrade()?.lock().expire_retries(Instant::now());
                continue;
            }
            Step::PingTimeout => return Some(DisconnectReason::PingTimeout),
            Step::Read(Err(reason)) => return Some(reason),
            Step::Read(Ok(Read::Closed)) => return Some(DisconnectReason::TransportClose),
            Step::Read(Ok(Read::Message(message))) => message,
        };
        let decoded = match EnginePacket::decode(&message) {
            Ok(EnginePacket::Ping(data)) => {
                deadline = Instant::now() + heartbeat;
                let paused = shared.upgrade()?.lock().heartbeat_paused;
                if !paused {
                    let pong = EnginePacket::Pong(data).encode();
                    if let Err(reason) = ws.write(pong).await {
                        return Some(reason);
                    }
                    if let Err(reason) = ws.flush().await {
                        return Some(reason);
                    }
                }
                continue;
            }
            Ok(EnginePacket::Close) => return Some(DisconnectReason::TransportClose),
            Ok(EnginePacket::Message(text)) => decoder.receive_text(text),
            Ok(EnginePacket::Binary(data)) => decoder.receive_binary(data),
            Ok(
                EnginePacket::Open(_)
                | EnginePacket::Pong(_)
                | EnginePacket::Upgrade
                | EnginePacket::Noop,
            ) => continue,
            Err(error) => return Some(DisconnectReason::ParseError(error.to_string())),
        };
        let packet = match decoded {
            Ok(Some(packet)) => packet,
            Ok(None) => continue,
            Err(error) => return Some(DisconnectReason::ParseError(error.to_string())),
        };
        let strong = shared.upgrade()?;
        let received = strong.lock().receive(packet, shared, &strong.settings);
        drop(strong);
        match received {
            Ok(deferred) => run_all(deferred),
            Err(reason) => return Some(reason),
        }
    }
}

/// Runs the upgrade probe, or waits forever without one.
async fn probing(probe: &mut Option<Probe<'_>>) -> Result<Ws, ClientError> {
    match probe {
        Some(probe) => probe.await,
        None => std::future::pending().await,
    }
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Why reading failed: the server going away without a closing handshake is a close, as
/// socket.io-client names it; anything else is an error.
fn read_failure(error: &crate::Error) -> DisconnectReason {
    use std::io::ErrorKind;
    let closed = match error {
        crate::Error::Protocol(ProtocolError::UnexpectedEof) => true,
        crate::Error::Io(error) => matches!(
            error.kind(),
            ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
        ),
        _ => false,
    };
    match closed {
        true => DisconnectReason::TransportClose,
        false => DisconnectReason::TransportError(error.to_string()),
    }
}

/// Closes the WebSocket, waiting a little for the server's close frame.
async fn close(mut ws: Ws) {
    if ws.close(None).await.is_ok() {
        let _ = timeout(CLOSE_WAIT, async {
            while let Ok(Some(_)) = ws.read().await {}
        })
        .await;
    }
}

/// Runs callbacks collected under the lock.
fn run_all(deferred: Vec<Deferred>) {
    for callback in deferred {
        callback();
    }
}
