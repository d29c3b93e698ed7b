//! In-memory codec throughput: decode masked client frames and encode server frames, wsio against
//! its peers, with memcpy / unmask / UTF-8 floors measured in the same interleaved loop.
//!
//! ```text
//! codec [--quick] [--reps N] [FILTER...]     tables (a cell runs if its id contains every FILTER)
//! codec --profile DIR KIND SIZE CONTENDER [RUNS]   one contender only, for callgrind
//! ```
//! Cell ids look like `decode/text/1 KiB`; contenders are listed by `codec --list`.

use std::hint::black_box;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::runtime::Runtime;
use wsio_benches::{
    MemStream, binary_payload, median, print_table, push_frame, si, size_label, text_payload, time,
};

const SIZES: &[usize] = &[16, 125, 1 << 10, 16 << 10, 1 << 20];

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Dir {
    Decode,
    Encode,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Binary,
    Text,
}

/// One cell's inputs: `n` messages of `size` bytes, as a wire buffer of masked client frames
/// (decode) and as the payload to send (encode).
struct Case {
    dir: Dir,
    kind: Kind,
    size: usize,
    n: usize,
    wire: Vec<u8>,
    payload: Bytes,
    /// The payload masked with the bench key, for the unmask floor.
    masked: Vec<u8>,
    /// The message each library sends, built (and for text, validated) outside the timing.
    wsio_message: wsio::proto::Message,
    tungstenite_message: tungstenite::Message,
}

impl Case {
    fn new(dir: Dir, kind: Kind, size: usize, quick: bool) -> Self {
        let budget = if quick { 2 << 20 } else { 8 << 20 };
        let n = (budget / (size + 14)).clamp(8, 262_144);
        let payload: Bytes = match kind {
            Kind::Binary => binary_payload(size).into(),
            Kind::Text => text_payload(size).into_bytes().into(),
        };
        let opcode = if kind == Kind::Text { 0x1 } else { 0x2 };
        let mut wire = Vec::new();
        if dir == Dir::Decode {
            wire.reserve(n * (size + 14));
            for _ in 0..n {
                push_frame(&mut wire, opcode, &payload, true);
            }
        }
        let mut masked = payload.to_vec();
        wsio::proto::apply_mask(&mut masked, wsio_benches::MASK, 0);
        let wsio_message = match kind {
            Kind::Binary => wsio::proto::Message::Binary(payload.clone()),
            Kind::Text => wsio::proto::Message::Text(
                wsio::proto::Utf8Bytes::try_from(payload.clone()).expect("utf-8"),
            ),
        };
        let tungstenite_message = match kind {
            Kind::Binary => tungstenite::Message::Binary(payload.clone()),
            Kind::Text => tungstenite::Message::Text(
                tungstenite::Utf8Bytes::try_from(payload.clone()).expect("utf-8"),
            ),
        };
        Self {
            dir,
            kind,
            size,
            n,
            wire,
            payload,
            masked,
            wsio_message,
            tungstenite_message,
        }
    }

    fn id(&self) -> String {
        format!(
            "{}/{}/{}",
            match self.dir {
                Dir::Decode => "decode",
                Dir::Encode => "encode",
            },
            match self.kind {
                Kind::Binary => "binary",
                Kind::Text => "text",
            },
            size_label(self.size)
        )
    }

    fn text(&self) -> bool {
        self.kind == Kind::Text
    }
}

/// What a run saw: messages and payload bytes, checked against the case.
#[derive(Debug, Default, PartialEq, Eq)]
struct Tally {
    messages: usize,
    bytes: usize,
}

impl Tally {
    fn add(&mut self, len: usize) {
        self.messages += 1;
        self.bytes += len;
    }
}

type Run = fn(&Case, &Runtime) -> Tally;

/// What every cell measures, printed above the tables.
const METHOD: &str = "\
What a cell measures: one contender turning N messages of one size into the other form, all of \
it in memory on one core: messages/s · GB/s of payload · ratio to the fastest contender in the \
row (**1.00** = fastest).

