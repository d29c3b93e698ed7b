//! The receive paths a frame can take (through the read buffer, straight from `receive`, short
//! text shared with the buffer, large binary assembled on the message) give the same events for
//! any chunking, with control frames and fragments in between, for both roles.

mod common;

use common::*;
use proptest::prelude::*;
use wsio::proto::{Connection, Event, Message, OpCode, ProtocolError};

/// One frame of a message sequence: data fragments of any size around the thresholds, or a ping.
#[derive(Debug, Clone)]
enum Piece {
    Message { text: bool, fragments: Vec<Vec<u8>> },
    Ping(Vec<u8>),
}

/// Valid text of about `len` bytes (at most three short), with two- and three-byte code points,
/// so chunk edges and fragments split them.
fn text_of_len(len: usize) -> Vec<u8> {
    let mut text = "añ€b".repeat(len / 7 + 1);
    let mut cut = len;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    text.truncate(cut);
    text.into_bytes()
}

fn any_piece() -> impl Strategy<Value = Piece> {
    let len = prop_oneof![
        3 => 0usize..70,
        3 => 60usize..200,
        3 => 16_000usize..20_000,
        3 => 60_000usize..70_000,
        // Longer than the read buffer completes in place: read onto the message.
        1 => 262_000usize..300_000,
    ];
    prop_oneof![
        4 => (any::<bool>(), proptest::collection::vec(len, 1..4)).prop_map(|(text, lens)| {
            // The message as a whole is valid; its fragments split it anywhere.
            let whole = if text { text_of_len(lens.iter().sum()) } else { vec![0xa5; lens.iter().sum()] };
            let mut fragments = Vec::new();
            let mut start = 0;
            for (index, len) in lens.iter().enumerate() {
                let end = if index + 1 == lens.len() { whole.len() } else { (start + len).min(whole.len()) };
                fragments.push(whole[start..end].to_vec());
                start = end;
            }
            Piece::Message { text, fragments }
        }),
        1 => proptest::collection::vec(any::<u8>(), 0..10).prop_map(Piece::Ping),
    ]
}

/// The wire form of `pieces` and the events they must give, in order.
fn wire_of(pieces: &[Piece], masked: bool) -> (Vec<u8>, Vec<Event>) {
    let frame = |fin, opcode, payload: &[u8]| {
        if masked {
            client_frame(fin, opcode, payload)
        } else {
            server_frame(fin, opcode, payload)
        }
    };
    let mut wire = Vec::new();
    let mut messages = Vec::new();
    for piece in pieces {
        match piece {
            Piece::Message { text, fragments } => {
                let first = if *text { OpCode::Text } else { OpCode::Binary };
                for (index, fragment) in fragments.iter().enumerate() {
                    let opcode = if index == 0 {
                        first
                    } else {
                        OpCode::Continuation
                    };
                    wire.extend(frame(index + 1 == fragments.len(), opcode, fragment));
                }
                let whole = fragments.concat();
                messages.push(Event::Message(if *text {
                    Message::text(String::from_utf8(whole).expect("whole text is valid"))
                } else {
                    Message::binary(whole)
                }));
            }
            Piece::Ping(payload) => {
                wire.extend(frame(true, OpCode::Ping, payload));
                messages.push(Event::Ping(payload.clone().into()));
            }
        }
    }
    (wire, messages)
}

/// Feeds `wire` in pieces of the given sizes (cycled) and collects messages and pings.
fn receive_all(
    mut conn: Connection,
    wire: &[u8],
    sizes: &[usize],
) -> Vec<Result<Event, ProtocolError>> {
    let mut events = Vec::new();
    let mut rest = wire;
    for &size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (piece, tail) = rest.split_at(size.clamp(1, rest.len()));
        rest = tail;
        conn.receive(piece);
        while let Some(event) = conn.poll_event() {
            events.push(event);
        }
    }
    events
}

/// Like `receive_all`, through `receive_with` (a read that takes what fits in the room it is
/// given, or ignores it) mixed with `receive`, as `reads` says for each piece.
fn receive_all_with(
    mut conn: Connection,
    wire: &[u8],
    sizes: &[usize],
    room: usize,
    reads: &[Read],
) -> Vec<Result<Event, ProtocolError>> {
    let mut events = Vec::new();
    let mut rest = wire;
    for (&size, read) in sizes.iter().cycle().zip(reads.iter().cycle()) {
        if rest.is_empty() {
            break;
        }
        let mut take = |limit: usize| {
            let (piece, tail) = rest.split_at(size.min(limit).clamp(1, rest.len()));
            rest = tail;
            piece
        };
        match read {
            Read::Slice => conn.receive(take(usize::MAX)),
            Read::IntoRoom => conn.receive_with(room, |buf| {
                let spare = buf.capacity() - buf.len();
                buf.extend_from_slice(take(spare));
            }),
            Read::PastRoom => {
                conn.receive_with(room, |buf| buf.extend_from_slice(take(usize::MAX)))
            }
        }
        while let Some(event) = conn.poll_event() {
            events.push(event);
        }
    }
    events
}

#[derive(Debug, Clone, Copy)]
enum Read {
    Slice,
    IntoRoom,
    PastRoom,
}

fn any_read() -> impl Strategy<Value = Read> {
    prop_oneof![
        1 => Just(Read::Slice),
        4 => Just(Read::IntoRoom),
        1 => Just(Read::PastRoom),
    ]
}

