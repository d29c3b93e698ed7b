//! One Engine.IO session over one WebSocket: the reader loop with the heartbeat, the writer
//! task draining the queue, and the namespaces the client joined.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Notify;
use tokio::time::{Instant, sleep_until};

use super::handshake::{Handshake, RequestInfo};
use super::queue::{Item, Outgoing, Push, Queue, prepare};
use super::socket::Socket;
use super::{DisconnectReason, ServerInner, lock};
use crate::events::{DecodeLimits, Decoder, EnginePacket, OpenInfo, Packet};
use crate::proto::{CloseCode, CloseFrame, PreparedMessage};
use crate::tokio::{ReadHalf, WebSocketStream, WriteHalf};
use crate::{Message, Utf8Bytes};

/// How long a closing connection may take to finish the WebSocket closing handshake.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// The shared state of one connection.
#[derive(Debug)]
pub(crate) struct Conn {
    queue: Queue,
    /// The socket of each namespace the client joined.
    sockets: Mutex<HashMap<String, Socket>>,
    reason: Mutex<Option<DisconnectReason>>,
    /// Wakes the reader when the server closes the connection.
    closing: Notify,
}

impl Conn {
    /// Queues a packet; a queue that overflows closes the connection.
    pub(crate) fn push(&self, outgoing: Outgoing, volatile: bool) -> Push {
        let push = self.queue.push(outgoing, volatile);
        if push == Push::Overflow {
            self.close(DisconnectReason::SlowConsumer);
        }
        push
    }

    /// Closes the connection for `reason` (the first reason given wins).
    pub(crate) fn close(&self, reason: DisconnectReason) {
        lock(&self.reason).get_or_insert(reason);
        self.queue.close(reason == DisconnectReason::SlowConsumer);
        self.closing.notify_one();
    }

    pub(crate) fn remove_socket(&self, namespace: &str) -> Option<Socket> {
        lock(&self.sockets).remove(namespace)
    }

    fn reason(&self) -> DisconnectReason {
        lock(&self.reason).unwrap_or(DisconnectReason::TransportClose)
    }
}

/// Runs a session from the Engine.IO open packet to the end of the WebSocket.
pub(crate) async fn run<S>(server: &ServerInner, ws: WebSocketStream<S>, request: Arc<RequestInfo>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let config = &server.config;
    let conn = Arc::new(Conn {
        queue: Queue::new(config.queue_limit, config.overflow_timeout),
        sockets: Mutex::default(),
        reason: Mutex::default(),
        closing: Notify::new(),
    });
    let open = EnginePacket::Open(OpenInfo {
        sid: server.new_id(),
        upgrades: Vec::new(),
        ping_interval: millis(config.ping_interval),
        ping_timeout: millis(config.ping_timeout),
        max_payload: config.max_payload as u64,
    });
    conn.push(prepare(vec![open.encode()]), false);
    let (mut reader, writer) = ws.split();
    let mut writer = tokio::spawn(write_loop(Arc::clone(&conn), writer));

    let mut session = Session {
        server,
        conn: &conn,
        request,
        decoder: Decoder::new(DecodeLimits {
            max_packet_size: config.max_payload,
            max_attachments: config.max_attachments,
        }),
        awaiting_pong: false,
        deadline: Instant::now() + config.ping_interval,
    };
    let reason = session.read_loop(&mut reader).await;
    conn.close(reason);
    let reason = conn.reason();
    let sockets: Vec<Socket> = lock(&conn.sockets)
        .drain()
        .map(|(_, socket)| socket)
        .collect();
    for socket in sockets {
        socket.closed(reason);
    }
    // The writer sends what is queued and the close frame; the reader sees the peer's answer.
    let finish = async {
        while let Ok(Some(_)) = reader.read().await {}
        let _ = (&mut writer).await;
    };
    if tokio::time::timeout(CLOSE_GRACE, finish).await.is_err() {
        writer.abort();
    }
}

/// The reader's state.
struct Session<'a> {
    server: &'a ServerInner,
    conn: &'a Arc<Conn>,
    /// The HTTP request that opened the session, shared by its sockets' handshakes.
    request: Arc<RequestInfo>,
    decoder: Decoder,
    awaiting_pong: bool,
    /// When to send the next ping, or, while awaiting the pong, when the peer is dead.
    deadline: Instant,
}

