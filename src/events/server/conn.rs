//! One Engine.IO session, over WebSocket or long-polling: the session task with the heartbeat
//! and the connect timeout, the outgoing queue its transport drains (a WebSocket writer task,
//! or each polling GET), and the namespaces the client joined. An upgrade hands the session a
//! WebSocket mid-way; the queue, and so the order of packets, stays.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::io::{AsyncRead, AsyncWrite};

use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
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
    pub(crate) queue: Queue,
    /// The socket of each namespace the client joined.
    sockets: Mutex<HashMap<String, Socket>>,
    reason: Mutex<Option<DisconnectReason>>,
    /// Wakes the reader when the server closes the connection.
    closing: Notify,
    /// While a ping awaits its pong: when the client is dead.
    pong_due: Mutex<Option<Instant>>,
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

    /// Closes a connection whose ping went unanswered past the ping timeout, if the session
    /// task's timer has not yet; returns whether it is closed for that. A request for such a
    /// session is answered as for a closed one, whenever the timer wakes.
    pub(crate) fn close_if_ping_overdue(&self) -> bool {
        let overdue = lock(&self.pong_due).is_some_and(|due| Instant::now() >= due);
        if overdue {
            self.close(DisconnectReason::PingTimeout);
        }
        overdue
    }
}

/// A stream of any kind, for the WebSocket that upgrades a polling session.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}

pub(crate) type BoxIo = Box<dyn Io>;

/// How a session reaches its client.
pub(crate) enum Transport<S> {
    /// A WebSocket opened directly (`transport=websocket` without a session id).
    WebSocket(Box<WebSocketStream<S>>, String),
    /// HTTP long-polling: its requests feed the session through this state, and a WebSocket
    /// may take over later (the upgrade).
    Polling(Arc<Polling>, PollingInput<S>),
}

/// The long-polling side of a session, shared by its HTTP requests.
#[derive(Debug)]
pub(crate) struct Polling {
    pub(crate) sid: String,
    pub(crate) conn: Arc<Conn>,
    /// Messages from POST bodies, to the session task.
    incoming: mpsc::Sender<Message>,
    /// The WebSocket that completed the upgrade, to the session task.
    upgrades: mpsc::Sender<WebSocketStream<BoxIo>>,
    /// Set while a GET waits for packets: a second one at the same time closes the session.
    pub(crate) polling: AtomicBool,
    /// Set once a WebSocket probe started the upgrade: a second probe is refused.
    pub(crate) upgrading: AtomicBool,
    /// Set once the WebSocket took over; `released` wakes a GET still waiting then.
    pub(crate) upgraded: AtomicBool,
    pub(crate) released: Notify,
    /// Why the client's side ended the session, when it did (its `close` packet): a waiting
    /// GET is then answered with a noop instead of a close packet.
    client_closed: AtomicBool,
}

/// What the session task receives from the polling side.
pub(crate) struct PollingInput<S> {
    incoming: mpsc::Receiver<Message>,
    upgrades: mpsc::Receiver<WebSocketStream<S>>,
}

/// Messages a POST may hand the session before it waits for the session to take them.
const INCOMING_QUEUE: usize = 64;

impl Polling {
    /// Creates the polling state of a new session, with the receiving ends for its task.
    pub(crate) fn new(server: &ServerInner, sid: String) -> (Arc<Self>, PollingInput<BoxIo>) {
        let (incoming, incoming_rx) = mpsc::channel(INCOMING_QUEUE);
        let (upgrades, upgrades_rx) = mpsc::channel(1);
        let polling = Arc::new(Self {
            sid,
            conn: Conn::new(server),
            incoming,
            upgrades,
            polling: AtomicBool::new(false),
            upgrading: AtomicBool::new(false),
            upgraded: AtomicBool::new(false),
            released: Notify::new(),
            client_closed: AtomicBool::new(false),
        });
        let input = PollingInput {
            incoming: incoming_rx,
            upgrades: upgrades_rx,
        };
        (polling, input)
    }

    /// Hands the upgraded WebSocket to the session task.
    pub(crate) async fn upgrade(&self, ws: WebSocketStream<BoxIo>) {
        let _ = self.upgrades.send(ws).await;
    }

    /// Hands the messages of a POST body to the session, in order; `false` once it ended.
    pub(crate) async fn receive(&self, messages: Vec<Message>) -> bool {
        for message in messages {
            if self.incoming.send(message).await.is_err() {
                return false;
            }
        }
        true
    }

    /// Whether the client ended the session with a `close` packet.
    pub(crate) fn client_closed(&self) -> bool {
        self.client_closed.load(Ordering::Acquire)
    }
}

impl Conn {
    fn new(server: &ServerInner) -> Arc<Self> {
        let config = &server.config;
        Arc::new(Self {
            queue: Queue::new(config.queue_limit, config.overflow_timeout),
            sockets: Mutex::default(),
            reason: Mutex::default(),
            closing: Notify::new(),
            pong_due: Mutex::default(),
        })
    }
}

/// Where the session task reads from: the WebSocket, or the POSTs of long-polling.
enum Source<S> {
    WebSocket(ReadHalf<S>),
    Polling(PollingInput<S>),
}