- Decode: N masked client frames, prepared before the timing, are read from an in-memory stream \
that hands out at most 64 KiB per read, each read copying into the contender's buffer as a socket \
read would. Every contender pays that one transport copy. A message counts when the library has \
handed it out whole (text checked as UTF-8).
- Encode: N sends of a prepared message; every frame is copied into a 1 MiB in-memory sink, as a \
socket write copies into the kernel. Checked: the sink received exactly N whole frames.
- `wsio`: the sans-IO core driven as a driver would: `Connection::receive_with` reads from the \
stream straight into the connection's buffer (or onto a large binary message), then \
`poll_event`; encoding `send_binary`/`send_text` below 4 KiB, `send` above, then \
`transmit_slices`, one vectored write and `advance_transmit`.
- `wsio-sync`, `wsio-tokio`: the adapters' `read` and `send_binary`/`send_text`/`send` over the \
same stream. `tungstenite`: `read` / `send`. `tokio-tungstenite`, `tokio-websockets`: \
`StreamExt::next` / `SinkExt::send`. `fastwebsockets`: `FragmentCollector::read_frame` / \
`write_frame` of a borrowed payload. Default settings everywhere; async ones on a \
current-thread tokio runtime.
- Decode floors (no stream, no framing): `memcpy` copies each payload out of the wire buffer, \
`unmask` XORs a payload-sized buffer, `utf8` validates it (simdutf8), `floor` copies it out \
unmasking in the same pass (+ UTF-8 for text): the least a decoder handing out owned messages \
can do.
";

/// The WebSocket implementations, and the floors (names starting with `floor:`).
const CONTENDERS: &[(&str, Run)] = &[
    ("wsio", wsio_proto),
    ("wsio-sync", wsio_sync),
    ("wsio-tokio", wsio_tokio),
    ("tungstenite", tungstenite_sync),
    ("tokio-tungstenite", tokio_tungstenite),
    ("fastwebsockets", fastwebsockets),
    ("tokio-websockets", tokio_websockets),
];

const FLOORS: &[(&str, Run)] = &[
    ("memcpy", floor_memcpy),
    ("unmask", floor_unmask),
    ("utf8", floor_utf8),
    ("floor", floor_all),
];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    if args.first().map(String::as_str) == Some("--list") {
        for (name, _) in CONTENDERS.iter().chain(FLOORS) {
            println!("{name}");
        }
        return;
    }
    if args.first().map(String::as_str) == Some("--profile") {
        profile(&args[1..], &runtime);
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    let mut reps = if quick { 3 } else { 11 };
    let mut filters = Vec::new();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--quick" => {}
            "--reps" => reps = iter.next().and_then(|r| r.parse().ok()).expect("--reps N"),
            other => filters.push(other.to_string()),
        }
    }
    println!(
        "codec: {reps} interleaved rounds per cell after 1 warm-up run each; medians.\n\n{METHOD}"
    );
    for dir in [Dir::Decode, Dir::Encode] {
        for kind in [Kind::Binary, Kind::Text] {
            let mut rows = Vec::new();
            let mut floor_rows = Vec::new();
            for &size in SIZES {
                let case = Case::new(dir, kind, size, quick);
                let id = case.id();
                if !filters.iter().all(|f| id.contains(f.as_str())) {
                    continue;
                }
                eprintln!("{id}: {} messages per run", case.n);
                let results = measure(&case, &runtime, reps);
                rows.push(cell_row(&case, &results));
                if dir == Dir::Decode {
                    floor_rows.push(floor_row(&case, &results));
                }
            }
            if rows.is_empty() {
                continue;
            }
            println!(
                "### {} {}: messages/s · GB/s · ratio to the best contender\n",
                match dir {
                    Dir::Decode => "Decode (masked client frames → messages)",
                    Dir::Encode => "Encode (messages → server frames)",
                },
                if kind == Kind::Text { "text" } else { "binary" }
            );
            let mut headers = vec!["payload".to_string()];
            headers.extend(CONTENDERS.iter().map(|(name, _)| name.to_string()));
            print_table(&headers, &rows);
            if dir == Dir::Decode {
                println!(
                    "Floors ({}): GB/s of payload; `wsio/floor` is the floor's time over wsio's.\n",
                    if kind == Kind::Text {
                        "floor = copy unmasking in one pass + UTF-8 validation per payload"
                    } else {
                        "floor = copy unmasking in one pass per payload"
                    }
                );
                let headers: Vec<String> = [
                    "payload",
                    "memcpy",
                    "unmask",
                    "utf8",
                    "floor",
                    "wsio",
                    "wsio/floor",
                ]
                .iter()
                .map(|s| s.to_string())
                .collect();
                print_table(&headers, &floor_rows);
            }
        }
    }
}

