//! Hostile peers against both adapters' servers over loopback (RFC 6455 §4.2.1, §5, §7).
//!
//! Every case runs twice, as `case::sync` and `case::tokio`: against an echo server on the
//! blocking adapter (a thread per connection, 50 ms read timeout tick) and one on the tokio
//! adapter (a current-thread runtime on a background thread). The hostile client talks raw TCP,
//! asserts the exact HTTP status or close code, and then checks that the server still serves a
//! well-behaved client.
#![cfg(all(feature = "sync", feature = "tokio"))]

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use wsio::proto::handshake::{Accept, ClientRequest, Request};
use wsio::{CloseCode, Error, Message, Options};

/// Makes `case::sync` and `case::tokio` tests that run `case` against each adapter's server.
macro_rules! against_both_adapters {
    ($($(#[$attr:meta])* $case:ident),* $(,)?) => {$(
        $(#[$attr])*
        mod $case {
            #[test]
            fn sync() {
                super::$case(super::Adapter::Sync);
            }

            #[test]
            fn tokio() {
                super::$case(super::Adapter::Tokio);
            }
        }
    )*};
}

// --- Opening handshake -----------------------------------------------------------------------

fn missing_key_gets_400(adapter: Adapter) {
    assert_rejected(adapter, &request_without("sec-websocket-key"), 400);
}

fn key_of_15_bytes_gets_400(adapter: Adapter) {
    // 20 base64 characters are 15 bytes, one short of the nonce's 16.
    let request = request_with(
        "sec-websocket-key",
        "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAA",
    );
    assert_rejected(adapter, &request, 400);
}

fn version_8_gets_426_naming_13(adapter: Adapter) {
    let request = request_with("sec-websocket-version", "Sec-WebSocket-Version: 8");
    let response = assert_rejected(adapter, &request, 426);
    assert_eq!(
        response.header("sec-websocket-version"),
        Some("13"),
        "{response:?}"
    );
}

fn post_gets_405(adapter: Adapter) {
    let request = request_with("get", "POST / HTTP/1.1");
    assert_rejected(adapter, &request, 405);
}

fn http_1_0_gets_400(adapter: Adapter) {
    let request = request_with("get", "GET / HTTP/1.0");
    assert_rejected(adapter, &request, 400);
}

fn missing_upgrade_gets_400(adapter: Adapter) {
    assert_rejected(adapter, &request_without("upgrade"), 400);
}

fn missing_connection_gets_400(adapter: Adapter) {
    assert_rejected(adapter, &request_without("connection"), 400);
}

fn missing_host_gets_400(adapter: Adapter) {
    assert_rejected(adapter, &request_without("host"), 400);
}

fn duplicate_host_gets_400(adapter: Adapter) {
    let request = request_with("host", "Host: 127.0.0.1\r\nHost: example.com");
    assert_rejected(adapter, &request, 400);
}

fn bare_lf_line_ending_gets_400(adapter: Adapter) {
    let request = request_with("upgrade", "Upgrade: websocket\nX-Sneaky: yes");
    assert_rejected(adapter, &request, 400);
}

fn request_body_gets_400(adapter: Adapter) {
    let request = request_with("host", "Host: 127.0.0.1\r\nContent-Length: 5");
    assert_rejected(adapter, &request, 400);
}

fn malformed_request_heads_get_400(adapter: Adapter) {
    let server = Server::start(adapter, options());
    let cases = [
        request_with("get", "GET  /chat HTTP/1.1"),
        request_with("get", "GET /chat HTTP/1.1 extra"),
        request_with("host", "Host : 127.0.0.1"),
        request_with("host", "Host: 127.0.0.1\r\n folded: continuation"),
        request_with("host", "Host: 127.0.0.1\r\nX-Nul: a\0b"),
        request_with("host", "Host: 127.0.0.1\r\nX\"Quote: a"),
        request_with("host", "Host: 127.0.0.1\r\nX-No-Colon"),
        request_with("host", "Host: 127.0.0.1\r\nTransfer-Encoding: chunked"),
        request_with(
            "host",
            "Host: 127.0.0.1\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        ),
        request_with(
            "sec-websocket-key",
            "Sec-WebSocket-Key: not base64 at all!!!!!",
        ),
        request_with(
            "sec-websocket-key",
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ",
        ),
        request_with(
            "host",
            "Host: 127.0.0.1\r\nSec-WebSocket-Protocol: chat, {bad}",
        ),
        request_with(
            "host",
            "Host: 127.0.0.1\r\nSec-WebSocket-Extensions: permessage-deflate;;",
        ),
        request_with(
            "host",
            "Host: 127.0.0.1\r\nSec-WebSocket-Extensions: x; a=\"unterminated",
        ),
    ];
    for request in cases {
        check_rejected(&server, &request, 400);
    }
    assert_serves(&server);
}

fn megabyte_request_target_gets_414_before_it_is_sent(adapter: Adapter) {
    let mut request = b"GET /".to_vec();
    request.resize(request.len() + MIB, b'a');
    request.extend_from_slice(b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    assert_rejected_early(adapter, request, 414);
}

fn ten_thousand_header_lines_get_431(adapter: Adapter) {
    let mut request = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n".to_vec();
    for _ in 0..10_000 {
        request.extend_from_slice(b"X-A: b\r\n");
    }
    request.extend_from_slice(b"\r\n");
    assert_rejected_early(adapter, request, 431);
}

fn megabyte_header_value_gets_431_before_it_is_sent(adapter: Adapter) {
    let mut request = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ".to_vec();
    request.resize(request.len() + MIB, b'a');
    request.extend_from_slice(b"\r\n\r\n");
    assert_rejected_early(adapter, request, 431);
}

/// A byte every 100 ms is cut by a 500 ms handshake timeout, and a normal client is served
/// meanwhile.
fn slowloris_is_cut_by_the_handshake_timeout(adapter: Adapter) {
    let mut options = options();
    options.handshake_timeout = Some(Duration::from_millis(500));
    let server = Server::start(adapter, options);
    let started = Instant::now();
    let mut slow = connect(server.addr);
    let slow_addr = slow.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let dripping = {
        let mut writer = slow.try_clone().unwrap();
        let stop = Arc::clone(&stop);
        thread::spawn(move || {
            for byte in request() {
                if stop.load(Ordering::Relaxed) || writer.write_all(&[byte]).is_err() {
                    return;
                }
                thread::sleep(Duration::from_millis(100));
            }
        })
    };
    // Served in full while the slow handshake is still pending: its deadline is at least 500 ms
    // away, and this exchange takes a few milliseconds.
    assert_serves(&server);
    assert!(
        !server.has_ended(slow_addr),
        "the normal client was only served after the slow handshake ended"
    );
    let mut buf = [0; 256];
    let read = slow.read(&mut buf);
    let cut = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    assert!(
        matches!(read, Ok(0)) || read.as_ref().is_err_and(is_reset),
        "expected the slow connection to be dropped without a response, got {read:?}"
    );
    assert!(
        cut >= Duration::from_millis(500) && cut < Duration::from_secs(4),
        "cut after {cut:?}"
    );
    let ended = server.ended(slow_addr);
    assert!(
        matches!(ended, Ended::Failed(Error::HandshakeTimeout)),
        "{ended:?}"
    );
    dripping.join().unwrap();
    assert_serves(&server);
}

// --- Frames after a valid upgrade: 1002 ------------------------------------------------------

fn unmasked_client_frame_gets_1002(adapter: Adapter) {
    assert_fails_with(
        adapter,
        &[0x81, 0x02, b'h', b'i'],
        CloseCode::PROTOCOL_ERROR,
    );
}

fn reserved_bits_get_1002(adapter: Adapter) {
    let server = Server::start(adapter, options());
    for rsv in [RSV1, RSV2, RSV3] {
        let wire = masked(FIN | rsv | TEXT, b"hi");
        check_fails_with(&server, &wire, CloseCode::PROTOCOL_ERROR);
    }
    assert_serves(&server);
}

fn reserved_opcodes_get_1002(adapter: Adapter) {
    let server = Server::start(adapter, options());
    for opcode in [0x3, 0xB] {
        let wire = masked(FIN | opcode, b"hi");
        check_fails_with(&server, &wire, CloseCode::PROTOCOL_ERROR);
    }
    assert_serves(&server);
}

fn ping_of_126_bytes_gets_1002(adapter: Adapter) {
    assert_fails_with(
        adapter,
        &masked(FIN | PING, &[7; 126]),
        CloseCode::PROTOCOL_ERROR,
    );
}

fn fragmented_ping_gets_1002(adapter: Adapter) {
    let wire = [masked(PING, b"a"), masked(FIN | CONTINUATION, b"b")].concat();
    assert_fails_with(adapter, &wire, CloseCode::PROTOCOL_ERROR);
}

fn continuation_without_a_start_gets_1002(adapter: Adapter) {
    assert_fails_with(
        adapter,
        &masked(FIN | CONTINUATION, b"x"),
        CloseCode::PROTOCOL_ERROR,
    );
}

fn new_message_inside_a_fragmented_one_gets_1002(adapter: Adapter) {
    let wire = [masked(TEXT, b"a"), masked(FIN | TEXT, b"b")].concat();
    assert_fails_with(adapter, &wire, CloseCode::PROTOCOL_ERROR);
}

fn non_minimal_lengths_get_1002(adapter: Adapter) {
    let server = Server::start(adapter, options());
    // 5 bytes in the 16-bit form, then 200 bytes in the 64-bit form.
    let short = [&[FIN | BINARY, 0x80 | 126, 0x00, 0x05][..], &MASK, &[0; 5]].concat();
    let mut long = vec![FIN | BINARY, 0x80 | 127];
    long.extend_from_slice(&200u64.to_be_bytes());
    long.extend_from_slice(&MASK);
    long.extend_from_slice(&[0; 200]);
    for wire in [short, long] {
        check_fails_with(&server, &wire, CloseCode::PROTOCOL_ERROR);
    }
    assert_serves(&server);
}

fn length_with_the_top_bit_set_gets_1002(adapter: Adapter) {
    let mut wire = vec![FIN | BINARY, 0x80 | 127];
    wire.extend_from_slice(&(1u64 << 63).to_be_bytes());
    wire.extend_from_slice(&MASK);
    assert_fails_with(adapter, &wire, CloseCode::PROTOCOL_ERROR);
}

fn invalid_close_codes_get_1002(adapter: Adapter) {
    let server = Server::start(adapter, options());
    for code in [0u16, 999, 1005, 1006, 1015, 5000] {
        let wire = masked(FIN | CLOSE, &code.to_be_bytes());
        check_fails_with(&server, &wire, CloseCode::PROTOCOL_ERROR);
    }
    assert_serves(&server);
}

fn one_byte_close_payload_gets_1002(adapter: Adapter) {
    assert_fails_with(
        adapter,
        &masked(FIN | CLOSE, &[0x03]),
        CloseCode::PROTOCOL_ERROR,
    );
}

// --- Frames after a valid upgrade: 1007 ------------------------------------------------------

fn invalid_utf8_in_a_whole_message_gets_1007(adapter: Adapter) {
    assert_fails_with(
        adapter,
        &masked(FIN | TEXT, b"caf\xff"),
        CloseCode::INVALID_PAYLOAD,
    );
}

fn invalid_utf8_split_across_fragments_gets_1007(adapter: Adapter) {
    // A lead byte, then a byte that cannot continue it.
    let wire = [masked(TEXT, b"ok \xce"), masked(FIN | CONTINUATION, b"A")].concat();
    assert_fails_with(adapter, &wire, CloseCode::INVALID_PAYLOAD);
}

fn invalid_utf8_in_an_unfinished_message_gets_1007_at_once(adapter: Adapter) {
    // No FIN and nothing more: the server must not wait for the rest of the message.
    assert_fails_with(
        adapter,
        &masked(TEXT, b"ok \xff"),
        CloseCode::INVALID_PAYLOAD,
    );
}

fn utf8_truncated_at_fin_gets_1007(adapter: Adapter) {
    let server = Server::start(adapter, options());
    // "€" is e2 82 ac: cut in one frame, and cut in the last of two.
    let whole = masked(FIN | TEXT, b"a\xe2\x82");
    let fragmented = [masked(TEXT, b"a\xe2"), masked(FIN | CONTINUATION, b"\x82")].concat();
    for wire in [whole, fragmented] {
        check_fails_with(&server, &wire, CloseCode::INVALID_PAYLOAD);
    }
    assert_serves(&server);
}

fn invalid_utf8_in_a_close_reason_gets_1007(adapter: Adapter) {
    let wire = masked(FIN | CLOSE, &[0x03, 0xe8, b'o', b'k', 0xff]);
    assert_fails_with(adapter, &wire, CloseCode::INVALID_PAYLOAD);
}

// --- Frames after a valid upgrade: sizes and limits ------------------------------------------

/// A frame declaring 2^62 bytes is refused from its header, with nothing allocated for it.
fn frame_of_2_pow_62_bytes_gets_1009_from_its_header(adapter: Adapter) {
    let _memory = measuring_memory();
    let server = Server::start(adapter, options());
    let before = rss_kib();
    let mut peer = Peer::upgrade(server.addr);
    let mut header = vec![FIN | BINARY, 0x80 | 127];
    header.extend_from_slice(&(1u64 << 62).to_be_bytes());
    header.extend_from_slice(&MASK);
    peer.send(&header);
    // Then stall: only the header can have triggered the close.
    peer.expect_close(CloseCode::MESSAGE_TOO_BIG);
    peer.expect_eof();
    assert_failed_with(&server, peer.addr, CloseCode::MESSAGE_TOO_BIG);
    assert_memory_bounded(before, "after a 2^62-byte frame header");
    assert_serves(&server);
}

fn hundred_thousand_one_byte_fragments_are_echoed_intact(adapter: Adapter) {
    const FRAGMENTS: usize = 100_000;
    let server = Server::start(adapter, options());
    let mut peer = Peer::upgrade(server.addr);
    let expected: Vec<u8> = (0..FRAGMENTS).map(|i| (i % 251) as u8).collect();
    let mut wire = Vec::with_capacity(FRAGMENTS * 7);
    for (i, &byte) in expected.iter().enumerate() {
        let opcode = if i == 0 { BINARY } else { CONTINUATION };
        let fin = if i == FRAGMENTS - 1 { FIN } else { 0 };
        wire.extend_from_slice(&masked(fin | opcode, &[byte]));
    }
    // Written from another thread so that neither side waits on a full socket buffer.
    let sending = peer.send_in_background(wire);
    let frame = peer.read_frame();
    assert_eq!(frame.first, FIN | BINARY);
    assert!(
        frame.payload == expected,
        "the echo differs from the message"
    );
    sending.join().unwrap().unwrap();
    peer.close_normally();
    assert!(matches!(server.ended(peer.addr), Ended::Closed));
    assert_serves(&server);
}

fn message_over_max_message_size_in_fragments_gets_1009(adapter: Adapter) {
    let mut options = options();
    options.connection.max_message_size = 64 << 10;
    let server = Server::start(adapter, options);
    let mut peer = Peer::upgrade(server.addr);
    // 100 fragments of 1 KiB: the 65th passes the limit. The rest may meet a closed socket.
    let mut wire = masked(BINARY, &[1; 1024]);
    for i in 1..100 {
        let fin = if i == 99 { FIN } else { 0 };
        wire.extend_from_slice(&masked(fin | CONTINUATION, &[1; 1024]));
    }
    let sending = peer.send_in_background(wire);
    peer.expect_close(CloseCode::MESSAGE_TOO_BIG);
    peer.expect_eof();
    let _ = sending.join().unwrap();
    assert_failed_with(&server, peer.addr, CloseCode::MESSAGE_TOO_BIG);
    assert_serves(&server);
}

fn message_over_max_fragments_gets_1008(adapter: Adapter) {
    let mut options = options();
    options.connection.max_fragments = 1000;
    let server = Server::start(adapter, options);
    let mut peer = Peer::upgrade(server.addr);
    let mut wire = masked(BINARY, b"x");
    for _ in 1..1001 {
        wire.extend_from_slice(&masked(CONTINUATION, b"x"));
    }
    let sending = peer.send_in_background(wire);
    peer.expect_close(CloseCode::POLICY_VIOLATION);
    peer.expect_eof();
    let _ = sending.join().unwrap();
    assert_failed_with(&server, peer.addr, CloseCode::POLICY_VIOLATION);
    assert_serves(&server);
}

/// 10 000 pings without reading the pongs: the server's memory stays bounded, and it answers
/// the last ping and echoes a message afterwards.
fn ping_flood_without_reading_keeps_memory_bounded(adapter: Adapter) {
    const PINGS: usize = 10_000;
    let _memory = measuring_memory();
    let server = Server::start(adapter, options());
    let mut peer = Peer::upgrade(server.addr);
    let before = rss_kib();
    let mut flood = masked(FIN | PING, &[0x55; 125]).repeat(PINGS);
    flood.extend_from_slice(&masked(FIN | PING, b"last"));
    let sending = peer.send_in_background(flood);
    // The tokio server keeps reading while its pongs wait; the blocking one stops reading once
    // the pongs fill the socket buffers, so stop waiting after a while (well inside the
    // server's write timeout) and read.
    let deadline = Instant::now() + Duration::from_secs(1);
    while !sending.is_finished() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    assert_memory_bounded(before, "during a ping flood");
    let mut pongs = 0;
    loop {
        let frame = peer.read_frame();
        assert_eq!(frame.first, FIN | PONG, "only pongs are owed");
        if frame.payload == b"last" {
            break;
        }
        assert_eq!(frame.payload, [0x55; 125]);
        pongs += 1;
    }
    sending.join().unwrap().unwrap();
    // Older pongs may be dropped, the latest ping is always answered (§5.5.3).
    assert!(pongs <= PINGS, "{pongs} pongs");
    peer.send(&masked(FIN | TEXT, b"after the flood"));
    let frame = peer.read_frame();
    assert_eq!(
        (frame.first, &frame.payload[..]),
        (FIN | TEXT, &b"after the flood"[..])
    );
    assert_memory_bounded(before, "after a ping flood");
    peer.close_normally();
    assert!(matches!(server.ended(peer.addr), Ended::Closed));
    assert_serves(&server);
}

/// A peer that never answers the keepalive ping gets 1011.
fn silent_peer_gets_1011_after_the_keepalive_timeout(adapter: Adapter) {
    let mut options = options();
    options.connection.keepalive_interval = Some(Duration::from_millis(200));
    options.connection.keepalive_timeout = Some(Duration::from_millis(300));
    let server = Server::start(adapter, options);
    let mut peer = Peer::upgrade(server.addr);
    let ping = peer.read_frame();
    assert_eq!(ping.first, FIN | PING, "{ping:?}");
    peer.expect_close(CloseCode::INTERNAL_ERROR);
    peer.expect_eof();
    assert_failed_with(&server, peer.addr, CloseCode::INTERNAL_ERROR);
    assert_serves(&server);
}

/// A peer that sends a big message and never reads the echo is cut by the write timeout instead
/// of holding the connection forever.
fn slow_reader_is_cut_by_the_write_timeout(adapter: Adapter) {
    // Far more than loopback socket buffers hold (a few MiB).
    const MESSAGE: usize = 16 * MIB;
    let _memory = measuring_memory();
    let mut options = options();
    options.write_timeout = Some(Duration::from_millis(500));
    let server = Server::start(adapter, options);
    let peer = Peer::upgrade(server.addr);
    let half = vec![0x5A; MESSAGE / 2];
    let wire = [
        masked_with([0; 4], BINARY, &half),
        masked_with([0; 4], FIN | CONTINUATION, &half),
    ]
    .concat();
    drop(half);
    let sending = peer.send_in_background(wire);
    // The server reads the whole message before echoing it.
    sending.join().unwrap().unwrap();
    let ended = server.ended(peer.addr);
    assert!(
        matches!(&ended, Ended::Failed(Error::Io(error))
            if matches!(error.kind(), io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock)),
        "{ended:?}"
    );
    drop(peer);
    assert_serves(&server);
}

/// Anything after the peer's close frame is ignored: the close is echoed and the connection
/// ends normally.
fn data_after_the_close_frame_is_ignored(adapter: Adapter) {
    let server = Server::start(adapter, options());
    let mut peer = Peer::upgrade(server.addr);
    let wire = [
        masked(FIN | CLOSE, &[0x0f, 0xa0, b'b', b'y', b'e']),
        masked(FIN | TEXT, b"too late"),
        vec![0x81, 0x02, b'h', b'i'],
    ]
    .concat();
    peer.send(&wire);
    peer.expect_close(CloseCode(4000));
    peer.expect_eof();
    let ended = server.ended(peer.addr);
    assert!(matches!(ended, Ended::Closed), "{ended:?}");
    assert_serves(&server);
}

/// EOF inside a header, inside a payload and between fragments: the server drops the
/// connection with 1006 (no close frame can be sent) and serves the next client.
fn eof_in_the_middle_of_a_frame_ends_the_connection(adapter: Adapter) {
    let server = Server::start(adapter, options());
    let text = masked(FIN | TEXT, b"0123456789");
    let cuts: [&[u8]; 4] = [
        &text[..1],
        &text[..4],
        &text[..9],
        &masked(TEXT, b"first half"),
    ];
    for cut in cuts {
        let mut peer = Peer::upgrade(server.addr);
        peer.send(cut);
        peer.stream.shutdown(Shutdown::Write).unwrap();
        peer.expect_eof();
        assert_failed_with(&server, peer.addr, CloseCode::ABNORMAL);
    }
    assert_serves(&server);
}

/// A request and a frame sent one byte per write (TCP_NODELAY, so one segment each) are
/// reassembled.
fn one_byte_writes_are_reassembled(adapter: Adapter) {
    let server = Server::start(adapter, options());
    let mut peer = Peer::connect(server.addr);
    for byte in request() {
        peer.send(&[byte]);
    }
    peer.expect_switching_protocols();
    for byte in masked(FIN | TEXT, "héllo".as_bytes()) {
        peer.send(&[byte]);
    }
    let frame = peer.read_frame();
    assert_eq!(
        (frame.first, &frame.payload[..]),
        (FIN | TEXT, "héllo".as_bytes())
    );
    peer.close_normally();
    assert!(matches!(server.ended(peer.addr), Ended::Closed));
    assert_serves(&server);
}

/// Frames sent in the same write as the request reach the connection, good or bad.
fn frames_right_behind_the_request(adapter: Adapter) {
    let server = Server::start(adapter, options());
    let mut peer = Peer::connect(server.addr);
    peer.send(&[request(), masked(FIN | TEXT, b"early")].concat());
    peer.expect_switching_protocols();
    let frame = peer.read_frame();
    assert_eq!(
        (frame.first, &frame.payload[..]),
        (FIN | TEXT, &b"early"[..])
    );
    peer.close_normally();
    assert!(matches!(server.ended(peer.addr), Ended::Closed));

    let mut peer = Peer::connect(server.addr);
    peer.send(&[request(), vec![0x81, 0x02, b'h', b'i']].concat());
    peer.expect_switching_protocols();
    peer.expect_close(CloseCode::PROTOCOL_ERROR);
    peer.expect_eof();
    assert_failed_with(&server, peer.addr, CloseCode::PROTOCOL_ERROR);
    assert_serves(&server);
}

/// The blocking adapter's README server prepares its sockets with `sync::configure_tcp`, which
/// applies `Options::write_timeout`: a peer that never reads cannot pin the connection's thread.
mod slow_reader_is_cut_by_the_write_timeout_on_the_readme_sync_server {
    #[test]
    fn sync() {
        super::slow_reader_is_cut_by_the_write_timeout(super::Adapter::SyncAsInReadme);
    }
}

// --- permessage-deflate ----------------------------------------------------------------------

/// A compressed message inflating to 256 MiB against a 1 MiB message limit, in one frame and
/// in 16 KiB fragments: 1009, with the server's memory growing by far less than the bomb.
#[cfg(feature = "deflate")]
fn deflate_bomb_gets_1009(adapter: Adapter) {
    const BOMB_MIB: usize = 256;
    let _memory = measuring_memory();
    let mut options = options();
    options.connection.max_message_size = MIB;
    let server = Server::start(adapter, options);
    let bomb = deflate::bomb(&deflate_request(), BOMB_MIB);
    assert!(
        bomb.len() < MIB / 2,
        "the compressed bomb is {} bytes",
        bomb.len()
    );
    let whole = masked(FIN | RSV1 | BINARY, &bomb);
    let mut fragmented = Vec::new();
    let pieces = bomb.chunks(16 << 10).count();
    for (i, piece) in bomb.chunks(16 << 10).enumerate() {
        let first = match (i, i + 1 == pieces) {
            (0, _) => RSV1 | BINARY,
            (_, false) => CONTINUATION,
            (_, true) => FIN | CONTINUATION,
        };
        fragmented.extend_from_slice(&masked(first, piece));
    }
    let before = rss_kib();
    for wire in [whole, fragmented] {
        let mut peer = Peer::upgrade_with_deflate(server.addr);
        let sending = peer.send_in_background(wire);
        peer.expect_close(CloseCode::MESSAGE_TOO_BIG);
        peer.expect_eof();
        let _ = sending.join().unwrap();
        assert_failed_with(&server, peer.addr, CloseCode::MESSAGE_TOO_BIG);
        assert_memory_bounded(before, "after a deflate bomb");
    }
    assert_serves(&server);
}

#[cfg(feature = "deflate")]
fn corrupt_compressed_data_gets_1007(adapter: Adapter) {
    let server = Server::start(adapter, options());
    let mut peer = Peer::upgrade_with_deflate(server.addr);
    // A final block of the reserved block type 11.
    peer.send(&masked(FIN | RSV1 | BINARY, &[0xff; 8]));
    peer.expect_close(CloseCode::INVALID_PAYLOAD);
    peer.expect_eof();
    assert_failed_with(&server, peer.addr, CloseCode::INVALID_PAYLOAD);
    assert_serves(&server);
}

#[cfg(feature = "deflate")]
fn compressed_text_with_invalid_utf8_gets_1007(adapter: Adapter) {
    let server = Server::start(adapter, options());
    let mut peer = Peer::upgrade_with_deflate(server.addr);
    let payload = deflate::compress(&deflate_request(), b"caf\xff caf\xff caf\xff");
    peer.send(&masked(FIN | RSV1 | TEXT, &payload));
    peer.expect_close(CloseCode::INVALID_PAYLOAD);
    peer.expect_eof();
    assert_failed_with(&server, peer.addr, CloseCode::INVALID_PAYLOAD);
    assert_serves(&server);
}

/// RSV1 belongs on the first frame of a data message only (RFC 7692 §6.1).
#[cfg(feature = "deflate")]
fn rsv1_on_a_continuation_or_control_frame_gets_1002(adapter: Adapter) {
    let server = Server::start(adapter, options());
    let payload = deflate::compress(&deflate_request(), b"hello hello hello hello");
    let (start, end) = payload.split_at(payload.len() / 2);
    let cases = [
        [
            masked(RSV1 | BINARY, start),
            masked(FIN | RSV1 | CONTINUATION, end),
        ]
        .concat(),
        masked(FIN | RSV1 | PING, b""),
    ];
    for wire in cases {
        let mut peer = Peer::upgrade_with_deflate(server.addr);
        peer.send(&wire);
        peer.expect_close(CloseCode::PROTOCOL_ERROR);
        peer.expect_eof();
        assert_failed_with(&server, peer.addr, CloseCode::PROTOCOL_ERROR);
    }
    assert_serves(&server);
}

/// An offer the server cannot meet is declined, not failed, and RSV1 is then a protocol error.
#[cfg(feature = "deflate")]
fn unusable_deflate_offer_is_declined(adapter: Adapter) {
    let server = Server::start(adapter, options());
    let mut peer = Peer::connect(server.addr);
    let offer = "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=8, \
                 permessage-deflate; unknown_parameter";
    peer.send(&request_with(
        "host",
        &format!("Host: 127.0.0.1\r\n{offer}"),
    ));
    let response = peer.expect_switching_protocols();
    assert_eq!(
        response.header("sec-websocket-extensions"),
        None,
        "{response:?}"
    );
    peer.send(&masked(FIN | TEXT, b"plain"));
    let frame = peer.read_frame();
    assert_eq!(
        (frame.first, &frame.payload[..]),
        (FIN | TEXT, &b"plain"[..])
    );
    let payload = deflate::compress(&deflate_request(), b"hello hello hello hello");
    peer.send(&masked(FIN | RSV1 | TEXT, &payload));
    peer.expect_close(CloseCode::PROTOCOL_ERROR);
    peer.expect_eof();
    assert_failed_with(&server, peer.addr, CloseCode::PROTOCOL_ERROR);
    assert_serves(&server);
}

/// The valid request with a plain permessage-deflate offer.
#[cfg(feature = "deflate")]
fn deflate_request() -> Vec<u8> {
    let offer = "Sec-WebSocket-Extensions: permessage-deflate";
    request_with("host", &format!("Host: 127.0.0.1\r\n{offer}"))
}

#[cfg(feature = "deflate")]
impl Peer {
    /// Connects and completes a handshake that negotiates permessage-deflate.
    fn upgrade_with_deflate(server: SocketAddr) -> Self {
        let mut peer = Self::connect(server);
        peer.send(&deflate_request());
        let response = peer.expect_switching_protocols();
        assert_eq!(
            response.header("sec-websocket-extensions"),
            Some("permessage-deflate"),
            "{response:?}"
        );
        peer
    }
}

#[cfg(feature = "deflate")]
mod deflate {
    //! Building a deflate bomb with the crate's own compressor.

    use bytes::BytesMut;
    use wsio::proto::Role;
    use wsio::proto::deflate::{
        Compressor, Decompressor, DeflateConfig, DeflateParams, InflateError,
    };
    use wsio::proto::handshake::RequestParser;

    use super::MIB;

    /// The sync flush tail that the sender strips from a message (RFC 7692 §7.2.1).
    const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

    /// The payload of one compressed message (tail stripped) that inflates to `mib` MiB of
    /// zeros, for a client that sent `request`.
    ///
    /// Compressing that much would take long, so it compresses 1 MiB twice with context
    /// takeover and repeats the second piece: each piece ends on a byte boundary after a sync
    /// flush, refers back only to zeros, and so inflates to 1 MiB of zeros wherever it follows
    /// at least 32 KiB of zeros.
    pub fn bomb(request: &[u8], mib: usize) -> Vec<u8> {
        let params = params(request);
        let mut compressor = Compressor::new(&params, Role::Client);
        let zeros = vec![0; MIB];
        let mut first = BytesMut::new();
        compressor.compress(&zeros, &mut first);
        let mut next = BytesMut::new();
        compressor.compress(&zeros, &mut next);
        let build = |mib: usize| {
            let mut bomb = first.to_vec();
            for _ in 1..mib {
                bomb.extend_from_slice(&TAIL);
                bomb.extend_from_slice(&next);
            }
            bomb
        };
        // The construction really inflates to zeros: in full for 4 MiB, and past 2 MiB for the
        // real thing.
        let mut out = BytesMut::new();
        Decompressor::new(&params, Role::Server)
            .decompress(&build(4), true, &mut out, 8 * MIB)
            .unwrap();
        assert!(out.len() == 4 * MIB && out.iter().all(|&byte| byte == 0));
        let bomb = build(mib);
        let mut out = BytesMut::new();
        assert_eq!(
            Decompressor::new(&params, Role::Server).decompress(&bomb, true, &mut out, 2 * MIB),
            Err(InflateError::TooBig { limit: 2 * MIB })
        );
        bomb
    }

    /// One message's compressed payload (tail stripped), from a fresh context.
    pub fn compress(request: &[u8], data: &[u8]) -> Vec<u8> {
        let mut out = BytesMut::new();
        Compressor::new(&params(request), Role::Client).compress(data, &mut out);
        out.to_vec()
    }

    /// The agreement the server reaches on `request`'s offer, with level 9 for our compressor
    /// (the level is each side's own choice, not negotiated).
    fn params(request: &[u8]) -> DeflateParams {
        let request = RequestParser::default().receive(request).unwrap().unwrap();
        let mut config = DeflateConfig::default();
        config.level = 9;
        config
            .negotiate(request.extensions())
            .expect("the offer is accepted")
            .0
    }
}

against_both_adapters! {
    missing_key_gets_400,
    key_of_15_bytes_gets_400,
    version_8_gets_426_naming_13,
    post_gets_405,
    http_1_0_gets_400,
    missing_upgrade_gets_400,
    missing_connection_gets_400,
    missing_host_gets_400,
    duplicate_host_gets_400,
    bare_lf_line_ending_gets_400,
    request_body_gets_400,
    megabyte_request_target_gets_414_before_it_is_sent,
    ten_thousand_header_lines_get_431,
    megabyte_header_value_gets_431_before_it_is_sent,
    slowloris_is_cut_by_the_handshake_timeout,
    unmasked_client_frame_gets_1002,
    reserved_bits_get_1002,
    reserved_opcodes_get_1002,
    ping_of_126_bytes_gets_1002,
    fragmented_ping_gets_1002,
    continuation_without_a_start_gets_1002,
    new_message_inside_a_fragmented_one_gets_1002,
    non_minimal_lengths_get_1002,
    length_with_the_top_bit_set_gets_1002,
    invalid_close_codes_get_1002,
    one_byte_close_payload_gets_1002,
    invalid_utf8_in_a_whole_message_gets_1007,
    invalid_utf8_split_across_fragments_gets_1007,
    invalid_utf8_in_an_unfinished_message_gets_1007_at_once,
    utf8_truncated_at_fin_gets_1007,
    invalid_utf8_in_a_close_reason_gets_1007,
    frame_of_2_pow_62_bytes_gets_1009_from_its_header,
    hundred_thousand_one_byte_fragments_are_echoed_intact,
    message_over_max_message_size_in_fragments_gets_1009,
    message_over_max_fragments_gets_1008,
    ping_flood_without_reading_keeps_memory_bounded,
    eof_in_the_middle_of_a_frame_ends_the_connection,
    frames_right_behind_the_request,
    one_byte_writes_are_reassembled,
    malformed_request_heads_get_400,
    silent_peer_gets_1011_after_the_keepalive_timeout,
    slow_reader_is_cut_by_the_write_timeout,
    data_after_the_close_frame_is_ignored,
    #[cfg(feature = "deflate")]
    deflate_bomb_gets_1009,
    #[cfg(feature = "deflate")]
    corrupt_compressed_data_gets_1007,
    #[cfg(feature = "deflate")]
    compressed_text_with_invalid_utf8_gets_1007,
    #[cfg(feature = "deflate")]
    rsv1_on_a_continuation_or_control_frame_gets_1002,
    #[cfg(feature = "deflate")]
    unusable_deflate_offer_is_declined,
}

// --- Helpers ---------------------------------------------------------------------------------

const MIB: usize = 1 << 20;
/// How long any one wait may take before it counts as a hang.
const TIMEOUT: Duration = Duration::from_secs(5);
/// How much of an oversized request is sent before the server must have answered it.
const HOLD: usize = 64 << 10;
/// How much the process's resident memory may grow during an attack; each attack would need
/// far more if the server buffered what it is sent.
const MEMORY_BOUND_KIB: u64 = 64 << 10;

const FIN: u8 = 0b1000_0000;
const RSV1: u8 = 0b0100_0000;
const RSV2: u8 = 0b0010_0000;
const RSV3: u8 = 0b0001_0000;
const CONTINUATION: u8 = 0x0;
const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// The accept value of the RFC 6455 §1.3 key in `REQUEST_LINES`.
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
const REQUEST_LINES: [&str; 6] = [
    "GET /chat HTTP/1.1",
    "Host: 127.0.0.1",
    "Upgrade: websocket",
    "Connection: Upgrade",
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version: 13",
];

/// The servers' options: short timeouts so that nothing here can hang for long.
fn options() -> Options {
    let mut options = Options::default();
    options.handshake_timeout = Some(Duration::from_secs(2));
    options.write_timeout = Some(TIMEOUT);
    options.connection.close_timeout = Some(Duration::from_secs(1));
    options
}

/// Which adapter a server runs on.
#[derive(Debug, Clone, Copy)]
enum Adapter {
    Sync,
    Tokio,
    /// The blocking adapter set up as README.md's server is: a read timeout on the socket and
    /// nothing else, so [`Options::write_timeout`] is all that bounds a write.
    SyncAsInReadme,
}

/// How the server's side of one connection ended.
#[derive(Debug)]
enum Ended {
    /// The echo loop ended after a closing handshake.
    Closed,
    /// The handshake or the connection failed.
    Failed(Error),
    /// The connection's thread or task panicked.
    Panicked(String),
}

/// An echo server on 127.0.0.1 that serves any number of connections until dropped and
/// records how each one ended, by the client's address.
struct Server {
    addr: SocketAddr,
    log: Arc<Log>,
    stop: Option<Stop>,
    acceptor: Option<thread::JoinHandle<()>>,
}

#[derive(Debug, Default)]
struct Log {
    ended: Mutex<HashMap<SocketAddr, Ended>>,
    changed: Condvar,
    /// The messages of the connections that panicked.
    panics: Mutex<Vec<String>>,
}

impl Server {
    fn start(adapter: Adapter, options: Options) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let log = Arc::new(Log::default());
        let (stop, acceptor) = match adapter {
            Adapter::Sync => serve_sync(listener, options, true, Arc::clone(&log)),
            Adapter::SyncAsInReadme => serve_sync(listener, options, false, Arc::clone(&log)),
            Adapter::Tokio => serve_tokio(listener, options, Arc::clone(&log)),
        };
        Self {
            addr,
            log,
            stop: Some(stop),
            acceptor: Some(acceptor),
        }
    }

    /// Waits for the server to end the connection from `peer` and says how it ended.
    fn ended(&self, peer: SocketAddr) -> Ended {
        let deadline = Instant::now() + TIMEOUT;
        let mut ended = lock(&self.log.ended);
        loop {
            if let Some(outcome) = ended.remove(&peer) {
                return outcome;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "the server has not ended the connection from {peer} after {TIMEOUT:?}"
            );
            ended = self
                .log
                .changed
                .wait_timeout(ended, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    fn has_ended(&self, peer: SocketAddr) -> bool {
        lock(&self.log.ended).contains_key(&peer)
    }

    fn panics(&self) -> Vec<String> {
        lock(&self.log.panics).clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            stop();
        }
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

impl Log {
    fn record(&self, peer: SocketAddr, ended: Ended) {
        if let Ended::Panicked(message) = &ended {
            lock(&self.panics).push(format!("{peer}: {message}"));
        }
        lock(&self.ended).insert(peer, ended);
        self.changed.notify_all();
    }
}

type Stop = Box<dyn FnOnce() + Send>;

/// The blocking adapter: a thread per connection with a 50 ms read timeout as its clock tick
/// and, with `write_timeout`, `Options::write_timeout` set on the socket.
fn serve_sync(
    listener: TcpListener,
    options: Options,
    write_timeout: bool,
    log: Arc<Log>,
) -> (Stop, thread::JoinHandle<()>) {
    let addr = listener.local_addr().unwrap();
    let stopping = Arc::new(AtomicBool::new(false));
    let acceptor = thread::spawn({
        let stopping = Arc::clone(&stopping);
        move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let Ok(peer) = stream.peer_addr() else {
                    continue;
                };
                let options = options.clone();
                let log = Arc::clone(&log);
                thread::spawn(move || {
                    let result = panic::catch_unwind(AssertUnwindSafe(|| {
                        sync_echo(stream, &options, write_timeout)
                    }));
                    log.record(peer, ended(result));
                });
            }
        }
    });
    let stop = Box::new(move || {
        stopping.store(true, Ordering::SeqCst);
        // Wakes the acceptor up.
        let _ = TcpStream::connect(addr);
    });
    (stop, acceptor)
}

fn sync_echo(stream: TcpStream, options: &Options, write_timeout: bool) -> Result<(), Error> {
    if write_timeout {
        stream.set_read_timeout(Some(Duration::from_millis(50)))?;
        stream.set_write_timeout(options.write_timeout)?;
    } else {
        // As the README does it.
        wsio::sync::configure_tcp(&stream, options)?;
    }
    let mut ws = wsio::sync::accept_with(stream, options, |_| Ok(Accept::new()))?;
    while let Some(message) = ws.read()? {
        ws.send(message)?;
    }
    Ok(())
}

/// The tokio adapter: a task per connection on a current-thread runtime of its own.
fn serve_tokio(
    listener: TcpListener,
    options: Options,
    log: Arc<Log>,
) -> (Stop, thread::JoinHandle<()>) {
    listener.set_nonblocking(true).unwrap();
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let acceptor = thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let (stream, peer) = tokio::select! {
                    _ = &mut stopped => return,
                    accepted = listener.accept() => match accepted {
                        Ok(accepted) => accepted,
                        Err(_) => continue,
                    },
                };
                let options = options.clone();
                let log = Arc::clone(&log);
                let connection = tokio::spawn(async move { tokio_echo(stream, &options).await });
                tokio::spawn(async move {
                    let result = connection
                        .await
                        .map_err(|error| match error.try_into_panic() {
                            Ok(payload) => payload,
                            Err(error) => Box::new(error.to_string()),
                        });
                    log.record(peer, ended(result));
                });
            }
        });
    });
    let stop = Box::new(move || {
        let _ = stop.send(());
    });
    (stop, acceptor)
}

