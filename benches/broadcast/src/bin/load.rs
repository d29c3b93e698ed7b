//! The load client of the broadcast benchmark, and the table of its results.
//!
//! ```text
//! load run --addr 127.0.0.1:PORT[,127.0.0.1:PORT2] --pid PID[,PID2] --server NAME
//!          --connections N --messages M --size BYTES [--burst B] [--polling PERCENT] [--deflate]
//!          [--latency K]
//! load table RESULTS
//! ```
//!
//! `run` opens N Socket.IO connections to the server at `--addr` (process `--pid`; with two
//! of each, two nodes of one cluster, the connections alternating between them), over
//! WebSocket, or PERCENT % of them (spread evenly, never the first) over Engine.IO HTTP
//! long-polling. It waits until every one has joined the default namespace, then asks the
//! server (the first node), through the first connection, to broadcast M messages of a
//! BYTES-long string (B at a time between turns of its event loop, default 1), and times until
//! the last connection received its M-th. It prints one tab-separated result line (see
//! [`Sample`]); the server's memory and CPU time come from `/proc/PID` (summed over the nodes).
//! `table` reads such lines and prints the Markdown table of the medians (and a second one of
//! the delivery latencies, when some lines have them).
//!
//! With `--latency K`, once the timed broadcast is over (and its figures taken), the client
//! measures delivery latency: it asks for one broadcast of the same string, waits until every
//! connection received it, waits [`LATENCY_SETTLE`], and so on K times. A delivery's latency is
//! the time from just before the `go` event is written to the socket to the moment its
//! connection's task sees the message's prefix (one `Instant` each, kept in a vector sized
//! for all N × K deliveries up front); the result line gets their p50, p99 and maximum.
//!
//! One thread, one task per connection. Engine.IO pings are answered. A broadcast message is
//! counted from its Engine.IO and Socket.IO prefixes (`42["msg",`) without decoding its JSON,
//! so the client spends as little as it can per message. A long-polling connection is one
//! HTTP/1.1 keep-alive TCP connection carrying one request at a time: a GET that waits for
//! the server's packets, then, when they held a ping, a POST with the pong, then the next GET.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Notify, Semaphore, mpsc};
use wsio::events::{Args, Decoder, EnginePacket, Packet};
use wsio::proto::handshake::ClientRequest;
use wsio::tokio::WebSocketStream;
use wsio::{Message, Options};

/// Connections being opened at once: keeps the server's accept backlog from overflowing.
const CONNECTING: usize = 200;
/// How long opening all the connections may take.
const CONNECT_LIMIT: Duration = Duration::from_secs(120);
/// How long the broadcast may take.
const BROADCAST_LIMIT: Duration = Duration::from_secs(120);
/// The pause before the first latency broadcast, after the timed broadcast.
const LATENCY_START: Duration = Duration::from_millis(500);
/// The pause after every connection received one latency broadcast, before the next `go`.
const LATENCY_SETTLE: Duration = Duration::from_millis(50);
/// Clock ticks per second in `/proc/PID/stat` (`USER_HZ`, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

type Ws = WebSocketStream<wsio::tokio::MaybeTlsStream>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("run") => RunArgs::parse(&args[1..]).and_then(|run| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|error| error.to_string())?
                .block_on(run_point(run))
        }),
        Some("table") if args.len() == 2 => print_table(&args[1]),
        _ => Err(
            "usage: load run --addr A[,A2] --pid P[,P2] --server NAME --connections N --messages M \
                  --size BYTES [--burst B] [--polling PERCENT] [--deflate] [--latency K] \
                  | load table RESULTS"
                .into(),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("load: {message}");
            ExitCode::FAILURE
        }
    }
}

struct RunArgs {
    /// The server's address, one per node.
    addrs: Vec<String>,
    /// The server's process, one per node.
    pids: Vec<u32>,
    server: String,
    connections: usize,
    messages: usize,
    size: usize,
    burst: usize,
    /// The share of connections over long-polling, in percent.
    polling: usize,
    deflate: bool,
    /// Single broadcasts to time one by one after the timed broadcast, 0 for none.
    latency: usize,
}