/// Median seconds per run for every contender and floor, interleaved: each round runs them all
/// once, starting from a different one.
fn measure(case: &Case, runtime: &Runtime, reps: usize) -> Vec<(&'static str, f64)> {
    let all: Vec<(&str, Run)> = CONTENDERS
        .iter()
        .chain(FLOORS)
        .copied()
        .filter(|(name, _)| case.text() || *name != "utf8")
        .collect();
    let expected = Tally {
        messages: case.n,
        bytes: case.n * case.size,
    };
    let header = match case.size {
        0..=125 => 2,
        126..=0xFFFF => 4,
        _ => 10,
    };
    for (name, run) in &all {
        wsio_benches::take_sink_written();
        let tally = run(case, runtime);
        assert_eq!(tally, expected, "{name} on {}", case.id());
        // Every encoder must really have written its frames, whole, into the sink.
        let written = wsio_benches::take_sink_written();
        let contender = CONTENDERS.iter().any(|(contender, _)| contender == name);
        if case.dir == Dir::Encode && contender {
            let frames = case.n * (header + case.size);
            assert_eq!(written, frames as u64, "{name} wrote on {}", case.id());
        }
    }
    let mut samples = vec![Vec::new(); all.len()];
    for round in 0..reps {
        for k in 0..all.len() {
            let index = (k + round) % all.len();
            let (_, run) = all[index];
            let (elapsed, tally) = time(|| run(case, runtime));
            black_box(tally);
            samples[index].push(elapsed.as_secs_f64());
        }
    }
    all.iter()
        .zip(samples.iter_mut())
        .map(|((name, _), samples)| (*name, median(samples)))
        .collect()
}

fn seconds(results: &[(&str, f64)], name: &str) -> Option<f64> {
    results.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
}

fn cell_row(case: &Case, results: &[(&str, f64)]) -> Vec<String> {
    let best = CONTENDERS
        .iter()
        .filter_map(|(name, _)| seconds(results, name))
        .fold(f64::INFINITY, f64::min);
    let mut row = vec![size_label(case.size)];
    for (name, _) in CONTENDERS {
        let secs = seconds(results, name).expect("measured");
        let rate = case.n as f64 / secs;
        let gbps = (case.n * case.size) as f64 / secs / 1e9;
        let ratio = best / secs;
        let ratio = if ratio >= 0.995 {
            "**1.00**".to_string()
        } else {
            format!("{ratio:.2}")
        };
        row.push(format!("{} · {gbps:.2} · {ratio}", si(rate)));
    }
    row
}

fn floor_row(case: &Case, results: &[(&str, f64)]) -> Vec<String> {
    let bytes = (case.n * case.size) as f64;
    let gbps = |name: &str| {
        seconds(results, name).map_or("–".to_string(), |s| format!("{:.2}", bytes / s / 1e9))
    };
    let floor = seconds(results, "floor").expect("floor");
    let wsio = seconds(results, "wsio").expect("wsio");
    vec![
        size_label(case.size),
        gbps("memcpy"),
        gbps("unmask"),
        gbps("utf8"),
        gbps("floor"),
        gbps("wsio"),
        format!("{:.0}%", 100.0 * floor / wsio),
    ]
}

/// `--profile DIR KIND SIZE CONTENDER [RUNS]`: runs one contender on one cell, for callgrind
/// (`--toggle-collect='*profiled*'` keeps the case set-up out of the counts).
fn profile(args: &[String], runtime: &Runtime) {
    let dir = match args.first().map(String::as_str) {
        Some("decode") => Dir::Decode,
        Some("encode") => Dir::Encode,
        _ => panic!("--profile decode|encode binary|text SIZE CONTENDER [RUNS]"),
    };
    let kind = match args.get(1).map(String::as_str) {
        Some("text") => Kind::Text,
        _ => Kind::Binary,
    };
    let size: usize = args.get(2).and_then(|s| s.parse().ok()).expect("SIZE");
    let name = args.get(3).expect("CONTENDER");
    let runs: usize = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(1);
    let run = CONTENDERS
        .iter()
        .chain(FLOORS)
        .find(|(n, _)| n == name)
        .map(|(_, run)| *run)
        .expect("unknown contender");
    let mut case = Case::new(dir, kind, size, true);
    // A count that depends only on the size, so instruction counts compare across contenders
    // and commits: 10 000 messages, or 16 MiB of payload for the large ones.
    case.n = ((16 << 20) / size).clamp(16, 10_000);
    if dir == Dir::Decode {
        let mut wire = Vec::new();
        for _ in 0..case.n {
            push_frame(
                &mut wire,
                if case.text() { 1 } else { 2 },
                &case.payload,
                true,
            );
        }
        case.wire = wire;
    }
    // One untraced run first so lazy initialisation stays out of the profile.
    black_box(run(&case, runtime));
    for _ in 0..runs {
        let tally = profiled(run, &case, runtime);
        assert_eq!(tally.messages, case.n);
    }
    println!("{} {} x{} messages, {} runs", case.id(), name, case.n, runs);
}

