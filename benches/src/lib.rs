//! Shared pieces of the benchmark binaries: payloads, wire frames, in-memory streams, timing
//! and table printing. No WebSocket library is used here: frames are built by hand so the load
//! generator and the codec inputs are the same bytes for every contender.

use std::io::{self, IoSlice, Read, Write};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The masking key of every client frame the benches build (any key will do).
pub const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// How many bytes one read of the in-memory stream returns at most: the 64 KiB a socket read
/// typically hands a WebSocket library.
pub const READ_CHUNK: usize = 64 << 10;

/// A deterministic pseudo-random binary payload.
pub fn binary_payload(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15 ^ len as u64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// A JSON-like text payload of exactly `len` bytes, with some non-ASCII in every record (about
/// one byte in nine is part of a multi-byte code point), so UTF-8 validation leaves its ASCII
/// fast path.
pub fn text_payload(len: usize) -> String {
    let mut text = String::with_capacity(len + 128);
    let mut id = 0u32;
    while text.len() < len {
        text.push_str(&format!(
            "{{\"név\":\"Zoë\",\"id\":{id},\"city\":\"München\",\"tags\":[\"α\",\"β→γ\"],\
             \"note\":\"déjà vu ✓\",\"ok\":true}},"
        ));
        id += 1;
    }
    let mut cut = len;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    text.truncate(cut);
    while text.len() < len {
        text.push(' ');
    }
    text
}

/// Appends one frame to `out`: FIN set, `opcode`, masked with [`MASK`] when `masked`.
pub fn push_frame(out: &mut Vec<u8>, opcode: u8, payload: &[u8], masked: bool) {
    let mask_bit = if masked { 0x80 } else { 0 };
    out.push(0x80 | opcode);
    match payload.len() {
        len @ 0..=125 => out.push(mask_bit | len as u8),
        len @ 126..=0xFFFF => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    if masked {
        out.extend_from_slice(&MASK);
        out.extend(
            payload
                .iter()
                .enumerate()
                .map(|(index, byte)| byte ^ MASK[index % 4]),
        );
    } else {
        out.extend_from_slice(payload);
    }
}

/// Counts complete frames in a byte stream that arrives in pieces, masked or not, without
/// copying payloads: the load generator's whole "WebSocket library".
#[derive(Debug, Default)]
pub struct FrameCounter {
    header: [u8; 14],
    header_len: usize,
    /// Payload bytes of the current frame still to skip.
    skip: u64,
    in_payload: bool,
}

impl FrameCounter {
    /// Feeds the next bytes; returns how many frames they completed.
    pub fn feed(&mut self, mut data: &[u8]) -> usize {
        let mut frames = 0;
        while !data.is_empty() {
            if self.in_payload {
                let take = (self.skip.min(data.len() as u64)) as usize;
                self.skip -= take as u64;
                data = &data[take..];
                if self.skip == 0 {
                    self.in_payload = false;
                    frames += 1;
                }
                continue;
            }
            self.header[self.header_len] = data[0];
            self.header_len += 1;
            data = &data[1..];
            if let Some(payload_len) = self.header_complete() {
                self.header_len = 0;
                if payload_len == 0 {
                    frames += 1;
                } else {
                    self.skip = payload_len;
                    self.in_payload = true;
                }
            }
        }
        frames
    }

    fn header_complete(&self) -> Option<u64> {
        let header = &self.header[..self.header_len];
        if header.len() < 2 {
            return None;
        }
        let mask_len = if header[1] & 0x80 != 0 { 4 } else { 0 };
        let (extra, payload_len) = match header[1] & 0x7F {
            126 if header.len() >= 4 => (2, u64::from(u16::from_be_bytes([header[2], header[3]]))),
            127 if header.len() >= 10 => (
                8,
                u64::from_be_bytes(header[2..10].try_into().expect("8 bytes")),
            ),
            126 | 127 => return None,
            short => (0, u64::from(short)),
        };
        (header.len() == 2 + extra + mask_len).then_some(payload_len)
    }
}

/// A stream over a pre-built input that hands out at most [`READ_CHUNK`] bytes per read and
/// copies everything written into a reused buffer, as a socket would.
#[derive(Debug)]
pub struct MemStream<'a> {
    input: &'a [u8],
    pub sink: Sink,
}

impl<'a> MemStream<'a> {
    pub fn new(input: &'a [u8]) -> Self {
        Self {
            input,
            sink: Sink::default(),
        }
    }

    /// Reads into the spare capacity of `buf`, as a socket read into a `BytesMut` does (tokio's
    /// `read_buf`): at most [`READ_CHUNK`] bytes, and at least 64 bytes of room (reserved when
    /// there is less). Returns the bytes read; 0 at the end of the input.
    pub fn read_buf(&mut self, buf: &mut bytes::BytesMut) -> usize {
        let room = (buf.capacity() - buf.len()).max(64);
        let n = room.min(self.input.len()).min(READ_CHUNK);
        buf.extend_from_slice(&self.input[..n]);
        self.input = &self.input[n..];
        n
    }

    fn read_into(&mut self, buf: &mut [u8]) -> usize {
        let n = buf.len().min(self.input.len()).min(READ_CHUNK);
        buf[..n].copy_from_slice(&self.input[..n]);
        self.input = &self.input[n..];
        n
    }
}

/// Where written bytes go: copied into a buffer that is reset when it passes 1 MiB, so writing
/// costs one memcpy per byte for every contender, like a socket's copy into the kernel.
#[derive(Debug, Default)]
pub struct Sink {
    buf: Vec<u8>,
    pub written: u64,
    pub writes: u64,
}

thread_local! {
    static SINK_WRITTEN: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Bytes written into every sink of this thread since the last call: how a harness checks
/// that an encoder wrote whole frames.
pub fn take_sink_written() -> u64 {
    SINK_WRITTEN.with(|written| written.replace(0))
}

impl Sink {
    fn take(&mut self, data: &[u8]) {
        if self.buf.len() + data.len() > 1 << 20 {
            self.buf.clear();
        }
        self.buf.extend_from_slice(data);
        self.written += data.len() as u64;
        SINK_WRITTEN.with(|written| written.set(written.get() + data.len() as u64));
    }

    fn take_vectored(&mut self, slices: &[IoSlice<'_>]) -> usize {
        self.writes += 1;
        let mut total = 0;
        for slice in slices {
            self.take(slice);
            total += slice.len();
        }
        total
    }
}

impl Read for MemStream<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        Ok(self.read_into(buf))
    }
}

impl Write for MemStream<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.sink.writes += 1;
        self.sink.take(data);
        Ok(data.len())
    }

    fn write_vectored(&mut self, slices: &[IoSlice<'_>]) -> io::Result<usize> {
        Ok(self.sink.take_vectored(slices))
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl AsyncRead for MemStream<'_> {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        // `put_slice` writes into the spare capacity without initialising the rest of it first,
        // as a socket read does.
        let this = self.get_mut();
        let n = buf.remaining().min(this.input.len()).min(READ_CHUNK);
        buf.put_slice(&this.input[..n]);
        this.input = &this.input[n..];
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for MemStream<'_> {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.sink.writes += 1;
        this.sink.take(data);
        Poll::Ready(Ok(data.len()))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        slices: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(self.get_mut().sink.take_vectored(slices)))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Times one run of `f`.
pub fn time<T>(f: impl FnOnce() -> T) -> (Duration, T) {
    let start = Instant::now();
    let out = f();
    (start.elapsed(), out)
}

pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    let n = values.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// Formats a rate with a metric suffix: 1234567 -> "1.23M".
pub fn si(value: f64) -> String {
    let (scaled, suffix) = match value {
        v if v >= 1e9 => (v / 1e9, "G"),
        v if v >= 1e6 => (v / 1e6, "M"),
        v if v >= 1e3 => (v / 1e3, "k"),
        v => (v, ""),
    };
    if scaled >= 100.0 {
        format!("{scaled:.0}{suffix}")
    } else if scaled >= 10.0 {
        format!("{scaled:.1}{suffix}")
    } else {
        format!("{scaled:.2}{suffix}")
    }
}

pub fn size_label(size: usize) -> String {
    match size {
        s if s >= 1 << 20 && s % (1 << 20) == 0 => format!("{} MiB", s >> 20),
        s if s >= 1 << 10 && s % (1 << 10) == 0 => format!("{} KiB", s >> 10),
        s => format!("{s} B"),
    }
}

/// Prints a Markdown table.
pub fn print_table(headers: &[String], rows: &[Vec<String>]) {
    println!("| {} |", headers.join(" | "));
    println!(
        "|{}|",
        headers
            .iter()
            .enumerate()
            .map(|(i, _)| if i == 0 { "---" } else { "---:" })
            .collect::<Vec<_>>()
            .join("|")
    );
    for row in rows {
        println!("| {} |", row.join(" | "));
    }
    println!();
}

/// The opening handshake request the load generator sends (RFC 6455 §1.3's sample key).
pub const UPGRADE_REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

/// The matching `Sec-WebSocket-Accept` value.
pub const EXPECTED_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// The servers `echo_servers` can run, in the order the tables list them.
pub const SERVERS: &[&str] = &[
    "wsio-tokio",
    "wsio-tokio-flush",
    "wsio-sync",
    "tungstenite",
    "tokio-tungstenite",
    "tokio-tungstenite-forward",
    "fastwebsockets",
    "tokio-websockets",
    "tokio-websockets-forward",
    "raw-tcp",
];

/// Starts `echo_servers NAME PORT` pinned to `cpu` (when `taskset` exists) and waits until it
/// listens. The child is killed by its own handle, never by name; it also exits when the
/// returned handle (which holds its standard input) is dropped or this process ends, and after
/// `max_seconds` in any case.
pub fn spawn_server(
    name: &str,
    port: u16,
    cpu: Option<usize>,
    max_seconds: u64,
) -> io::Result<std::process::Child> {
    let exe = std::env::current_exe()?.with_file_name("echo_servers");
    let mut command = match cpu {
        Some(cpu) => {
            let mut command = std::process::Command::new("taskset");
            command.arg("-c").arg(cpu.to_string()).arg(&exe);
            command
        }
        None => std::process::Command::new(&exe),
    };
    command
        .arg(name)
        .arg(port.to_string())
        .arg(max_seconds.to_string())
        .arg("--until-stdin-closes")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut child = command.spawn()?;
    let mut stdout = child.stdout.take().expect("piped");
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while stdout.read(&mut byte)? == 1 && byte[0] != b'\n' {
        line.push(byte[0]);
    }
    if !line.starts_with(b"listening") {
        let _ = child.kill();
        let _ = child.wait();
        return Err(io::Error::other(format!("{name} did not start")));
    }
    Ok(child)
}

/// Whether `taskset` is on the PATH and the machine has at least two CPUs to pin to (counted
/// from /proc/cpuinfo: this process may itself be pinned to one).
pub fn can_pin() -> bool {
    let cpus = std::fs::read_to_string("/proc/cpuinfo").map_or(0, |info| {
        info.lines().filter(|l| l.starts_with("processor")).count()
    });
    cpus >= 2
        && std::process::Command::new("taskset")
            .arg("-p")
            .arg(std::process::id().to_string())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
}

/// VmRSS of a process in KiB.
pub fn rss_kib(pid: u32) -> io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| io::Error::other("no VmRSS"))
}