impl RunArgs {
    fn parse(args: &[String]) -> Result<Self, String> {
        let mut named = BTreeMap::new();
        let mut deflate = false;
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--deflate" => deflate = true,
                name if name.starts_with("--") => {
                    let value = args.next().ok_or(format!("{name} needs a value"))?;
                    named.insert(&name[2..], value.clone());
                }
                other => return Err(format!("unexpected argument {other:?}")),
            }
        }
        let burst = named.remove("burst");
        let polling = named.remove("polling");
        let latency = named.remove("latency");
        let mut take = |name: &str| named.remove(name).ok_or(format!("--{name} is required"));
        let number = |value: String, name: &str| {
            value
                .parse::<usize>()
                .map_err(|_| format!("--{name} must be a number, got {value:?}"))
        };
        let run = Self {
            addrs: take("addr")?.split(',').map(str::to_owned).collect(),
            pids: take("pid")?
                .split(',')
                .map(|pid| Ok(number(pid.to_owned(), "pid")? as u32))
                .collect::<Result<_, String>>()?,
            server: take("server")?,
            connections: number(take("connections")?, "connections")?.max(1),
            messages: number(take("messages")?, "messages")?.max(1),
            size: number(take("size")?, "size")?,
            burst: match burst {
                Some(value) => number(value, "burst")?.max(1),
                None => 1,
            },
            polling: match polling {
                Some(value) => number(value, "polling")?.min(100),
                None => 0,
            },
            deflate,
            latency: match latency {
                Some(value) => number(value, "latency")?,
                None => 0,
            },
        };
        if run.addrs.len() != run.pids.len() {
            return Err("--addr and --pid need as many values".into());
        }
        Ok(run)
    }
}

/// The counters every connection task reports to.
#[derive(Default)]
struct Progress {
    joined: AtomicUsize,
    /// Connections that received all their messages, or failed.
    finished: AtomicUsize,
    failed: AtomicUsize,
    changed: Notify,
    /// Connections (all nodes together).
    connections: usize,
    /// Latency broadcasts to time one by one after the timed broadcast.
    latency: usize,
    /// Latency broadcasts received, all connections together.
    delivered: AtomicUsize,
    /// When the `go` of each latency broadcast was written, in order.
    sent: RefCell<Vec<Instant>>,
    /// When each connection received each latency broadcast: the N receipts of the first, then
    /// the N of the second, and so on (the next is only asked for once all have the last).
    receipts: RefCell<Vec<Instant>>,
}

impl Progress {
    fn bump(&self, counter: &AtomicUsize) {
        counter.fetch_add(1, Ordering::Relaxed);
        self.changed.notify_one();
    }

    /// Records the arrival of a latency broadcast at one connection.
    fn receipt(&self, at: Instant) {
        self.receipts.borrow_mut().push(at);
        let delivered = self.delivered.fetch_add(1, Ordering::Relaxed) + 1;
        // Wakes the waiter once per broadcast, when its last connection has it.
        if delivered.is_multiple_of(self.connections) {
            self.changed.notify_one();
        }
    }

    /// The latency of every delivery of the latency broadcasts: from sending `go` to receipt.
    fn latencies(&self) -> Vec<Duration> {
        let (sent, receipts) = (self.sent.borrow(), self.receipts.borrow());
        (receipts.chunks(self.connections))
            .zip(sent.iter())
            .flat_map(|(receipts, &sent)| receipts.iter().map(move |&at| at - sent))
            .collect()
    }

    /// Waits until `counter` reaches `target` or a connection fails.
    async fn wait(&self, counter: &AtomicUsize, target: usize) -> Result<(), String> {
        loop {
            let changed = self.changed.notified();
            let failed = self.failed.load(Ordering::Relaxed);
            if failed > 0 {
                return Err(format!("{failed} connections failed"));
            }
            if counter.load(Ordering::Relaxed) >= target {
                return Ok(());
            }
            changed.await;
        }
    }
}

/// One measured point; printed as one tab-separated line, in this order.
struct Sample {
    server: String,
    deflate: bool,
    connections: usize,
    size: usize,
    messages: usize,
    burst: usize,
    /// Connections over long-polling, in percent.
    polling: usize,
    /// Server nodes (processes) the connections were spread over.
    nodes: usize,
    seconds: f64,
    /// Server VmRSS before any connection, after all joined, and VmHWM after the broadcast.
    rss_before_kib: u64,
    rss_joined_kib: u64,
    rss_peak_kib: u64,
    server_cpu_seconds: f64,
    client_cpu_seconds: f64,
    /// Latency broadcasts timed (0 for none), and the p50, p99 and maximum of the latencies of
    /// all their deliveries, in milliseconds.
    latency_broadcasts: usize,
    latency_ms: [f64; 3],
}

impl Sample {
    fn deliveries_per_second(&self) -> f64 {
        (self.connections * self.messages) as f64 / self.seconds
    }

    fn kib_per_connection(&self) -> f64 {
        self.rss_joined_kib.saturating_sub(self.rss_before_kib) as f64 / self.connections as f64
    }