#[inline(never)]
fn profiled(run: Run, case: &Case, runtime: &Runtime) -> Tally {
    black_box(run(black_box(case), runtime))
}

// ---------------------------------------------------------------------------------------------
// Contenders. Each one decodes `case.wire` into `case.n` messages, or encodes `case.n` messages
// into the sink, through its library's idiomatic API.

/// The wsio contenders send payloads shorter than this from a borrow (`send_binary`,
/// `send_text`), longer ones as the `Bytes` they are, as wsio's docs advise.
const BORROW_BELOW: usize = 4096;

/// wsio's sans-IO core driven as a driver would drive it: every read goes from the in-memory
/// stream straight into the connection with `receive_with` (one copy, like the other
/// contenders' reads from the stream into their buffers; the rest of a large binary frame is
/// read onto its message), then `poll_event`. Encoding: `send_binary`/`send_text` (payloads
/// below 4 KiB) or `send` of the `Bytes`, then `transmit_slices` + one vectored write +
/// `advance_transmit`.
fn wsio_proto(case: &Case, _: &Runtime) -> Tally {
    use wsio::proto::{Config, Connection, Event};
    let mut conn = Connection::server(Config::default());
    let mut tally = Tally::default();
    let mut stream = MemStream::new(&case.wire);
    match case.dir {
        Dir::Decode => {
            while tally.messages < case.n {
                let read = conn.receive_with(wsio_benches::READ_CHUNK, |buf| stream.read_buf(buf));
                assert!(read > 0, "input ended after {} messages", tally.messages);
                while let Some(event) = conn.poll_event() {
                    match event.expect("valid input") {
                        Event::Message(message) => tally.add(message.len()),
                        other => panic!("unexpected {other:?}"),
                    }
                }
            }
        }
        Dir::Encode => {
            use std::io::Write;
            let message = &case.wsio_message;
            // As wsio's docs advise: a payload is copied from a borrow (like fastwebsockets'
            // `Payload::Borrowed`) unless it is long and already a `Bytes`, which is then
            // handed over and written from there without a copy, in one vectored write with
            // its header.
            let borrowed = case.size < BORROW_BELOW;
            for _ in 0..case.n {
                if borrowed {
                    match message {
                        wsio::proto::Message::Text(text) => conn.send_text(text),
                        wsio::proto::Message::Binary(data) => conn.send_binary(data),
                    }
                    .expect("send");
                } else {
                    conn.send(message.clone()).expect("send");
                }
                while conn.buffered_amount() > 0 {
                    let mut slices = [std::io::IoSlice::new(&[]); 4];
                    let filled = conn.transmit_slices(&mut slices);
                    let written = stream.write_vectored(&slices[..filled]).expect("sink");
                    conn.advance_transmit(written);
                }
                tally.add(message.len());
            }
        }
    }
    tally
}

/// wsio's blocking adapter over the in-memory stream: `read`, and `send_binary`/`send_text`
/// below 4 KiB or `send`.
fn wsio_sync(case: &Case, _: &Runtime) -> Tally {
    let options = wsio::Options::default();
    let conn = wsio::proto::Connection::server(options.connection.clone());
    let mut ws = wsio::sync::WebSocket::from_connection(MemStream::new(&case.wire), conn, &options);
    let mut tally = Tally::default();
    match case.dir {
        Dir::Decode => {
            for _ in 0..case.n {
                let message = ws.read().expect("read").expect("message");
                tally.add(message.len());
            }
        }
        Dir::Encode => {
            let message = &case.wsio_message;
            // Like the core: from a borrow below 4 KiB, as the docs advise.
            for _ in 0..case.n {
                match message {
                    wsio::proto::Message::Text(text) if case.size < BORROW_BELOW => {
                        ws.send_text(text)
                    }
                    wsio::proto::Message::Binary(data) if case.size < BORROW_BELOW => {
                        ws.send_binary(data)
                    }
                    _ => ws.send(message.clone()),
                }
                .expect("send");
                tally.add(message.len());
            }
        }
    }
    tally
}

