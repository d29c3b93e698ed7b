//! The load client of the broadcast benchmark, and the table of its results.
//!
//! ```text
//! load run --addr 127.0.0.1:PORT[,127.0.0.1:PORT2] --pid PID[,PID2] --server NAME
//!          --connections N --messages M --size BYTES [--burst B] [--polling PERCENT] [--deflate]
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
//! `table` reads such lines and prints the Markdown table of the medians.
//!
//! One thread, one task per connection. Engine.IO pings are answered. A broadcast message is
//! counted from its Engine.IO and Socket.IO prefixes (`42["msg",`) without decoding its JSON,
//! so the client spends as little as it can per message. A long-polling connection is one
//! HTTP/1.1 keep-alive TCP connection carrying one request at a time: a GET that waits for
//! the server's packets, then, when they held a ping, a POST with the pong, then the next GET.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Notify, Semaphore};
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
                  --size BYTES [--burst B] [--polling PERCENT] [--deflate] | load table RESULTS"
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
}

impl Progress {
    fn bump(&self, counter: &AtomicUsize) {
        counter.fetch_add(1, Ordering::Relaxed);
        self.changed.notify_one();
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
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{:.4}\t{}\t{}\t{}\t{:.2}\t{:.2}",
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
        )
    }

    fn parse(line: &str) -> Option<Self> {
        let fields: Vec<&str> = line.split('\t').collect();
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
    let progress = Rc::new(Progress::default());
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
                        Joined::WebSocket(ws) => receive(*ws, messages, &progress).await,
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
                    .with(payload)
                    .with(args.burst),
                ack: None,
            };
            for message in go.to_messages() {
                control
                    .send(message)
                    .await
                    .map_err(|error| format!("sending go: {error}"))?;
            }
            {
                let progress = Rc::clone(&progress);
                let messages = args.messages;
                tokio::task::spawn_local(
                    async move { receive(control, messages, &progress).await },
                );
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
/// connection open (answering pings) until the process ends.
async fn receive(mut ws: Ws, messages: usize, progress: &Progress) {
    let mut received = 0;
    loop {
        let message = match ws.read().await {
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
    /// polling (answering pings) until the process ends.
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

/// Prints the Markdown table of the medians of the samples in `path`.
fn print_table(path: &str) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|error| format!("{path}: {error}"))?;
    let samples: Vec<Sample> = text.lines().filter_map(Sample::parse).collect();
    // Points in the order of their first sample; servers within a point likewise.
    let mut points: Vec<(bool, usize, usize, usize, usize, usize)> = Vec::new();
    for sample in &samples {
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
    Ok(())
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