    fn line(&self) -> String {
        format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{:.4}\t{}\t{}\t{}\t{:.2}\t{:.2}\t{}\t{:.3}\t{:.3}\t{:.3}",
            self.server,
            u8::from(self.deflate),
            self.connections,
            self.size,
            self.messages,
            self.burst,
            self.polling,
            self.nodes,
            self.seconds,
            self.rss_before_kib,
            self.rss_joined_kib,
            self.rss_peak_kib,
            self.server_cpu_seconds,
            self.client_cpu_seconds,
            self.latency_broadcasts,
            self.latency_ms[0],
            self.latency_ms[1],
            self.latency_ms[2],
        )
    }

    fn parse(line: &str) -> Option<Self> {
        let mut fields: Vec<&str> = line.split('\t').collect();
        // Lines from before the latency fields have none.
        let latency: Vec<&str> = match fields.len() {
            18 => fields.split_off(14),
            _ => vec!["0", "0", "0", "0"],
        };
        let [
            server,
            deflate,
            n,
            size,
            m,
            burst,
            polling,
            nodes,
            seconds,
            before,
            joined,
            peak,
            server_cpu,
            client_cpu,
        ] = fields.as_slice()
        else {
            return None;
        };
        Some(Self {
            server: (*server).to_owned(),
            deflate: *deflate == "1",
            connections: n.parse().ok()?,
            size: size.parse().ok()?,
            messages: m.parse().ok()?,
            burst: burst.parse().ok()?,
            polling: polling.parse().ok()?,
            nodes: nodes.parse().ok()?,
            seconds: seconds.parse().ok()?,
            rss_before_kib: before.parse().ok()?,
            rss_joined_kib: joined.parse().ok()?,
            rss_peak_kib: peak.parse().ok()?,
            server_cpu_seconds: server_cpu.parse().ok()?,
            client_cpu_seconds: client_cpu.parse().ok()?,
            latency_broadcasts: latency[0].parse().ok()?,
            latency_ms: [
                latency[1].parse().ok()?,
                latency[2].parse().ok()?,
                latency[3].parse().ok()?,
            ],
        })
    }
}