/// wsio's tokio adapter: `read`, and `send_binary`/`send_text` below 4 KiB or `send` (each
/// writes and flushes).
fn wsio_tokio(case: &Case, runtime: &Runtime) -> Tally {
    runtime.block_on(async {
        let options = wsio::Options::default();
        let conn = wsio::proto::Connection::server(options.connection.clone());
        let mut ws = wsio::tokio::WebSocketStream::from_connection(
            MemStream::new(&case.wire),
            conn,
            &options,
        );
        let mut tally = Tally::default();
        match case.dir {
            Dir::Decode => {
                for _ in 0..case.n {
                    let message = ws.read().await.expect("read").expect("message");
                    tally.add(message.len());
                }
            }
            Dir::Encode => {
                let message = &case.wsio_message;
                // Like the core: from a borrow below 4 KiB, as the docs advise.
                for _ in 0..case.n {
                    match message {
                        wsio::proto::Message::Text(text) if case.size < BORROW_BELOW => {
                            ws.send_text(text).await
                        }
                        wsio::proto::Message::Binary(data) if case.size < BORROW_BELOW => {
                            ws.send_binary(data).await
                        }
                        _ => ws.send(message.clone()).await,
                    }
                    .expect("send");
                    tally.add(message.len());
                }
            }
        }
        tally
    })
}

fn tungstenite_len(message: &tungstenite::Message) -> usize {
    match message {
        tungstenite::Message::Binary(data) => data.len(),
        tungstenite::Message::Text(text) => text.len(),
        other => panic!("unexpected {other:?}"),
    }
}

/// tungstenite: `WebSocket::from_raw_socket`, `read` and `send`.
fn tungstenite_sync(case: &Case, _: &Runtime) -> Tally {
    use tungstenite::protocol::{Role, WebSocket};
    let mut ws = WebSocket::from_raw_socket(MemStream::new(&case.wire), Role::Server, None);
    let mut tally = Tally::default();
    match case.dir {
        Dir::Decode => {
            for _ in 0..case.n {
                let message = ws.read().expect("read");
                tally.add(tungstenite_len(&message));
            }
        }
        Dir::Encode => {
            let message = &case.tungstenite_message;
            for _ in 0..case.n {
                ws.send(message.clone()).expect("send");
                tally.add(case.size);
            }
        }
    }
    tally
}

/// tokio-tungstenite: `Stream::next` and `SinkExt::send`.
fn tokio_tungstenite(case: &Case, runtime: &Runtime) -> Tally {
    use tokio_tungstenite::WebSocketStream;
    use tungstenite::protocol::Role;
    runtime.block_on(async {
        let mut ws =
            WebSocketStream::from_raw_socket(MemStream::new(&case.wire), Role::Server, None).await;
        let mut tally = Tally::default();
        match case.dir {
            Dir::Decode => {
                for _ in 0..case.n {
                    let message = ws.next().await.expect("message").expect("read");
                    tally.add(tungstenite_len(&message));
                }
            }
            Dir::Encode => {
                let message = &case.tungstenite_message;
                for _ in 0..case.n {
                    ws.send(message.clone()).await.expect("send");
                    tally.add(case.size);
                }
            }
        }
        tally
    })
}

/// fastwebsockets: `FragmentCollector::read_frame` (whole messages, UTF-8 checked) and
/// `write_frame` with a borrowed payload.
fn fastwebsockets(case: &Case, runtime: &Runtime) -> Tally {
    use fastwebsockets::{FragmentCollector, Frame, OpCode, Payload, Role, WebSocket};
    runtime.block_on(async {
        let ws = WebSocket::after_handshake(MemStream::new(&case.wire), Role::Server);
        let mut ws = FragmentCollector::new(ws);
        let mut tally = Tally::default();
        match case.dir {
            Dir::Decode => {
                for _ in 0..case.n {
                    let frame = ws.read_frame().await.expect("read");
                    assert!(matches!(frame.opcode, OpCode::Binary | OpCode::Text));
                    tally.add(frame.payload.len());
                }
            }
            Dir::Encode => {
                for _ in 0..case.n {
                    let payload = Payload::Borrowed(&case.payload);
                    let frame = match case.kind {
                        Kind::Binary => Frame::binary(payload),
                        Kind::Text => Frame::text(payload),
                    };
                    ws.write_frame(frame).await.expect("write");
                    tally.add(case.size);
                }
            }
        }
        tally
    })
}