/// Client side of the opening handshake over a raw tokio TCP stream: sends the request and
/// reads up to the end of the response head, which must be a 101 (with the right accept key
/// when the server sends one). Returns bytes read past the head.
pub async fn client_upgrade(stream: &mut tokio::net::TcpStream) -> io::Result<Vec<u8>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream.write_all(UPGRADE_REQUEST).await?;
    let mut head = Vec::with_capacity(256);
    let mut buf = [0u8; 1024];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "eof in handshake",
            ));
        }
        head.extend_from_slice(&buf[..n]);
        if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            let text = String::from_utf8_lossy(&head[..end]).to_ascii_lowercase();
            if !text.starts_with("http/1.1 101") {
                return Err(io::Error::other(format!("not a 101: {text}")));
            }
            if let Some(line) = text
                .lines()
                .find(|l| l.starts_with("sec-websocket-accept:"))
            {
                let value = line["sec-websocket-accept:".len()..].trim();
                if value != EXPECTED_ACCEPT.to_ascii_lowercase() {
                    return Err(io::Error::other("wrong accept key"));
                }
            }
            return Ok(head[end + 4..].to_vec());
        }
        if head.len() > 8192 {
            return Err(io::Error::other("response head too long"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_payload_is_exact_and_not_ascii() {
        for len in [16, 125, 1024, 16 << 10] {
            let text = text_payload(len);
            assert_eq!(text.len(), len);
            assert!(!text.is_ascii());
        }
    }

    #[test]
    fn read_buf_copies_at_most_a_chunk_into_the_room() {
        let input = binary_payload(2 * READ_CHUNK + 100);
        let mut stream = MemStream::new(&input);
        let mut buf = bytes::BytesMut::with_capacity(1000);
        assert_eq!(stream.read_buf(&mut buf), 1000);
        let mut big = bytes::BytesMut::with_capacity(2 * READ_CHUNK);
        assert_eq!(stream.read_buf(&mut big), READ_CHUNK);
        assert_eq!(stream.read_buf(&mut big), READ_CHUNK - 900);
        assert_eq!(stream.read_buf(&mut big), 0);
        buf.extend_from_slice(&big);
        assert_eq!(&buf[..], &input[..]);
    }

    #[test]
    fn counter_counts_frames_in_any_pieces() {
        let mut wire = Vec::new();
        for len in [0, 5, 125, 126, 1000, 70_000] {
            push_frame(&mut wire, 0x2, &binary_payload(len), len % 2 == 0);
        }
        for step in [1, 3, 7, 4096, wire.len()] {
            let mut counter = FrameCounter::default();
            let total: usize = wire.chunks(step).map(|piece| counter.feed(piece)).sum();
            assert_eq!(total, 6, "step {step}");
        }
    }
}