async fn run_point(args: RunArgs) -> Result<(), String> {
    let rss_before_kib = proc_status_kib(&args.pids, "VmRSS")?;
    let urls: Vec<String> = (args.addrs.iter())
        .map(|addr| format!("ws://{addr}/socket.io/?EIO=4&transport=websocket"))
        .collect();
    let mut options = Options::default();
    options.read_chunk = 16 << 10;
    if !args.deflate {
        options.deflate = None;
    }
    let progress = Rc::new(Progress {
        connections: args.connections,
        latency: args.latency,
        receipts: RefCell::new(Vec::with_capacity(args.connections * args.latency)),
        ..Progress::default()
    });
    let connecting = Rc::new(Semaphore::new(CONNECTING));
    let local = tokio::task::LocalSet::new();
    let payload = text_payload(args.size);

    local
        .run_until(async {
            // The first connection is also the control connection that starts the broadcast.
            let mut control = join(&urls[0], &options)
                .await
                .map_err(|error| format!("control connection: {error}"))?;
            progress.bump(&progress.joined);
            for index in 1..args.connections {
                let node = index % urls.len();
                let (url, options) = (urls[node].clone(), options.clone());
                let (progress, connecting) = (Rc::clone(&progress), Rc::clone(&connecting));
                let messages = args.messages;
                // Spread evenly: index * share / 100 steps up once every 100 / share indexes.
                let polling = index * args.polling / 100 != (index - 1) * args.polling / 100;
                let addr = args.addrs[node].clone();
                tokio::task::spawn_local(async move {
                    let permit = connecting.acquire().await;
                    let joined = if polling {
                        Polling::join(&addr).await.map(Joined::Polling)
                    } else {
                        join(&url, &options)
                            .await
                            .map(|ws| Joined::WebSocket(Box::new(ws)))
                    };
                    drop(permit);
                    let joined = match joined {
                        Ok(joined) => joined,
                        Err(error) => {
                            eprintln!("load: connection failed: {error}");
                            progress.bump(&progress.failed);
                            return;
                        }
                    };
                    progress.bump(&progress.joined);
                    match joined {
                        Joined::WebSocket(ws) => receive(*ws, messages, &progress, None).await,
                        Joined::Polling(polling) => {
                            polling.receive(messages, &progress).await;
                        }
                    }
                });
            }
            tokio::time::timeout(
                CONNECT_LIMIT,
                progress.wait(&progress.joined, args.connections),
            )
            .await
            .map_err(|_| "connecting took too long".to_owned())??;
            // Let the server finish its bookkeeping of the last joins before measuring.
            tokio::time::sleep(Duration::from_millis(500)).await;
            let rss_joined_kib = proc_status_kib(&args.pids, "VmRSS")?;

            let server_cpu_start = server_cpu_seconds(&args.pids)?;
            let client_cpu_start = cpu_seconds("self")?;
            let start = Instant::now();
            let go = Packet::Event {
                namespace: "/".into(),
                event: "go".into(),
                args: Args::new()
                    .with(args.messages)
                    .with(payload.clone())
                    .with(args.burst),
                ack: None,
            };
            for message in go.to_messages() {
                control
                    .send(message)
                    .await
                    .map_err(|error| format!("sending go: {error}"))?;
            }
            // From here the control connection's task writes the `go` of the latency broadcasts.
            let (go_sender, go_receiver) = mpsc::unbounded_channel();
            {
                let progress = Rc::clone(&progress);
                let messages = args.messages;
                tokio::task::spawn_local(async move {
                    receive(control, messages, &progress, Some(go_receiver)).await
                });
            }
            tokio::time::timeout(
                BROADCAST_LIMIT,
                progress.wait(&progress.finished, args.connections),
            )
            .await
            .map_err(|_| "the broadcast took too long".to_owned())??;
            let seconds = start.elapsed().as_secs_f64();
            let server_cpu_seconds = server_cpu_seconds(&args.pids)? - server_cpu_start;
            let client_cpu_seconds = cpu_seconds("self")? - client_cpu_start;
            let rss_peak_kib = proc_status_kib(&args.pids, "VmHWM")?;

            let mut latency_ms = [0.0; 3];
            if args.latency > 0 {
                tokio::time::sleep(LATENCY_START).await;
                let go = Packet::Event {
                    namespace: "/".into(),
                    event: "go".into(),
                    args: Args::new().with(1).with(payload).with(1),
                    ack: None,
                };
                for broadcast in 1..=args.latency {
                    if broadcast > 1 {
                        tokio::time::sleep(LATENCY_SETTLE).await;
                    }
                    go_sender
                        .send(go.to_messages())
                        .map_err(|_| "the control connection failed".to_owned())?;
                    tokio::time::timeout(
                        BROADCAST_LIMIT,
                        progress.wait(&progress.delivered, broadcast * args.connections),
                    )
                    .await
                    .map_err(|_| format!("latency broadcast {broadcast} took too long"))??;
                }
                let mut latencies = progress.latencies();
                latencies.sort_unstable();
                // Nearest rank: the smallest latency at or above the given share of them all.
                let rank = |share: f64| {
                    let rank = (share * latencies.len() as f64).ceil() as usize;
                    latencies[rank.clamp(1, latencies.len()) - 1].as_secs_f64() * 1e3
                };
                latency_ms = [rank(0.50), rank(0.99), rank(1.0)];
            }

            let sample = Sample {
                server: args.server.clone(),
                deflate: args.deflate,
                connections: args.connections,
                size: args.size,
                messages: args.messages,
                burst: args.burst,
                polling: args.polling,
                nodes: args.pids.len(),
                seconds,
                rss_before_kib,
                rss_joined_kib,
                rss_peak_kib,
                server_cpu_seconds,
                client_cpu_seconds,
                latency_broadcasts: args.latency,
                latency_ms,
            };
            println!("{}", sample.line());
            eprintln!(
                "{:>12} n={:<6} polling={:>3} % size={:<5} m={:<5} {:>6.2} s {:>10.0} deliveries/s  \
                 {:>5.1} KiB/conn  peak {:>6.1} MiB  server cpu {:>5.2} s  client cpu {:>5.2} s",
                sample.server,
                sample.connections,
                sample.polling,
                sample.size,
                sample.messages,
                sample.seconds,
                sample.deliveries_per_second(),
                sample.kib_per_connection(),
                sample.rss_peak_kib as f64 / 1024.0,
                sample.server_cpu_seconds,
                sample.client_cpu_seconds,
            );
            if sample.latency_broadcasts > 0 {
                let [p50, p99, max] = sample.latency_ms;
                eprintln!(
                    "{:>12} latency over {} broadcasts: p50 {p50:.2} ms  p99 {p99:.2} ms  \
                     max {max:.2} ms",
                    sample.server, sample.latency_broadcasts,
                );
            }
            Ok(())
        })
        .await
}

/// A JSON-friendly text of `size` bytes: words of varying length, so that compression, when
/// on, sees something closer to real text than one repeated byte.
fn text_payload(size: usize) -> String {
    const WORDS: [&str; 12] = [
        "lorem",
        "ipsum",
        "dolor",
        "sit",
        "amet",
        "broadcast",
        "socket",
        "event",
        "message",
        "queue",
        "frame",
        "delivery",
    ];
    let mut state: u32 = 0x2545_f491;
    let mut text = String::with_capacity(size + 16);
    while text.len() < size {
        // xorshift32: deterministic, so both servers get the same payload.
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        text.push_str(WORDS[state as usize % WORDS.len()]);
        text.push(' ');
    }
    text.truncate(size);
    text
}