/// tokio-websockets: `ServerBuilder::serve`, `Stream::next` and `SinkExt::send`.
fn tokio_websockets(case: &Case, runtime: &Runtime) -> Tally {
    use tokio_websockets::{Message, ServerBuilder};
    runtime.block_on(async {
        let mut ws = ServerBuilder::new().serve(MemStream::new(&case.wire));
        let mut tally = Tally::default();
        match case.dir {
            Dir::Decode => {
                for _ in 0..case.n {
                    let message = ws.next().await.expect("message").expect("read");
                    assert!(message.is_binary() || message.is_text());
                    tally.add(message.as_payload().len());
                }
            }
            Dir::Encode => {
                let message = match case.kind {
                    Kind::Binary => Message::binary(case.payload.clone()),
                    Kind::Text => Message::text(case.payload.clone()),
                };
                for _ in 0..case.n {
                    ws.send(message.clone()).await.expect("send");
                    tally.add(case.size);
                }
            }
        }
        tally
    })
}

// ---------------------------------------------------------------------------------------------
// Floors: the least work any decoder does per payload (decode), or the sink's copy (encode).

/// Copies every payload out of the wire buffer (decode) or into the sink (encode).
fn floor_memcpy(case: &Case, _: &Runtime) -> Tally {
    let mut tally = Tally::default();
    match case.dir {
        Dir::Decode => {
            let mut dst = vec![0u8; case.size];
            for_each_payload(case, |payload| {
                dst.copy_from_slice(payload);
                black_box(&mut dst);
                tally.add(payload.len());
            });
        }
        Dir::Encode => {
            use std::io::Write;
            let mut stream = MemStream::new(&[]);
            for _ in 0..case.n {
                stream.write_all(&case.payload).expect("sink");
                tally.add(case.size);
            }
        }
    }
    tally
}

/// XORs a payload-sized buffer with the mask, `n` times (`wsio::proto::apply_mask`).
fn floor_unmask(case: &Case, _: &Runtime) -> Tally {
    let mut tally = Tally::default();
    let mut buf = case.masked.clone();
    for _ in 0..case.n {
        wsio::proto::apply_mask(black_box(&mut buf), wsio_benches::MASK, 0);
        tally.add(buf.len());
    }
    tally
}

/// UTF-8 validation of the payload, `n` times (text only), with `simdutf8`: the fastest safe
/// validator we know of, and the one wsio uses, so the floor is not one wsio could beat by
/// switching validators (`std::str::from_utf8` is about 3 times slower on this text).
fn floor_utf8(case: &Case, _: &Runtime) -> Tally {
    let mut tally = Tally::default();
    for _ in 0..case.n {
        let text = simdutf8::basic::from_utf8(black_box(&case.payload)).expect("utf-8");
        tally.add(text.len());
    }
    tally
}

/// Decode: copy each payload out of the wire buffer unmasking it on the way (in one pass, with
/// `wsio::proto::extend_unmasked`: faster than a copy and then `apply_mask`) and (text)
/// validate it. Encode: the same as `memcpy` (the header is a few bytes).
fn floor_all(case: &Case, runtime: &Runtime) -> Tally {
    if case.dir == Dir::Encode {
        return floor_memcpy(case, runtime);
    }
    let mut tally = Tally::default();
    let mut dst = bytes::BytesMut::with_capacity(case.size);
    let text = case.text();
    for_each_payload(case, |payload| {
        dst.clear();
        wsio::proto::extend_unmasked(&mut dst, payload, wsio_benches::MASK, 0);
        if text {
            simdutf8::basic::from_utf8(&dst).expect("utf-8");
        }
        black_box(&mut dst);
        tally.add(payload.len());
    });
    tally
}

/// Walks the masked payloads of the wire buffer (all frames have the same header length).
fn for_each_payload(case: &Case, mut f: impl FnMut(&[u8])) {
    let header = match case.size {
        0..=125 => 6,
        126..=0xFFFF => 8,
        _ => 14,
    };
    let frame = header + case.size;
    for start in (0..case.n).map(|i| i * frame) {
        f(&case.wire[start + header..start + frame]);
    }
}