fn messages_of(events: &[Result<Event, ProtocolError>]) -> Vec<Message> {
    events
        .iter()
        .filter_map(|event| match event {
            Ok(Event::Message(message)) => Some(message.clone()),
            _ => None,
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn any_chunking_gives_the_same_messages(
        pieces in proptest::collection::vec(any_piece(), 1..6),
        sizes in proptest::collection::vec(prop_oneof![1usize..20, 20usize..3000, 3000usize..70_000], 1..5),
    ) {
        for (masked, conn) in [(true, server()), (false, client())] {
            let (wire, expected) = wire_of(&pieces, masked);
            let events = receive_all(conn, &wire, &sizes);
            let expected: Vec<_> = expected.into_iter().map(Ok).collect();
            prop_assert_eq!(events, expected);
        }
    }

    #[test]
    fn reading_into_the_connection_gives_the_same_messages(
        pieces in proptest::collection::vec(any_piece(), 1..6),
        sizes in proptest::collection::vec(prop_oneof![1usize..20, 20usize..3000, 3000usize..140_000], 1..5),
        room in prop_oneof![1usize..100, 4096usize..70_000],
        reads in proptest::collection::vec(any_read(), 1..6),
    ) {
        for (masked, conn) in [(true, server()), (false, client())] {
            let (wire, expected) = wire_of(&pieces, masked);
            let events = receive_all_with(conn, &wire, &sizes, room, &reads);
            let expected: Vec<_> = expected.into_iter().map(Ok).collect();
            prop_assert_eq!(events, expected);
        }
    }

    #[test]
    fn invalid_utf8_anywhere_in_a_long_text_fails_with_1007(
        len in 64usize..40_000,
        at in 0usize..40_000,
        chunk in 1usize..70_000,
    ) {
        let mut text = text_of_len(len);
        let at = at % len;
        text[at] = 0xff;
        let wire = client_frame(true, OpCode::Text, &text);
        let events = receive_all(server(), &wire, &[chunk]);
        prop_assert_eq!(events.last(), Some(&Err(ProtocolError::InvalidUtf8)));
        prop_assert_eq!(messages_of(&events), Vec::<Message>::new());
    }
}

#[test]
fn an_empty_ping_ending_the_input_is_reported() {
    for (masked, mut conn) in [(true, server()), (false, client())] {
        let (wire, _) = wire_of(&[Piece::Ping(Vec::new())], masked);
        conn.receive(&wire);
        assert_eq!(conn.poll_event(), Some(Ok(Event::Ping(Vec::new().into()))));
    }
}

#[test]
fn a_large_frame_over_the_size_limit_is_refused_from_its_header() {
    let mut wire = client_frame(true, OpCode::Binary, &vec![0; 17 << 20]);
    wire.truncate(64 << 10);
    let events = receive_all(server(), &wire, &[64 << 10]);
    assert!(matches!(
        events.last(),
        Some(Err(ProtocolError::FrameTooBig { .. }))
    ));
}

#[test]
fn texts_before_an_invalid_one_in_the_same_read_are_delivered_first() {
    let good = text_of_len(100);
    let mut bad = text_of_len(100);
    bad[50] = 0xff;
    let mut wire = client_frame(true, OpCode::Text, &good);
    wire.extend(client_frame(true, OpCode::Ping, b"p"));
    wire.extend(client_frame(true, OpCode::Text, &good));
    wire.extend(client_frame(true, OpCode::Text, &bad));
    wire.extend(client_frame(true, OpCode::Text, &good));
    let events = receive_all(server(), &wire, &[wire.len()]);
    let text = Message::text(String::from_utf8(good).unwrap());
    assert_eq!(
        events,
        vec![
            Ok(Event::Message(text.clone())),
            Ok(Event::Ping(b"p"[..].into())),
            Ok(Event::Message(text)),
            Err(ProtocolError::InvalidUtf8),
        ]
    );
}

/// A frame cut by the end of a read is completed where it began, after the frames of the same
/// read, even while those are still held: the read buffer left room for it instead of moving it.
#[test]
fn a_frame_cut_by_a_read_is_completed_in_place() {
    let payload = vec![0x5a; 16 << 10];
    let frame = client_frame(true, OpCode::Binary, &payload);
    let wire: Vec<u8> = frame
        .iter()
        .copied()
        .cycle()
        .take(frame.len() * 8)
        .collect();
    let header_len = frame.len() - payload.len();
    let mut conn = server();
    let mut held = Vec::new();
    // Reads of 2.5 frames: every other one ends in the middle of a frame.
    for read in wire.chunks(frame.len() * 5 / 2) {
        conn.receive(read);
        while let Some(event) = conn.poll_event() {
            match event {
                Ok(Event::Message(Message::Binary(data))) => held.push(data),
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    assert_eq!(held.len(), 8);
    assert!(held.iter().all(|data| data[..] == payload[..]));
    // The first cut frame tells the connection how much room to leave; the next one (the
    // eighth frame, begun in the third read and ended in the fourth) follows the seventh in
    // the same allocation.
    let after_seventh = held[6].as_ptr() as usize + held[6].len() + header_len;
    assert_eq!(held[7].as_ptr() as usize, after_seventh);
}