/// Opens one connection and joins the default namespace.
async fn join(url: &str, options: &Options) -> Result<Ws, String> {
    let request = ClientRequest::new(url).map_err(|error| error.to_string())?;
    let (mut ws, _) = wsio::tokio::connect_async_with(request, options)
        .await
        .map_err(|error| format!("connect: {error}"))?;
    let open = ws.read().await.map_err(|error| error.to_string())?;
    match open.as_ref().map(EnginePacket::decode) {
        Some(Ok(EnginePacket::Open(_))) => {}
        other => return Err(format!("expected the open packet, got {other:?}")),
    }
    let connect = Packet::Connect {
        namespace: "/".into(),
        data: None,
    };
    for message in connect.to_messages() {
        ws.send(message).await.map_err(|error| error.to_string())?;
    }
    let mut decoder = Decoder::default();
    loop {
        let message = ws
            .read()
            .await
            .map_err(|error| error.to_string())?
            .ok_or("closed before joining")?;
        let packet = match EnginePacket::decode(&message) {
            Ok(EnginePacket::Message(text)) => decoder.receive_text(text),
            Ok(EnginePacket::Ping(_)) => {
                ws.send(Message::text("3"))
                    .await
                    .map_err(|error| error.to_string())?;
                continue;
            }
            other => return Err(format!("unexpected packet while joining: {other:?}")),
        };
        match packet.map_err(|error| error.to_string())? {
            Some(Packet::Connect { data: Some(_), .. }) => return Ok(ws),
            Some(other) => return Err(format!("refused: {other:?}")),
            None => {}
        }
    }
}

/// Reads until `messages` broadcast messages arrived, answering pings, then keeps the
/// connection open (answering pings) until the process ends, recording the arrival of the
/// latency broadcasts that follow. The control connection also writes what comes from `go`
/// (the `go` event of each latency broadcast), noting when.
async fn receive(
    mut ws: Ws,
    messages: usize,
    progress: &Progress,
    mut go: Option<mpsc::UnboundedReceiver<Vec<Message>>>,
) {
    let mut received = 0;
    loop {
        let read = match &mut go {
            None => ws.read().await,
            // Reading is cancel safe: a `go` to write may interrupt it.
            Some(go) => tokio::select! {
                read = ws.read() => read,
                Some(event) = go.recv() => {
                    progress.sent.borrow_mut().push(Instant::now());
                    for message in event {
                        if let Err(error) = ws.send(message).await {
                            eprintln!("load: sending go: {error}");
                            progress.bump(&progress.failed);
                            return;
                        }
                    }
                    continue;
                }
            },
        };
        let message = match read {
            Ok(Some(message)) => message,
            Ok(None) | Err(_) => {
                if received < messages {
                    eprintln!("load: a connection closed after {received} messages");
                    progress.bump(&progress.failed);
                }
                return;
            }
        };
        let ping = match EnginePacket::decode(&message) {
            Ok(EnginePacket::Message(text)) => {
                if text.starts_with("2[\"msg\",") {
                    received += 1;
                    if received == messages {
                        progress.bump(&progress.finished);
                    } else if received > messages && received <= messages + progress.latency {
                        progress.receipt(Instant::now());
                    }
                }
                false
            }
            Ok(EnginePacket::Ping(_)) => true,
            _ => false,
        };
        if ping && ws.send(Message::text("3")).await.is_err() {
            progress.bump(&progress.failed);
            return;
        }
    }
}

/// A joined connection, by transport.
enum Joined {
    WebSocket(Box<Ws>),
    Polling(Polling),
}

/// The record separator of an Engine.IO long-polling payload.
const RECORD_SEPARATOR: u8 = 0x1e;

/// A Socket.IO connection over Engine.IO HTTP long-polling: raw HTTP/1.1 requests, one at a
/// time, on one keep-alive TCP connection (opened again if the server closes it).
struct Polling {
    addr: String,
    /// The request target with the session id.
    target: String,
    stream: Option<TcpStream>,
    /// Bytes read and not yet consumed.
    buffer: Vec<u8>,
}

impl Polling {
    /// Opens an Engine.IO session over long-polling and joins the default namespace.
    async fn join(addr: &str) -> Result<Self, String> {
        let mut polling = Self {
            addr: addr.to_owned(),
            target: "/socket.io/?EIO=4&transport=polling".to_owned(),
            stream: None,
            buffer: Vec::with_capacity(4096),
        };
        let open = polling.request("GET", "").await?;
        let open = String::from_utf8(open).map_err(|_| "open packet not UTF-8")?;
        let sid = open
            .strip_prefix('0')
            .and_then(|json| json.split_once("\"sid\":\"")?.1.split_once('"'))
            .map(|(sid, _)| sid)
            .ok_or(format!("expected the open packet, got {open:?}"))?;
        polling.target = format!("{}&sid={sid}", polling.target);
        polling.post("40").await?;
        loop {
            let payload = polling.request("GET", "").await?;
            let mut ping = false;
            for record in payload.split(|&byte| byte == RECORD_SEPARATOR) {
                match record {
                    [b'4', b'0', ..] => return Ok(polling),
                    [b'4', b'4', ..] => {
                        return Err(format!("refused: {}", String::from_utf8_lossy(record)));
                    }
                    b"2" => ping = true,
                    _ => {}
                }
            }
            if ping {
                polling.post("3").await?;
            }
        }
    }

