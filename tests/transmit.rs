//! The borrowed send and transmit paths (`send_binary`/`send_text`, `transmit_chunk`,
//! `transmit_slices`, `advance_transmit`) put the same bytes on the wire as `send` +
//! `poll_transmit`, for any mix of messages (short, or long enough to be queued as they are),
//! pings and partial writes, in both roles; and those bytes carry the messages sent.

mod common;

use std::io::IoSlice;

use common::*;
use proptest::prelude::*;
use wsio::proto::{Config, Connection, Event, Message, Rng, Transmit};

#[derive(Debug, Clone)]
enum Op {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
}

fn any_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        "\\PC{0,200}".prop_map(Op::Text),
        proptest::collection::vec(any::<u8>(), 0..3000).prop_map(Op::Binary),
        // Long enough for a server to queue the payload as it is rather than copy it.
        proptest::collection::vec(any::<u8>(), 4000..9000).prop_map(Op::Binary),
        proptest::collection::vec(any::<u8>(), 0..125).prop_map(Op::Ping),
    ]
}

fn connection(client: bool) -> Connection {
    if client {
        Connection::client(Config::default(), Rng::from_seed([3; 32]))
    } else {
        Connection::server(Config::default())
    }
}

/// Queues `op` the owned way (`owned`) or the borrowed way.
fn queue(conn: &mut Connection, op: &Op, owned: bool) {
    match (op, owned) {
        (Op::Text(text), true) => conn.send(Message::text(text.clone())).unwrap(),
        (Op::Text(text), false) => conn.send_text(text).unwrap(),
        (Op::Binary(data), true) => conn.send(Message::binary(data.clone())).unwrap(),
        (Op::Binary(data), false) => conn.send_binary(data).unwrap(),
        (Op::Ping(data), _) => conn.ping(data.clone()).unwrap(),
    }
}

fn drain_owned(conn: &mut Connection, wire: &mut Vec<u8>) {
    while let Some(Transmit::Data(data)) = conn.poll_transmit() {
        wire.extend_from_slice(&data);
    }
}

/// Writes at most `limit` bytes per call, as a socket with a full buffer would; vectored or not.
fn drain_borrowed(conn: &mut Connection, wire: &mut Vec<u8>, limit: usize, vectored: bool) {
    loop {
        let written = if vectored {
            let mut slices = [IoSlice::new(&[]); 4];
            let filled = conn.transmit_slices(&mut slices);
            let mut written = 0;
            for slice in &slices[..filled] {
                let take = slice.len().min(limit - written);
                wire.extend_from_slice(&slice[..take]);
                written += take;
            }
            written
        } else {
            let chunk = conn.transmit_chunk();
            let take = chunk.len().min(limit);
            wire.extend_from_slice(&chunk[..take]);
            take
        };
        if written == 0 {
            return;
        }
        conn.advance_transmit(written);
    }
}

proptest! {
    #[test]
    fn borrowed_paths_write_the_same_bytes(
        ops in proptest::collection::vec(any_op(), 1..12),
        owned_sends in proptest::collection::vec(any::<bool>(), 12),
        limit in 1usize..5000,
        vectored in any::<bool>(),
        client in any::<bool>(),
        drain_every in 1usize..4,
    ) {
        let mut owned = connection(client);
        let mut borrowed = connection(client);
        let (mut expected, mut actual) = (Vec::new(), Vec::new());
        for (index, op) in ops.iter().enumerate() {
            queue(&mut owned, op, true);
            // Written through the borrowed transmit API whichever way it was queued.
            queue(&mut borrowed, op, owned_sends[index]);
            if index % drain_every == 0 {
                drain_owned(&mut owned, &mut expected);
                drain_borrowed(&mut borrowed, &mut actual, limit, vectored);
            }
        }
        drain_owned(&mut owned, &mut expected);
        drain_borrowed(&mut borrowed, &mut actual, limit, vectored);
        prop_assert_eq!(borrowed.buffered_amount(), 0);
        prop_assert_eq!(&actual, &expected);
        // And the bytes are the frames of the operations, in order.
        let mut peer = connection(!client);
        peer.receive(&actual);
        for op in &ops {
            let event = peer.poll_event().expect("an event per operation").expect("valid");
            let wanted = match op {
                Op::Text(text) => Event::Message(Message::text(text.clone())),
                Op::Binary(data) => Event::Message(Message::binary(data.clone())),
                Op::Ping(data) => Event::Ping(data.clone().into()),
            };
            prop_assert_eq!(event, wanted);
        }
        prop_assert_eq!(peer.poll_event(), None);
    }
}

#[test]
fn pongs_owed_are_written_by_the_borrowed_path() {
    let mut server = Connection::server(Config::default());
    server.receive(&client_frame(true, wsio::proto::OpCode::Ping, b"hi"));
    assert_eq!(server.poll_event(), Some(Ok(Event::Ping(b"hi"[..].into()))));
    let mut wire = Vec::new();
    drain_borrowed(&mut server, &mut wire, 1, false);
    assert_eq!(wire, [0x8a, 2, b'h', b'i']);
}

#[test]
fn a_close_shutdown_follows_the_borrowed_bytes() {
    let mut server = Connection::server(Config::default());
    server.receive(&client_frame(
        true,
        wsio::proto::OpCode::Close,
        &[0x03, 0xe8],
    ));
    assert!(matches!(server.poll_event(), Some(Ok(Event::Closed(_)))));
    let mut wire = Vec::new();
    drain_borrowed(&mut server, &mut wire, 3, true);
    assert_eq!(wire, [0x88, 2, 0x03, 0xe8]);
    server.receive_eof();
    assert_eq!(server.poll_transmit(), Some(Transmit::Shutdown));
}

#[test]
#[should_panic(expected = "advance_transmit")]
fn advancing_past_the_queued_bytes_panics() {
    let mut server = Connection::server(Config::default());
    server.send_binary(b"abc").unwrap();
    server.advance_transmit(6);
}