/// Runs a session from the Engine.IO open packet to its end: over a WebSocket, or over
/// long-polling until a WebSocket upgrade takes over.
pub(crate) async fn run<S>(server: &ServerInner, transport: Transport<S>, request: Arc<RequestInfo>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let config = &server.config;
    let (conn, sid, upgrades, mut source, mut writer, polling) = match transport {
        Transport::WebSocket(ws, sid) => {
            let conn = Conn::new(server);
            let (reader, writer) = ws.split();
            let writer = tokio::spawn(write_loop(Arc::clone(&conn), writer));
            (
                conn,
                sid,
                Vec::new(),
                Source::WebSocket(reader),
                Some(writer),
                None,
            )
        }
        Transport::Polling(polling, input) => (
            Arc::clone(&polling.conn),
            polling.sid.clone(),
            vec!["websocket".to_owned()],
            Source::Polling(input),
            None,
            Some(polling),
        ),
    };
    let open = EnginePacket::Open(OpenInfo {
        sid,
        upgrades,
        ping_interval: millis(config.ping_interval),
        ping_timeout: millis(config.ping_timeout),
        max_payload: config.max_payload as u64,
    });
    conn.push(prepare(vec![open.encode()]), false);

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
        connect_deadline: Some(Instant::now() + config.connect_timeout),
    };
    let reason = session.read_loop(&mut source, &mut writer).await;
    if let Some(polling) = &polling {
        // Gone before the session's packets are released, so that a request after the last
        // answer finds no session.
        server.forget_session(&polling.sid);
        if reason == DisconnectReason::TransportClose {
            polling.client_closed.store(true, Ordering::Release);
        }
    }
    conn.close(reason);
    let reason = conn.reason();
    let sockets: Vec<Socket> = lock(&conn.sockets)
        .drain()
        .map(|(_, socket)| socket)
        .collect();
    for socket in sockets {
        socket.closed(reason);
    }
    // Over WebSocket the writer sends what is queued and the close frame, and the reader sees
    // the peer's answer. Over long-polling a waiting GET takes the rest.
    if let (Source::WebSocket(reader), Some(writer)) = (&mut source, &mut writer) {
        let finish = async {
            while let Ok(Some(_)) = reader.read().await {}
            let _ = (&mut *writer).await;
        };
        if tokio::time::timeout(CLOSE_GRACE, finish).await.is_err() {
            writer.abort();
        }
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
    /// When a client that joined no namespace yet is closed (see [`Config::connect_timeout`]).
    ///
    /// [`Config::connect_timeout`]: super::Config::connect_timeout
    connect_deadline: Option<Instant>,
}

impl Session<'_> {
    /// Reads until the session ends; returns why. A WebSocket upgrade of a polling session
    /// switches `source` and starts the `writer`.
    async fn read_loop<S>(
        &mut self,
        source: &mut Source<S>,
        writer: &mut Option<JoinHandle<()>>,
    ) -> DisconnectReason
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        loop {
            let connect_deadline = self.connect_deadline;
            tokio::select! {
                message = next_message(source) => match message {
                    Incoming::Message(message) => {
                        if let Err(reason) = self.receive(&message).await {
                            return reason;
                        }
                        if self.connect_deadline.is_some() && !lock(&self.conn.sockets).is_empty() {
                            self.connect_deadline = None;
                        }
                    }
                    Incoming::Upgrade(ws) => {
                        let (reader, ws_writer) = ws.split();
                        *writer = Some(tokio::spawn(write_loop(Arc::clone(self.conn), ws_writer)));
                        *source = Source::WebSocket(reader);
                    }
                    Incoming::End(reason) => return reason,
                },
                () = sleep_until(self.deadline) => {
                    if self.awaiting_pong {
                        return DisconnectReason::PingTimeout;
                    }
                    self.conn.push(prepare(vec![EnginePacket::Ping("").encode()]), false);
                    self.awaiting_pong = true;
                    // The pong is due a ping timeout after the ping was due, as Node's timers
                    // count, so that a late wake-up does not stretch the session's life; yet
                    // at least half of it after the ping really left.
                    let timeout = self.server.config.ping_timeout;
                    self.deadline = (self.deadline + timeout).max(Instant::now() + timeout / 2);
                    *lock(&self.conn.pong_due) = Some(self.deadline);
                }
                () = sleep_until(connect_deadline.unwrap_or_else(far_future)), if connect_deadline.is_some() => {
                    return DisconnectReason::ServerClose;
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
                    *lock(&self.conn.pong_due) = None;
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
                // Boxed: inline, the hook and middleware's state would widen the session's
                // future for its whole life; a CONNECT is rare.
                Box::pin(self.connect(namespace, auth)).await;
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
        let Some(namespace) = self.server.namespace(&name, &auth) else {
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
            self.server.config.ack_timeout,
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

/// What the session task reads next.
enum Incoming<S> {
    Message(Message),
    /// The WebSocket that completed the upgrade of a polling session.
    Upgrade(Box<WebSocketStream<S>>),
    End(DisconnectReason),
}

async fn next_message<S>(source: &mut Source<S>) -> Incoming<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match source {
        Source::WebSocket(reader) => match reader.read().await {
            Ok(Some(message)) => Incoming::Message(message),
            Ok(None) => Incoming::End(DisconnectReason::TransportClose),
            Err(_) => Incoming::End(DisconnectReason::TransportError),
        },
        Source::Polling(input) => tokio::select! {
            message = input.incoming.recv() => match message {
                Some(message) => Incoming::Message(message),
                None => Incoming::End(DisconnectReason::TransportClose),
            },
            Some(ws) = input.upgrades.recv() => Incoming::Upgrade(Box::new(ws)),
        },
    }
}

/// A deadline that never comes, for a disabled timer branch.
fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365)
}

/// Writes the queue out until its close item, then closes the WebSocket.
async fn write_loop<S>(conn: Arc<Conn>, mut writer: WriteHalf<S>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut items = Vec::new();
    let mut written = false;
    loop {
        conn.queue.take_after(&mut items, written).await;
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
        // Writable again: the next take says so first.
        written = true;
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