    /// Polls until `messages` broadcast messages arrived, answering pings, then goes on
    /// polling (answering pings) until the process ends, recording the arrival of the latency
    /// broadcasts that follow.
    async fn receive(mut self, messages: usize, progress: &Progress) {
        let mut received = 0;
        loop {
            let payload = match self.request("GET", "").await {
                Ok(payload) => payload,
                Err(error) => {
                    if received < messages {
                        eprintln!(
                            "load: a polling connection failed after {received} messages: {error}"
                        );
                        progress.bump(&progress.failed);
                    }
                    return;
                }
            };
            let mut ping = false;
            for record in payload.split(|&byte| byte == RECORD_SEPARATOR) {
                match record {
                    b"2" => ping = true,
                    [b'1', ..] if received < messages => {
                        eprintln!("load: a polling session closed after {received} messages");
                        progress.bump(&progress.failed);
                        return;
                    }
                    _ if record.starts_with(b"42[\"msg\",") => {
                        received += 1;
                        if received == messages {
                            progress.bump(&progress.finished);
                        } else if received > messages && received <= messages + progress.latency {
                            progress.receipt(Instant::now());
                        }
                    }
                    _ => {}
                }
            }
            if ping && self.post("3").await.is_err() {
                if received < messages {
                    progress.bump(&progress.failed);
                }
                return;
            }
        }
    }

    /// Sends `body` in a POST and checks the server took it.
    async fn post(&mut self, body: &str) -> Result<(), String> {
        match self.request("POST", body).await?.as_slice() {
            b"ok" => Ok(()),
            other => Err(format!(
                "POST answered {:?}",
                String::from_utf8_lossy(other)
            )),
        }
    }