async fn tokio_echo(stream: tokio::net::TcpStream, options: &Options) -> Result<(), Error> {
    let mut ws =
        wsio::tokio::accept_with(stream, options, async |_: &Request| Ok(Accept::new())).await?;
    while let Some(message) = ws.read().await? {
        ws.send(message).await?;
    }
    Ok(())
}

fn ended(result: thread::Result<Result<(), Error>>) -> Ended {
    match result {
        Ok(Ok(())) => Ended::Closed,
        Ok(Err(error)) => Ended::Failed(error),
        Err(payload) => Ended::Panicked(
            payload
                .downcast_ref::<&str>()
                .map(|message| (*message).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_default(),
        ),
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A raw TCP client that writes whatever it is told and reads the server's frames.
struct Peer {
    stream: TcpStream,
    /// Our end's address, which the server's log is keyed by.
    addr: SocketAddr,
    /// Bytes read and not yet parsed.
    buf: Vec<u8>,
}

/// A frame as the server sent it.
struct ServerFrame {
    /// The FIN, RSV and opcode byte.
    first: u8,
    payload: Vec<u8>,
}

/// A response head from the server.
#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
}

impl Peer {
    fn connect(server: SocketAddr) -> Self {
        let stream = connect(server);
        let addr = stream.local_addr().unwrap();
        Self {
            stream,
            addr,
            buf: Vec::new(),
        }
    }

    /// Connects and completes a valid handshake that offers no extension.
    fn upgrade(server: SocketAddr) -> Self {
        let mut peer = Self::connect(server);
        peer.send(&request());
        peer.expect_switching_protocols();
        peer
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("writing to the server");
    }

    /// Writes `bytes` from another thread, so that reading can go on meanwhile.
    fn send_in_background(&self, bytes: Vec<u8>) -> thread::JoinHandle<io::Result<()>> {
        let mut stream = self.stream.try_clone().unwrap();
        thread::spawn(move || stream.write_all(&bytes))
    }

    fn expect_switching_protocols(&mut self) -> Response {
        let response = self.read_head();
        assert_eq!(response.status, 101, "{response:?}");
        assert_eq!(
            response.header("sec-websocket-accept"),
            Some(ACCEPT),
            "{response:?}"
        );
        response
    }

    /// Reads an error response and the end of the connection that must follow it.
    fn expect_rejection(&mut self) -> Response {
        let response = self.read_head();
        // The body, which ends with the connection.
        self.buf.clear();
        let mut chunk = [0; 4096];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return response,
                Ok(_) => {}
                Err(error) if is_reset(&error) => return response,
                Err(error) => panic!("the server did not close after {response:?}: {error}"),
            }
        }
    }

    fn read_head(&mut self) -> Response {
        loop {
            if let Some(end) = self.buf.windows(4).position(|window| window == b"\r\n\r\n") {
                let head: Vec<u8> = self.buf.drain(..end + 4).collect();
                return Response::parse(&head);
            }
            self.fill("a response head");
        }
    }

    /// Reads one frame, which a server sends unmasked.
    fn read_frame(&mut self) -> ServerFrame {
        self.fill_to(2, "a frame header");
        let (first, second) = (self.buf[0], self.buf[1]);
        assert_eq!(second & 0b1000_0000, 0, "the server masked a frame");
        let (header_len, payload_len) = match second & 0x7F {
            126 => {
                self.fill_to(4, "a 16-bit length");
                (
                    4,
                    usize::from(u16::from_be_bytes([self.buf[2], self.buf[3]])),
                )
            }
            127 => {
                self.fill_to(10, "a 64-bit length");
                let len = u64::from_be_bytes(self.buf[2..10].try_into().unwrap());
                (10, usize::try_from(len).unwrap())
            }
            short => (2, usize::from(short)),
        };
        self.fill_to(header_len + payload_len, "a frame payload");
        let payload = self.buf[header_len..header_len + payload_len].to_vec();
        self.buf.drain(..header_len + payload_len);
        ServerFrame { first, payload }
    }

    /// Reads the server's close frame, which must be the next frame and carry `code`.
    fn expect_close(&mut self, code: CloseCode) {
        let frame = self.read_frame();
        assert_eq!(
            frame.first,
            FIN | CLOSE,
            "expected a close frame with {code}, got {frame:?}"
        );
        assert!(frame.payload.len() >= 2, "close frame without a code");
        let sent = u16::from_be_bytes([frame.payload[0], frame.payload[1]]);
        assert_eq!(CloseCode(sent), code, "close frame {frame:?}");
        assert!(std::str::from_utf8(&frame.payload[2..]).is_ok());
    }

    /// Checks that the server closed the connection and sent nothing more.
    fn expect_eof(&mut self) {
        assert!(self.buf.is_empty(), "unexpected bytes {:02x?}", self.buf);
        let mut chunk = [0; 4096];
        match self.stream.read(&mut chunk) {
            Ok(0) => {}
            Ok(n) => panic!("unexpected bytes at the end: {:02x?}", &chunk[..n.min(32)]),
            Err(error) if is_reset(&error) => {}
            Err(error) => panic!("the server did not close the connection: {error}"),
        }
    }

    /// Completes a closing handshake with code 1000.
    fn close_normally(&mut self) {
        self.send(&masked(FIN | CLOSE, &1000u16.to_be_bytes()));
        self.expect_close(CloseCode::NORMAL);
        self.expect_eof();
    }

    fn fill_to(&mut self, len: usize, what: &str) {
        while self.buf.len() < len {
            self.fill(what);
        }
    }

    fn fill(&mut self, what: &str) {
        let mut chunk = [0; 64 << 10];
        match self.stream.read(&mut chunk) {
            Ok(0) => panic!("the server closed the connection while we waited for {what}"),
            Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            Err(error) => panic!("{error} while waiting for {what}"),
        }
    }
}

