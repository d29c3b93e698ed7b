//! Loopback echo load generator on raw TCP: it performs the HTTP upgrade itself, writes
//! pre-masked binary frames, keeps a fixed number of messages in flight per connection and
//! counts complete echoed frames. No WebSocket library is involved on this side. With one
//! message in flight it also times every round trip (from just before the frame's write to
//! the read that completes its echo) and reports the 50th and 99th percentiles.
//!
//! ```text
//! loadgen suite [--quick] [--rounds R] [--seconds S] [--port P]   every contender, tables
//! loadgen point PORT CONNS SIZE INFLIGHT [SECONDS]                one run against a server
//! ```
//! `suite` starts every server of `echo_servers` (pinned to CPU 0 with `taskset` when it can),
//! and for each round runs every point against every server, in an order rotated per round and
//! point, then prints the medians. Run it pinned to another CPU (`benches/run` does).

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::process::Child;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::Semaphore;
use wsio_benches::{
    FrameCounter, SERVERS, binary_payload, can_pin, client_upgrade, median, print_table,
    push_frame, si, size_label, spawn_server,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Point {
    conns: usize,
    size: usize,
    inflight: usize,
}

/// The longest time without any echo during the last run's measurement, in ms.
static STALL_MS: AtomicU64 = AtomicU64::new(0);

/// The WebSocket contenders that are not wsio, every idiom of each: "the best peer" is the
/// fastest of these (for latency, the lowest).
const PEERS: &[&str] = &[
    "tungstenite",
    "tokio-tungstenite",
    "tokio-tungstenite-forward",
    "fastwebsockets",
    "tokio-websockets",
    "tokio-websockets-forward",
];

/// What each server column is, printed under the tables.
const LEGEND: &str = "\
Columns: `wsio-tokio` (`read` + `send`; `send` writes at once unless more input is already \
buffered, then the replies to a burst leave in one write), `wsio-tokio-flush` (`next` + \
`SinkExt::send`: a flush per message, the idiom for a peer that keeps a window of messages \
in flight on one connection), `wsio-sync` and `tungstenite` (a \
thread per connection, `read` + `send`: a write and flush per message), `tokio-tungstenite` \
(`next` + `send`: a flush per message), `tokio-tungstenite-forward` (its echo-server example: \
`split` + `forward`, which flushes when no more input is ready), `fastwebsockets` (its \
echo_server example: `FragmentCollector`, `write_frame` per message, unconstrained task; it \
documents no batching), `tokio-websockets` (its echo_server example: `next` + `send` per \
message, unconstrained task), `tokio-websockets-forward` (`split` + `forward` over its \
sink, which queues frames up to an 8 KiB flush threshold; its stream writes the queue before \
every read, so an echo still writes about once per message), `raw-tcp` (no WebSocket work: the client's \
ceiling). \"best peer\" is the best of every peer column, idioms included.
";

/// Round trips recorded during a run's measurement: a log-linear histogram of nanoseconds (64
/// buckets per power of two, so a percentile is within 1.6 %).
struct Latencies {
    recording: AtomicBool,
    buckets: Vec<AtomicU64>,
}

impl Latencies {
    fn new() -> Self {
        Self {
            recording: AtomicBool::new(false),
            buckets: (0..64 * 60).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn record(&self, elapsed: Duration) {
        if !self.recording.load(Ordering::Relaxed) {
            return;
        }
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        let index = if nanos < 64 {
            nanos as usize
        } else {
            let exponent = 63 - nanos.leading_zeros() as usize;
            let sub = ((nanos >> (exponent - 6)) & 63) as usize;
            (exponent - 5) * 64 + sub
        };
        self.buckets[index.min(self.buckets.len() - 1)].fetch_add(1, Ordering::Relaxed);
    }

    /// The value below which `fraction` of the recorded round trips lie, in microseconds
    /// (the middle of its bucket); `None` with nothing recorded.
    fn percentile(&self, fraction: f64) -> Option<f64> {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = ((fraction * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        let index = counts.iter().position(|&count| {
            seen += count;
            seen >= rank
        })?;
        let nanos = if index < 64 {
            index as f64
        } else {
            let (exponent, sub) = (index / 64 + 5, (index % 64) as u64);
            let width = 1u64 << (exponent - 6);
            ((64 + sub) * width) as f64 + width as f64 / 2.0
        };
        Some(nanos / 1e3)
    }
}

/// Send times of the frames in flight on one connection, oldest first.
type SendTimes = Arc<Mutex<VecDeque<Instant>>>;

/// Per point and server, the p50s and the p99s of the rounds.
type LatencySamples<'a> = BTreeMap<(Point, &'a str), (Vec<f64>, Vec<f64>)>;

/// What one run measured.
struct Outcome {
    /// Echoed messages per second.
    rate: f64,
    /// Round-trip p50 and p99 in µs (one message in flight only).
    latency: Option<(f64, f64)>,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    match args.first().map(String::as_str) {
        Some("suite") => suite(&args[1..], &runtime),
        Some("point") => {
            let num =
                |i: usize| -> usize { args.get(i).and_then(|s| s.parse().ok()).expect("number") };
            let port = num(1) as u16;
            let point = Point {
                conns: num(2),
                size: num(3),
                inflight: num(4),
            };
            let seconds = args.get(5).and_then(|s| s.parse().ok()).unwrap_or(2.0);
            let result = runtime.block_on(run_point(port, point, 0.5, seconds));
            match result {
                Ok(outcome) => println!(
                    "{} msgs/s{}, longest stretch without an echo {} ms",
                    si(outcome.rate),
                    latency_label(outcome.latency, ", round trip p50 / p99 "),
                    STALL_MS.load(Ordering::Relaxed)
                ),
                Err(error) => println!("failed: {error}"),
            }
        }
        _ => eprintln!("usage: loadgen suite [--quick] | loadgen point PORT CONNS SIZE INFLIGHT"),
    }
}

fn suite(args: &[String], runtime: &tokio::runtime::Runtime) {
    let quick = args.iter().any(|a| a == "--quick");
    let option = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse::<f64>().ok())
    };
    let rounds = option("--rounds").map_or(if quick { 1 } else { 3 }, |r| r as usize);
    let seconds = option("--seconds").unwrap_or(if quick { 0.5 } else { 2.0 });
    let warmup = if quick { 0.2 } else { 0.5 };
    let base_port = option("--port").map_or(19_300, |p| p as u16);
    let points: Vec<Point> = if quick {
        [1, 100]
            .iter()
            .flat_map(|&conns| {
                [20, 1 << 10].into_iter().flat_map(move |size| {
                    [1, 16].into_iter().map(move |inflight| Point {
                        conns,
                        size,
                        inflight,
                    })
                })
            })
            .collect()
    } else {
        [1, 100, 1000]
            .iter()
            .flat_map(|&conns| {
                [20, 1 << 10, 64 << 10].into_iter().flat_map(move |size| {
                    [1, 16].into_iter().map(move |inflight| Point {
                        conns,
                        size,
                        inflight,
                    })
                })
            })
            .collect()
    };
    let pin = can_pin();
    let server_cpu = pin.then_some(0);
    // A safety net only: the servers exit when this process drops them (or dies).
    let budget = 4.0 * (rounds * points.len() * SERVERS.len()) as f64 * (seconds + warmup + 5.0);
    println!(
        "loadgen: {} points x {} servers x {rounds} rounds, {warmup} s warm-up + {seconds} s \
         measured per run; servers {}; medians of the rounds.\n",
        points.len(),
        SERVERS.len(),
        if pin {
            "pinned to CPU 0 (taskset -c 0)"
        } else {
            "NOT pinned (taskset or a second CPU missing)"
        }
    );
    let mut servers: Vec<(&str, u16, Child)> = Vec::new();
    for (index, name) in SERVERS.iter().enumerate() {
        let port = base_port + index as u16;
        match spawn_server(name, port, server_cpu, budget as u64) {
            Ok(child) => servers.push((name, port, child)),
            Err(error) => eprintln!("{name}: {error}"),
        }
    }
    let mut samples: BTreeMap<(Point, &str), Vec<f64>> = BTreeMap::new();
    let mut latencies: LatencySamples = BTreeMap::new();
    let started = Instant::now();
    for round in 0..rounds {
        for (p, point) in points.iter().enumerate() {
            for k in 0..servers.len() {
                let (name, port, _) = &servers[(k + round + p) % servers.len()];
                let result = runtime.block_on(run_point(*port, *point, warmup, seconds));
                eprintln!(
                    "[{:>5.0}s] round {} {:>4} conns {:>6} x{:<2} {:<18} {}",
                    started.elapsed().as_secs_f64(),
                    round + 1,
                    point.conns,
                    size_label(point.size),
                    point.inflight,
                    name,
                    match &result {
                        Ok(outcome) => format!(
                            "{}{} (longest gap {} ms)",
                            si(outcome.rate),
                            latency_label(outcome.latency, ", p50 / p99 "),
                            STALL_MS.load(Ordering::Relaxed)
                        ),
                        Err(error) => format!("failed: {error}"),
                    }
                );
                if let Ok(outcome) = result {
                    samples
                        .entry((*point, name))
                        .or_default()
                        .push(outcome.rate);
                    if let Some((p50, p99)) = outcome.latency {
                        let entry = latencies.entry((*point, name)).or_default();
                        entry.0.push(p50);
                        entry.1.push(p99);
                    }
                }
                // Let the server reap the closed connections before the next run.
                std::thread::sleep(Duration::from_millis(if point.conns > 100 {
                    300
                } else {
                    50
                }));
            }
        }
    }
    for (_, _, mut child) in servers {
        let _ = child.kill();
        let _ = child.wait();
    }
    print_echo_table(&points, &mut samples);
    print_latency_table(&points, &mut latencies);
    println!("{LEGEND}");
}

/// ` PREFIXp50 / p99 µs`, or nothing without a latency.
fn latency_label(latency: Option<(f64, f64)>, prefix: &str) -> String {
    latency.map_or(String::new(), |(p50, p99)| {
        format!("{prefix}{} / {} µs", micros(p50), micros(p99))
    })
}

/// Microseconds, three significant digits at most.
fn micros(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0}")
    } else if value >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

/// Round-trip latency at one message in flight: p50 / p99 per server (medians of the rounds),
/// and wsio-tokio's over the lowest peer's.
fn print_latency_table(points: &[Point], latencies: &mut LatencySamples) {
    let mut headers = vec!["conns".to_string(), "size".into()];
    headers.extend(SERVERS.iter().map(|s| s.to_string()));
    headers.push("wsio-tokio / lowest peer (p50 · p99)".into());
    let mut rows = Vec::new();
    for point in points.iter().filter(|p| p.inflight == 1) {
        let mut medians: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
        for name in SERVERS {
            if let Some((p50s, p99s)) = latencies.get_mut(&(*point, *name)) {
                medians.insert(name, (median(p50s), median(p99s)));
            }
        }
        let lowest = |pick: fn(&(f64, f64)) -> f64| {
            PEERS
                .iter()
                .filter_map(|p| medians.get(p).map(pick))
                .fold(f64::INFINITY, f64::min)
        };
        let (lowest_p50, lowest_p99) = (lowest(|l| l.0), lowest(|l| l.1));
        let mut row = vec![point.conns.to_string(), size_label(point.size)];
        for name in SERVERS {
            row.push(match medians.get(name) {
                Some((p50, p99)) => format!("{} · {}", micros(*p50), micros(*p99)),
                None => "failed".into(),
            });
        }
        row.push(match medians.get("wsio-tokio") {
            Some((p50, p99)) if lowest_p50.is_finite() => {
                format!("{:.2} · {:.2}", p50 / lowest_p50, p99 / lowest_p99)
            }
            _ => "–".into(),
        });
        rows.push(row);
    }
    if rows.is_empty() {
        return;
    }
    println!(
        "### Loopback echo, one message in flight: round-trip latency p50 · p99 in µs (median of \
         rounds; lower is better)\n"
    );
    print_table(&headers, &rows);
}

fn print_echo_table(points: &[Point], samples: &mut BTreeMap<(Point, &str), Vec<f64>>) {
    let mut headers = vec!["conns".to_string(), "size".into(), "in flight".into()];
    headers.extend(SERVERS.iter().map(|s| s.to_string()));
    headers.push("wsio-tokio / best peer".into());
    headers.push("wsio-tokio-flush / best peer".into());
    headers.push("wsio-sync / best peer".into());
    let mut rows = Vec::new();
    for point in points {
        let mut medians: BTreeMap<&str, f64> = BTreeMap::new();
        for name in SERVERS {
            if let Some(values) = samples.get_mut(&(*point, *name)) {
                medians.insert(name, median(values));
            }
        }
        let best_peer = PEERS
            .iter()
            .filter_map(|p| medians.get(p))
            .fold(0.0f64, |a, &b| a.max(b));
        let best_ws = SERVERS
            .iter()
            .filter(|s| **s != "raw-tcp")
            .filter_map(|s| medians.get(s))
            .fold(0.0f64, |a, &b| a.max(b));
        let mut row = vec![
            point.conns.to_string(),
            size_label(point.size),
            point.inflight.to_string(),
        ];
        for name in SERVERS {
            row.push(match medians.get(name) {
                Some(&rate) if *name == "raw-tcp" => si(rate),
                Some(&rate) if rate >= best_ws * 0.995 => format!("**{}**", si(rate)),
                Some(&rate) => si(rate),
                None => "failed".into(),
            });
        }
        for name in ["wsio-tokio", "wsio-tokio-flush", "wsio-sync"] {
            row.push(match medians.get(name) {
                Some(&rate) if best_peer > 0.0 => format!("{:.2}", rate / best_peer),
                _ => "–".into(),
            });
        }
        rows.push(row);
    }
    println!(
        "### Loopback echo: messages/s echoed (median of rounds; bold = fastest WebSocket server)\n"
    );
    print_table(&headers, &rows);
}

/// Runs `point` against the server on `port`: connects and upgrades every connection, keeps
/// `inflight` frames outstanding on each, and returns echoed messages per second over
/// `seconds` after `warmup` (and with one in flight, the round trips' p50 and p99).
async fn run_point(port: u16, point: Point, warmup: f64, seconds: f64) -> Result<Outcome, String> {
    let mut frames = Vec::new();
    let payload = binary_payload(point.size);
    for _ in 0..point.inflight {
        push_frame(&mut frames, 0x2, &payload, true);
    }
    let frames: Arc<[u8]> = frames.into();
    let frame_len = frames.len() / point.inflight;
    let connect_limit = Arc::new(Semaphore::new(128));
    let mut connecting = Vec::with_capacity(point.conns);
    for _ in 0..point.conns {
        let limit = Arc::clone(&connect_limit);
        connecting.push(tokio::spawn(async move {
            let _permit = limit.acquire_owned().await.expect("open");
            let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
            stream.set_nodelay(true)?;
            let leftover = client_upgrade(&mut stream).await?;
            if !leftover.is_empty() {
                return Err(std::io::Error::other("data before the first frame"));
            }
            Ok::<_, std::io::Error>(stream)
        }));
    }
    let mut streams = Vec::with_capacity(point.conns);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    for task in connecting {
        match tokio::time::timeout_at(deadline, task).await {
            Ok(Ok(Ok(stream))) => streams.push(stream),
            Ok(Ok(Err(error))) => return Err(format!("connect/upgrade: {error}")),
            Ok(Err(error)) => return Err(format!("connect task: {error}")),
            Err(_) => return Err("connecting took over 30 s".into()),
        }
    }
    let echoed = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(Latencies::new());
    let mut tasks = Vec::with_capacity(point.conns * 2);
    for stream in streams {
        let (reader, writer) = stream.into_split();
        let permits = Arc::new(Semaphore::new(0));
        // Send times of the frames in flight, oldest first (one message in flight only).
        let timing = (point.inflight == 1).then(|| {
            (
                Arc::new(Mutex::new(VecDeque::new())),
                Arc::clone(&latencies),
            )
        });
        tasks.push(tokio::spawn(write_frames(
            writer,
            Arc::clone(&frames),
            frame_len,
            point.inflight,
            Arc::clone(&permits),
            timing.as_ref().map(|(sent, _)| Arc::clone(sent)),
        )));
        tasks.push(tokio::spawn(count_echoes(
            reader,
            Arc::clone(&echoed),
            permits,
            timing,
        )));
    }
    tokio::time::sleep(Duration::from_secs_f64(warmup)).await;
    latencies.recording.store(true, Ordering::Relaxed);
    let (start, before) = (Instant::now(), echoed.load(Ordering::Relaxed));
    // Sample progress every 50 ms to report the longest stretch without any echo.
    let (mut last, mut last_change, mut stall) = (before, Instant::now(), Duration::ZERO);
    let end = start + Duration::from_secs_f64(seconds);
    while Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(50).min(end - Instant::now())).await;
        let now = echoed.load(Ordering::Relaxed);
        if now != last {
            (last, last_change) = (now, Instant::now());
        }
        stall = stall.max(last_change.elapsed());
    }
    let (elapsed, after) = (start.elapsed(), echoed.load(Ordering::Relaxed));
    latencies.recording.store(false, Ordering::Relaxed);
    STALL_MS.store(stall.as_millis() as u64, Ordering::Relaxed);
    let failed = tasks.iter().any(|task| task.is_finished());
    for task in tasks {
        task.abort();
        let _ = task.await;
    }
    if failed {
        return Err("a connection failed during the run".into());
    }
    if after == before {
        return Err(format!(
            "no echo during the measurement ({} before it)",
            before
        ));
    }
    let latency = latencies
        .percentile(0.50)
        .zip(latencies.percentile(0.99))
        .filter(|_| point.inflight == 1);
    Ok(Outcome {
        rate: (after - before) as f64 / elapsed.as_secs_f64(),
        latency,
    })
}