    /// Sends one request to the session's target and returns the body of a 200 response.
    async fn request(&mut self, method: &str, body: &str) -> Result<Vec<u8>, String> {
        let mut head = format!(
            "{method} {} HTTP/1.1\r\nHost: {}\r\nAccept: */*\r\n",
            self.target, self.addr
        );
        if method == "POST" {
            head.push_str("Content-Type: text/plain;charset=UTF-8\r\n");
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        head.push_str(body);
        // A kept-alive connection the server closed in between gets one retry on a new one.
        let reused = self.stream.is_some();
        match self.exchange(head.as_bytes()).await {
            Err(Exchange::Closed) if reused => {}
            other => return other.map_err(Exchange::into_message),
        }
        self.exchange(head.as_bytes())
            .await
            .map_err(Exchange::into_message)
    }

    /// Writes a request and reads its response, on the open connection or a new one.
    async fn exchange(&mut self, request: &[u8]) -> Result<Vec<u8>, Exchange> {
        let stream = match &mut self.stream {
            Some(stream) => stream,
            None => {
                self.buffer.clear();
                let stream = TcpStream::connect(&self.addr)
                    .await
                    .map_err(|error| Exchange::Failed(format!("connect: {error}")))?;
                stream
                    .set_nodelay(true)
                    .map_err(|error| Exchange::Failed(error.to_string()))?;
                self.stream.insert(stream)
            }
        };
        if stream.write_all(request).await.is_err() {
            self.stream = None;
            return Err(Exchange::Closed);
        }
        let result = self.read_response().await;
        if result.is_err() {
            self.stream = None;
        }
        let (keep_alive, body) = result?;
        if !keep_alive {
            self.stream = None;
        }
        Ok(body)
    }

    /// Reads one response: whether the connection stays open, and the body of a 200.
    async fn read_response(&mut self) -> Result<(bool, Vec<u8>), Exchange> {
        let head_len = loop {
            if let Some(at) = find(&self.buffer, b"\r\n\r\n") {
                break at + 4;
            }
            if self.fill().await? == 0 {
                return Err(match self.buffer.is_empty() {
                    true => Exchange::Closed,
                    false => Exchange::Failed("closed within a response head".into()),
                });
            }
        };
        let head = String::from_utf8_lossy(&self.buffer[..head_len]).into_owned();
        self.buffer.drain(..head_len);
        let mut lines = head.split("\r\n");
        let status = lines.next().unwrap_or_default();
        let (mut length, mut chunked, mut keep_alive) = (None, false, true);
        for line in lines {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
            match name.as_str() {
                "content-length" => length = value.parse::<usize>().ok(),
                "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
                "connection" => keep_alive = !value.eq_ignore_ascii_case("close"),
                _ => {}
            }
        }
        let body = if chunked {
            let mut body = Vec::new();
            loop {
                let line = self.read_line().await?;
                let size = line.split(';').next().unwrap_or_default().trim();
                let size = usize::from_str_radix(size, 16)
                    .map_err(|_| Exchange::Failed(format!("bad chunk size {size:?}")))?;
                if size == 0 {
                    // No trailers are expected: the blank line that ends the body.
                    self.read_line().await?;
                    break body;
                }
                body.extend_from_slice(&self.read_exact(size + 2).await?[..size]);
            }
        } else {
            let length = length.ok_or(Exchange::Failed("a response without a length".into()))?;
            self.read_exact(length).await?
        };
        if !status.starts_with("HTTP/1.1 200") {
            return Err(Exchange::Failed(format!(
                "{status}: {}",
                String::from_utf8_lossy(&body)
            )));
        }
        Ok((keep_alive, body))
    }

    /// Reads more bytes into the buffer; 0 at the end of the stream.
    async fn fill(&mut self) -> Result<usize, Exchange> {
        let stream = self.stream.as_mut().ok_or(Exchange::Closed)?;
        stream
            .read_buf(&mut self.buffer)
            .await
            .map_err(|error| Exchange::Failed(error.to_string()))
    }

    async fn read_exact(&mut self, len: usize) -> Result<Vec<u8>, Exchange> {
        while self.buffer.len() < len {
            if self.fill().await? == 0 {
                return Err(Exchange::Failed("closed within a response body".into()));
            }
        }
        Ok(self.buffer.drain(..len).collect())
    }

    async fn read_line(&mut self) -> Result<String, Exchange> {
        loop {
            if let Some(at) = find(&self.buffer, b"\r\n") {
                let line = String::from_utf8_lossy(&self.buffer[..at]).into_owned();
                self.buffer.drain(..at + 2);
                return Ok(line);
            }
            if self.fill().await? == 0 {
                return Err(Exchange::Failed("closed within a chunked body".into()));
            }
        }
    }
}

/// Why a request got no response.
enum Exchange {
    /// The server had closed the connection before the response began.
    Closed,
    Failed(String),
}

impl Exchange {
    fn into_message(self) -> String {
        match self {
            Self::Closed => "the server closed the connection".into(),
            Self::Failed(message) => message,
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// A `kB` field of `/proc/PID/status` (`VmRSS`, `VmHWM`), summed over `pids`.
fn proc_status_kib(pids: &[u32], field: &str) -> Result<u64, String> {
    pids.iter().map(|&pid| process_status_kib(pid, field)).sum()
}

/// The CPU time of the server, summed over its processes.
fn server_cpu_seconds(pids: &[u32]) -> Result<f64, String> {
    pids.iter().map(|pid| cpu_seconds(&pid.to_string())).sum()
}

fn process_status_kib(pid: u32, field: &str) -> Result<u64, String> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).map_err(|error| format!("{path}: {error}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or(format!("no {field} in {path}"))
}

/// User plus system CPU time of a process (all its threads), from `/proc/PID/stat`.
fn cpu_seconds(pid: &str) -> Result<f64, String> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).map_err(|error| format!("{path}: {error}"))?;
    // The command name may hold spaces: fields are counted after its closing parenthesis.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks = |index: usize| {
        fields
            .get(index)
            .and_then(|value| value.parse::<u64>().ok())
    };
    match (ticks(11), ticks(12)) {
        (Some(user), Some(system)) => Ok((user + system) as f64 / TICKS_PER_SECOND),
        _ => Err(format!("unexpected {path}")),
    }
}

/// Prints the Markdown table of the medians of the samples in `path`, then that of their
/// delivery latencies if some have them.
fn print_table(path: &str) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|error| format!("{path}: {error}"))?;
    let samples: Vec<Sample> = text.lines().filter_map(Sample::parse).collect();
    print_rates(&samples);
    if samples.iter().any(|sample| sample.latency_broadcasts > 0) {
        println!();
        print_latencies(&samples);
    }
    Ok(())
}