impl std::fmt::Debug for ServerFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let start = &self.payload[..self.payload.len().min(16)];
        write!(
            f,
            "frame {:#04x} with {} bytes {:02x?}",
            self.first,
            self.payload.len(),
            start
        )
    }
}

impl Response {
    fn parse(head: &[u8]) -> Self {
        let head = String::from_utf8_lossy(head);
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap();
        let status = status_line
            .strip_prefix("HTTP/1.1 ")
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        let headers = lines
            .filter(|line| !line.is_empty())
            .map(|line| {
                let (name, value) = line.split_once(':').expect("header line with a colon");
                (name.to_owned(), value.trim().to_owned())
            })
            .collect();
        Self { status, headers }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(field, _)| field.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

fn connect(server: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(server).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(TIMEOUT)).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

fn is_reset(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    )
}

/// A masked client frame; `first` is the FIN, RSV and opcode byte.
fn masked(first: u8, payload: &[u8]) -> Vec<u8> {
    masked_with(MASK, first, payload)
}

/// A client frame masked with `key`; an all-zero key leaves the payload as it is, which is
/// quick to build for large payloads.
fn masked_with(key: [u8; 4], first: u8, payload: &[u8]) -> Vec<u8> {
    let mut wire = Vec::with_capacity(payload.len() + 14);
    wire.push(first);
    match payload.len() {
        len @ 0..=125 => wire.push(0b1000_0000 | len as u8),
        len @ 126..=0xFFFF => {
            wire.push(0b1000_0000 | 126);
            wire.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            wire.push(0b1000_0000 | 127);
            wire.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    wire.extend_from_slice(&key);
    if key == [0; 4] {
        wire.extend_from_slice(payload);
    } else {
        let masked = payload
            .iter()
            .zip(key.iter().cycle())
            .map(|(byte, key)| byte ^ key);
        wire.extend(masked);
    }
    wire
}

/// A valid upgrade request without extensions.
fn request() -> Vec<u8> {
    head(REQUEST_LINES.iter().map(|line| line.to_string()))
}

/// The valid request with the line that starts with `name` replaced by `line`.
fn request_with(name: &str, line: &str) -> Vec<u8> {
    head(REQUEST_LINES.iter().map(|current| {
        if current.to_ascii_lowercase().starts_with(name) {
            line.to_owned()
        } else {
            current.to_string()
        }
    }))
}

/// The valid request without the line that starts with `name`.
fn request_without(name: &str) -> Vec<u8> {
    let lines = REQUEST_LINES
        .iter()
        .filter(|line| !line.to_ascii_lowercase().starts_with(name));
    head(lines.map(|line| line.to_string()))
}

fn head(lines: impl Iterator<Item = String>) -> Vec<u8> {
    let mut head: String = lines.map(|line| line + "\r\n").collect();
    head.push_str("\r\n");
    head.into_bytes()
}

/// Sends a bad request and checks its status, that the server logged the same handshake error
/// and that it still serves.
fn assert_rejected(adapter: Adapter, request: &[u8], status: u16) -> Response {
    let server = Server::start(adapter, options());
    let response = check_rejected(&server, request, status);
    assert_serves(&server);
    response
}

fn check_rejected(server: &Server, request: &[u8], status: u16) -> Response {
    let mut peer = Peer::connect(server.addr);
    peer.send(request);
    let response = peer.expect_rejection();
    let shown = String::from_utf8_lossy(request);
    assert_eq!(response.status, status, "{shown:?} got {response:?}");
    assert_eq!(response.header("connection"), Some("close"), "{response:?}");
    assert_handshake_failed(server, peer.addr, status);
    response
}

/// Sends an oversized request in 1 KiB pieces from another thread, holding back everything
/// after the first [`HOLD`] bytes until the response has arrived: the server must answer from
/// the start of the request. Writes may fail once it has answered and closed.
fn assert_rejected_early(adapter: Adapter, request: Vec<u8>, status: u16) {
    assert!(request.len() > HOLD);
    let server = Server::start(adapter, options());
    let mut peer = Peer::connect(server.addr);
    let answered = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let sending = {
        let mut stream = peer.stream.try_clone().unwrap();
        let (answered, sent) = (Arc::clone(&answered), Arc::clone(&sent));
        thread::spawn(move || {
            for piece in request.chunks(1024) {
                let deadline = Instant::now() + TIMEOUT;
                while sent.load(Ordering::SeqCst) >= HOLD
                    && !answered.load(Ordering::SeqCst)
                    && Instant::now() < deadline
                {
                    thread::sleep(Duration::from_millis(5));
                }
                if stream.write_all(piece).is_err() {
                    return;
                }
                sent.fetch_add(piece.len(), Ordering::SeqCst);
            }
        })
    };
    let started = Instant::now();
    let response = peer.expect_rejection();
    let sent_before_answer = sent.load(Ordering::SeqCst);
    answered.store(true, Ordering::SeqCst);
    assert_eq!(response.status, status, "{response:?}");
    assert!(
        sent_before_answer <= HOLD,
        "answered only after {sent_before_answer} bytes"
    );
    assert!(
        started.elapsed() < TIMEOUT,
        "answered after {:?}",
        started.elapsed()
    );
    sending.join().unwrap();
    assert_handshake_failed(&server, peer.addr, status);
    assert_serves(&server);
}

fn assert_handshake_failed(server: &Server, peer: SocketAddr, status: u16) {
    let ended = server.ended(peer);
    assert!(
        matches!(&ended, Ended::Failed(Error::Handshake(error)) if error.status() == status),
        "{ended:?}"
    );
}

/// Upgrades, sends `wire` and expects a close frame with `code`, then the end of the
/// connection, on a server of its own that must still serve afterwards.
fn assert_fails_with(adapter: Adapter, wire: &[u8], code: CloseCode) {
    let server = Server::start(adapter, options());
    check_fails_with(&server, wire, code);
    assert_serves(&server);
}

fn check_fails_with(server: &Server, wire: &[u8], code: CloseCode) {
    let mut peer = Peer::upgrade(server.addr);
    // The server may close before it has read everything: writing must not stop the test.
    let sending = peer.send_in_background(wire.to_vec());
    peer.expect_close(code);
    peer.expect_eof();
    let _ = sending.join().unwrap();
    assert_failed_with(server, peer.addr, code);
}

fn assert_failed_with(server: &Server, peer: SocketAddr, code: CloseCode) {
    let ended = server.ended(peer);
    assert!(
        matches!(&ended, Ended::Failed(error) if error.close_code() == Some(code)),
        "expected a failure with {code}, got {ended:?}"
    );
}

/// A well-behaved client (the blocking adapter's, offering permessage-deflate) is served in
/// full, and no server connection has panicked so far.
fn assert_serves(server: &Server) {
    let mut options = Options::default();
    options.handshake_timeout = Some(TIMEOUT);
    options.connection.keepalive_interval = Some(Duration::from_secs(1));
    options.connection.keepalive_timeout = Some(Duration::from_secs(2));
    options.connection.close_timeout = Some(Duration::from_secs(2));
    let request = ClientRequest::new(&format!("ws://{}/after", server.addr)).unwrap();
    let (mut ws, _) =
        wsio::sync::connect_with(request, &options).expect("a normal client is served");
    let addr = ws.get_ref().local_addr().unwrap();
    for message in [
        Message::text("still serving"),
        Message::binary(vec![0xA5; 3000]),
    ] {
        ws.send(message.clone()).unwrap();
        assert_eq!(ws.read().unwrap(), Some(message));
    }
    ws.close(None).unwrap();
    assert_eq!(ws.read().unwrap(), None);
    let ended = server.ended(addr);
    assert!(matches!(ended, Ended::Closed), "{ended:?}");
    let panics = server.panics();
    assert!(panics.is_empty(), "server connections panicked: {panics:?}");
}

/// Tests that measure the process's memory run one at a time.
fn measuring_memory() -> MutexGuard<'static, ()> {
    static MEMORY: Mutex<()> = Mutex::new(());
    lock(&MEMORY)
}

/// The process's resident memory (Linux), or 0 where it cannot be read.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn assert_memory_bounded(before_kib: u64, when: &str) {
    let now = rss_kib();
    assert!(
        now.saturating_sub(before_kib) < MEMORY_BOUND_KIB,
        "resident memory grew from {before_kib} KiB to {now} KiB {when}"
    );
}