/// Writes the first window of frames, then one frame per permit (one per echoed frame),
/// batching the permits that are already there. With `sent`, notes each frame's send time
/// just before its write.
async fn write_frames(
    mut writer: OwnedWriteHalf,
    frames: Arc<[u8]>,
    frame_len: usize,
    inflight: usize,
    permits: Arc<Semaphore>,
    sent: Option<SendTimes>,
) -> io::Result<()> {
    let note = |count: usize| {
        if let Some(sent) = &sent {
            let now = Instant::now();
            let mut sent = sent.lock().expect("not poisoned");
            sent.extend(std::iter::repeat_n(now, count));
        }
    };
    note(inflight);
    writer.write_all(&frames).await?;
    loop {
        permits.acquire().await.expect("never closed").forget();
        let mut count = 1;
        while count < inflight {
            match permits.try_acquire() {
                Ok(permit) => {
                    permit.forget();
                    count += 1;
                }
                Err(_) => break,
            }
        }
        note(count);
        writer.write_all(&frames[..count * frame_len]).await?;
    }
}

/// Counts complete echoed frames and hands the writer one permit for each; with `timing`,
/// records each one's round trip from the send time the writer noted.
async fn count_echoes(
    mut reader: OwnedReadHalf,
    echoed: Arc<AtomicU64>,
    permits: Arc<Semaphore>,
    timing: Option<(SendTimes, Arc<Latencies>)>,
) -> io::Result<()> {
    let mut counter = FrameCounter::default();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = reader.read(&mut buf).await?;
        if n == 0 {
            return Err(io::Error::other("server closed"));
        }
        let done = counter.feed(&buf[..n]);
        if done > 0 {
            if let Some((sent, latencies)) = &timing {
                let now = Instant::now();
                let mut sent = sent.lock().expect("not poisoned");
                for _ in 0..done {
                    if let Some(at) = sent.pop_front() {
                        latencies.record(now - at);
                    }
                }
            }
            echoed.fetch_add(done as u64, Ordering::Relaxed);
            permits.add_permits(done);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_within_the_bucket_width() {
        let latencies = Latencies::new();
        assert_eq!(latencies.percentile(0.5), None);
        latencies.recording.store(true, Ordering::Relaxed);
        // 1 µs, 2 µs, ..., 1000 µs: the p50 is 500 µs, the p99 990 µs.
        for micros in 1..=1000u64 {
            latencies.record(Duration::from_micros(micros));
        }
        let p50 = latencies.percentile(0.50).expect("recorded");
        let p99 = latencies.percentile(0.99).expect("recorded");
        assert!((p50 / 500.0 - 1.0).abs() < 0.016, "p50 {p50}");
        assert!((p99 / 990.0 - 1.0).abs() < 0.016, "p99 {p99}");
    }

    #[test]
    fn nothing_is_recorded_outside_the_measurement() {
        let latencies = Latencies::new();
        latencies.record(Duration::from_micros(5));
        assert_eq!(latencies.percentile(0.5), None);
        latencies.recording.store(true, Ordering::Relaxed);
        latencies.record(Duration::from_nanos(40));
        latencies.record(Duration::from_secs(3));
        assert_eq!(latencies.percentile(0.5), Some(0.04));
        let p100 = latencies.percentile(1.0).expect("recorded");
        assert!((p100 / 3e6 - 1.0).abs() < 0.016, "max {p100}");
    }
}