/// Prints the table of deliveries per second, CPU and memory.
fn print_rates(samples: &[Sample]) {
    // Points in the order of their first sample; servers within a point likewise.
    let mut points: Vec<(bool, usize, usize, usize, usize, usize)> = Vec::new();
    for sample in samples {
        let point = (
            sample.deflate,
            sample.polling,
            sample.nodes,
            sample.burst,
            sample.connections,
            sample.size,
        );
        if !points.contains(&point) {
            points.push(point);
        }
    }
    println!(
        "| server | deflate | polling | nodes | burst | N | size | M | deliveries/s | ratio to best | server CPU µs per 1000 \
         deliveries | KiB/conn idle | peak RSS MiB | rounds |"
    );
    println!("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
    for point in points {
        let (deflate, polling, nodes, burst, connections, size) = point;
        let at_point: Vec<&Sample> = (samples.iter())
            .filter(|s| {
                (
                    s.deflate,
                    s.polling,
                    s.nodes,
                    s.burst,
                    s.connections,
                    s.size,
                ) == point
            })
            .collect();
        let mut servers: Vec<&str> = Vec::new();
        for sample in &at_point {
            if !servers.contains(&sample.server.as_str()) {
                servers.push(&sample.server);
            }
        }
        let rows: Vec<Row> = servers
            .iter()
            .map(|server| {
                let runs: Vec<&&Sample> = at_point.iter().filter(|s| s.server == *server).collect();
                Row {
                    server,
                    messages: runs[0].messages,
                    rate: median(runs.iter().map(|s| s.deliveries_per_second())),
                    cpu_per_thousand: median(
                        runs.iter().map(|s| {
                            s.server_cpu_seconds * 1e9 / (s.connections * s.messages) as f64
                        }),
                    ),
                    kib_per_connection: median(runs.iter().map(|s| s.kib_per_connection())),
                    peak_mib: median(runs.iter().map(|s| s.rss_peak_kib as f64 / 1024.0)),
                    rounds: runs.len(),
                }
            })
            .collect();
        let best = rows.iter().map(|row| row.rate).fold(0.0, f64::max);
        for row in rows {
            println!(
                "| {} | {} | {} % | {} | {} | {} | {} | {} | {:.0} | {:.2} | {:.0} | {:.1} | {:.1} | {} |",
                row.server,
                if deflate { "on" } else { "off" },
                polling,
                nodes,
                burst,
                connections,
                size,
                row.messages,
                row.rate,
                row.rate / best,
                row.cpu_per_thousand,
                row.kib_per_connection,
                row.peak_mib,
                row.rounds,
            );
        }
    }
}

/// Prints the table of delivery latencies: per point and server, the medians over the rounds
/// of the p50, p99 and maximum over all deliveries of a round's latency broadcasts. The burst
/// does not matter to one broadcast at a time: points differing only by it are one here.
fn print_latencies(samples: &[Sample]) {
    let samples: Vec<&Sample> = (samples.iter())
        .filter(|sample| sample.latency_broadcasts > 0)
        .collect();
    let key = |s: &Sample| (s.deflate, s.polling, s.nodes, s.connections, s.size);
    let mut points = Vec::new();
    for sample in &samples {
        if !points.contains(&key(sample)) {
            points.push(key(sample));
        }
    }
    println!(
        "| server | deflate | polling | nodes | N | size | broadcasts | p50 ms | p99 ms | max ms | \
         p99 ratio to best | rounds |"
    );
    println!("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
    for point in points {
        let (deflate, polling, nodes, connections, size) = point;
        let at_point: Vec<&Sample> = (samples.iter().copied())
            .filter(|s| key(s) == point)
            .collect();
        let mut servers: Vec<&str> = Vec::new();
        for sample in &at_point {
            if !servers.contains(&sample.server.as_str()) {
                servers.push(&sample.server);
            }
        }
        let rows: Vec<(&str, usize, [f64; 3], usize)> = (servers.iter())
            .map(|&server| {
                let runs: Vec<&Sample> = (at_point.iter().copied())
                    .filter(|s| s.server == server)
                    .collect();
                let figure = |i: usize| median(runs.iter().map(|s| s.latency_ms[i]));
                let broadcasts = runs[0].latency_broadcasts;
                (
                    server,
                    broadcasts,
                    [figure(0), figure(1), figure(2)],
                    runs.len(),
                )
            })
            .collect();
        let best = rows
            .iter()
            .map(|row| row.2[1])
            .fold(f64::INFINITY, f64::min);
        for (server, broadcasts, [p50, p99, max], rounds) in rows {
            println!(
                "| {server} | {} | {polling} % | {nodes} | {connections} | {size} | {broadcasts} | \
                 {p50:.1} | {p99:.1} | {max:.1} | {:.2} | {rounds} |",
                if deflate { "on" } else { "off" },
                p99 / best,
            );
        }
    }
}

struct Row<'a> {
    server: &'a str,
    messages: usize,
    rate: f64,
    cpu_per_thousand: f64,
    kib_per_connection: f64,
    peak_mib: f64,
    rounds: usize,
}

fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut values: Vec<f64> = values.collect();
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}