impl Session<'_> {
    /// Reads until the connection ends; returns why.
    async fn read_loop<S>(&mut self, reader: &mut ReadHalf<S>) -> DisconnectReason
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        loop {
            tokio::select! {
                message = reader.read() => match message {
                    Ok(Some(message)) => {
                        if let Err(reason) = self.receive(&message).await {
                            return reason;
                        }
                    }
                    Ok(None) => return DisconnectReason::TransportClose,
                    Err(_) => return DisconnectReason::TransportError,
                },
                () = sleep_until(self.deadline) => {
                    if self.awaiting_pong {
                        return DisconnectReason::PingTimeout;
                    }
                    self.conn.push(prepare(vec![EnginePacket::Ping("").encode()]), false);
                    self.awaiting_pong = true;
                    self.deadline = Instant::now() + self.server.config.ping_timeout;
                }
                () = self.conn.closing.notified() => return self.conn.reason(),
            }
        }
    }

    /// Handles one WebSocket message; `Err` ends the session.
    async fn receive(&mut self, message: &Message) -> Result<(), DisconnectReason> {
        let packet = EnginePacket::decode(message).map_err(|_| DisconnectReason::ParseError)?;
        let decoded = match packet {
            EnginePacket::Message(text) => self.decoder.receive_text(text),
            EnginePacket::Binary(data) => self.decoder.receive_binary(data),
            // In Engine.IO v4 only the server pings: a ping from the client is a heartbeat in
            // the wrong direction, which ends the session as a transport error (as in Node).
            EnginePacket::Ping(_) => return Err(DisconnectReason::TransportError),
            EnginePacket::Pong(_) => {
                if self.awaiting_pong {
                    self.awaiting_pong = false;
                    self.deadline = Instant::now() + self.server.config.ping_interval;
                }
                return Ok(());
            }
            EnginePacket::Close => return Err(DisconnectReason::TransportClose),
            EnginePacket::Upgrade | EnginePacket::Noop => return Ok(()),
            _ => return Err(DisconnectReason::ParseError),
        };
        match decoded {
            Ok(Some(packet)) => self.dispatch(packet).await,
            Ok(None) => Ok(()),
            Err(_) => Err(DisconnectReason::ParseError),
        }
    }

    /// Routes a packet to its namespace's socket. As in Node, a packet that does not fit the
    /// namespace's state ends the connection: anything but CONNECT for a namespace the client
    /// has not joined (before any CONNECT, after leaving, or after a refusal), and a second
    /// CONNECT for a namespace it has joined.
    async fn dispatch(&mut self, packet: Packet) -> Result<(), DisconnectReason> {
        let socket = lock(&self.conn.sockets).get(packet.namespace()).cloned();
        match (packet, socket) {
            (Packet::Connect { namespace, data }, None) => {
                let auth = Value::Object(data.unwrap_or_default());
                self.connect(namespace, auth).await;
            }
            (Packet::Disconnect { namespace }, Some(_)) => {
                if let Some(socket) = self.conn.remove_socket(&namespace) {
                    socket.closed(DisconnectReason::ClientNamespaceDisconnect);
                }
            }
            (
                Packet::Event {
                    event, args, ack, ..
                },
                Some(socket),
            ) => socket.receive_event(event, args, ack).await,
            (Packet::Ack { id, args, .. }, Some(socket)) => socket.receive_ack(id, args),
            // Only a server sends CONNECT_ERROR.
            _ => return Err(DisconnectReason::ParseError),
        }
        Ok(())
    }

    /// Answers a CONNECT: CONNECT with the socket id, or CONNECT_ERROR. The namespace's
    /// authorize hook and middleware run here, on the reader: the client's later packets wait.
    async fn connect(&mut self, name: String, auth: Value) {
        let refuse = |message: String, data: Option<Value>| Packet::ConnectError {
            namespace: name.clone(),
            message,
            data,
        };
        let Some(namespace) = self.server.namespace(&name) else {
            let packet = refuse("Invalid namespace".into(), None);
            self.conn.push(prepare(packet.to_messages()), false);
            return;
        };
        let handshake = Handshake::new(Arc::clone(&self.request), auth);
        let socket = Socket::new(
            self.server.new_id(),
            Arc::clone(&namespace.inner),
            Arc::clone(self.conn),
            handshake,
        );
        if let Err(refusal) = namespace.admit(&socket).await {
            socket.discard();
            let packet = refuse(refusal.message, refusal.data);
            self.conn.push(prepare(packet.to_messages()), false);
            return;
        }
        lock(&self.conn.sockets).insert(namespace.name().to_owned(), socket.clone());
        socket.activate();
        let mut data = Map::new();
        data.insert("sid".into(), Value::String(socket.id().to_owned()));
        let packet = Packet::Connect {
            namespace: namespace.name().to_owned(),
            data: Some(data),
        };
        self.conn.push(prepare(packet.to_messages()), false);
        // The reply goes out on its own, before anything the connection handler emits.
        self.conn.queue.push_flush();
        namespace.register(&socket);
    }
}

/// Writes the queue out until its close item, then closes the WebSocket.
async fn write_loop<S>(conn: Arc<Conn>, mut writer: WriteHalf<S>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut items = Vec::new();
    loop {
        conn.queue.take(&mut items).await;
        for item in items.drain(..) {
            let result = match item {
                Item::Packet(messages) => write_all(&mut writer, &messages).await,
                Item::Flush => writer.flush().await,
                Item::Close => {
                    let frame = CloseFrame {
                        code: CloseCode::NORMAL,
                        reason: Utf8Bytes::from_static(""),
                    };
                    let _ = writer.close(Some(frame)).await;
                    return;
                }
            };
            if result.is_err() {
                conn.close(DisconnectReason::TransportError);
                return;
            }
        }
        if writer.flush().await.is_err() {
            conn.close(DisconnectReason::TransportError);
            return;
        }
        conn.queue.written();
    }
}

async fn write_all<S>(
    writer: &mut WriteHalf<S>,
    messages: &[PreparedMessage],
) -> Result<(), crate::Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    for message in messages {
        writer.write_prepared(message).await?;
    }
    Ok(())
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
