//! The load client of the broadcast benchmark, and the table of its results.
//!
//! ```text
//! load run --addr 127.0.0.1:PORT --pid PID --server NAME --connections N --messages M
//!          --size BYTES [--burst B] [--deflate]
//! load table RESULTS
//! ```
//!
//! `run` opens N Socket.IO connections over WebSocket to the server at `--addr` (process
//! `--pid`), waits until every one has joined the default namespace, then asks the server,
//! through the first connection, to broadcast M messages of a BYTES-long string (B at a time
//! between turns of its event loop, default 1), and times
//! until the last connection received its M-th. It prints one tab-separated result line (see
//! [`Sample`]); the server's memory and CPU time come from `/proc/PID`. `table` reads such
//! lines and prints the Markdown table of the medians.
//!
//! One thread, one task per connection. Engine.IO pings are answered. A broadcast message is
//! counted from its Engine.IO and Socket.IO prefixes (`42["msg",`) without decoding its JSON,
//! so the client spends as little as it can per message.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

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
            "usage: load run --addr A --pid P --server NAME --connections N --messages M \
                  --size BYTES [--burst B] [--deflate] | load table RESULTS"
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
    addr: String,
    pid: u32,
    server: String,
    connections: usize,
    messages: usize,
    size: usize,
    burst: usize,
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
        let mut take = |name: &str| named.remove(name).ok_or(format!("--{name} is required"));
        let number = |value: String, name: &str| {
            value
                .parse::<usize>()
                .map_err(|_| format!("--{name} must be a number, got {value:?}"))
        };
        Ok(Self {
            addr: take("addr")?,
            pid: number(take("pid")?, "pid")? as u32,
            server: take("server")?,
            connections: number(take("connections")?, "connections")?.max(1),
            messages: number(take("messages")?, "messages")?.max(1),
            size: number(take("size")?, "size")?,
            burst: match burst {
                Some(value) => number(value, "burst")?.max(1),
                None => 1,
            },
            deflate,
        })
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
            "{}\t{}\t{}\t{}\t{}\t{}\t{:.4}\t{}\t{}\t{}\t{:.2}\t{:.2}",
            self.server,
            u8::from(self.deflate),
            self.connections,
            self.size,
            self.messages,
            self.burst,
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
    let rss_before_kib = proc_status_kib(args.pid, "VmRSS")?;
    let url = format!("ws://{}/socket.io/?EIO=4&transport=websocket", args.addr);
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
            let mut control = join(&url, &options)
                .await
                .map_err(|error| format!("control connection: {error}"))?;
            progress.bump(&progress.joined);
            for _ in 1..args.connections {
                let (url, options) = (url.clone(), options.clone());
                let (progress, connecting) = (Rc::clone(&progress), Rc::clone(&connecting));
                let messages = args.messages;
                tokio::task::spawn_local(async move {
                    let permit = connecting.acquire().await;
                    let ws = match join(&url, &options).await {
                        Ok(ws) => ws,
                        Err(error) => {
                            eprintln!("load: connection failed: {error}");
                            progress.bump(&progress.failed);
                            return;
                        }
                    };
                    drop(permit);
                    progress.bump(&progress.joined);
                    receive(ws, messages, &progress).await;
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
            let rss_joined_kib = proc_status_kib(args.pid, "VmRSS")?;

            let server_cpu_start = cpu_seconds(&args.pid.to_string())?;
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
            let server_cpu_seconds = cpu_seconds(&args.pid.to_string())? - server_cpu_start;
            let client_cpu_seconds = cpu_seconds("self")? - client_cpu_start;
            let rss_peak_kib = proc_status_kib(args.pid, "VmHWM")?;

            let sample = Sample {
                server: args.server.clone(),
                deflate: args.deflate,
                connections: args.connections,
                size: args.size,
                messages: args.messages,
                burst: args.burst,
                seconds,
                rss_before_kib,
                rss_joined_kib,
                rss_peak_kib,
                server_cpu_seconds,
                client_cpu_seconds,
            };
            println!("{}", sample.line());
            eprintln!(
                "{:>12} n={:<6} size={:<5} m={:<5} {:>6.2} s {:>10.0} deliveries/s  \
                 {:>5.1} KiB/conn  peak {:>6.1} MiB  server cpu {:>5.2} s  client cpu {:>5.2} s",
                sample.server,
                sample.connections,
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

/// A `kB` field of `/proc/PID/status` (`VmRSS`, `VmHWM`).
fn proc_status_kib(pid: u32, field: &str) -> Result<u64, String> {
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
    let mut points: Vec<(bool, usize, usize, usize)> = Vec::new();
    for sample in &samples {
        let point = (
            sample.deflate,
            sample.burst,
            sample.connections,
            sample.size,
        );
        if !points.contains(&point) {
            points.push(point);
        }
    }
    println!(
        "| server | deflate | burst | N | size | M | deliveries/s | ratio to best | server CPU µs per 1000 \
         deliveries | KiB/conn idle | peak RSS MiB | rounds |"
    );
    println!("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
    for (deflate, burst, connections, size) in points {
        let at_point: Vec<&Sample> = samples
            .iter()
            .filter(|s| {
                (s.deflate, s.burst, s.connections, s.size) == (deflate, burst, connections, size)
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
                "| {} | {} | {} | {} | {} | {} | {:.0} | {:.2} | {:.0} | {:.1} | {:.1} | {} |",
                row.server,
                if deflate { "on" } else { "off" },
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
