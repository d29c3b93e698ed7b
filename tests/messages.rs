//! RFC 6455 §5.4, §5.6, §8.1: message assembly, UTF-8 and limits.

mod common;

use common::*;
use wsio::proto::{Config, Connection, Event, Message, MessageKind, OpCode, ProtocolError};

#[test]
fn fragments_with_interleaved_control_frames() {
    let input = concat(&[
        client_frame(false, OpCode::Text, "frag".as_bytes()),
        client_frame(true, OpCode::Ping, b"p"),
        client_frame(false, OpCode::Continuation, "mént".as_bytes()),
        client_frame(true, OpCode::Pong, b"q"),
        client_frame(true, OpCode::Continuation, "é".as_bytes()),
    ]);
    let outcome = replay(server, &input);
    assert_eq!(
        outcome.events,
        [
            Ok(Event::Ping("p".into())),
            Ok(Event::Pong("q".into())),
            Ok(Event::Message(Message::text("fragménté"))),
        ]
    );
}

#[test]
fn empty_messages() {
    let input = concat(&[
        client_frame(true, OpCode::Text, b""),
        client_frame(true, OpCode::Binary, b""),
        client_frame(false, OpCode::Text, b""),
        client_frame(true, OpCode::Continuation, b""),
    ]);
    let outcome = replay(server, &input);
    assert_eq!(
        outcome.messages(),
        [
            Message::text(""),
            Message::binary(&b""[..]),
            Message::text("")
        ]
    );
}

fn assert_invalid_payload(input: &[u8]) -> Outcome {
    let outcome = replay(server, input);
    assert_eq!(outcome.error(), Some(&ProtocolError::InvalidUtf8));
    assert_eq!(outcome.sent_close_code(), Some(1007));
    outcome
}

/// A whole text message arriving with its frame is unmasked and validated in blocks of a few
/// kilobytes: code points cut by a block's end are carried to the next, and an invalid or
/// unfinished one is caught wherever it falls.
#[test]
fn long_texts_are_validated_across_blocks() {
    for prefix in 0..3 {
        let text = "a".repeat(prefix) + &"€ uñ".repeat(3000);
        let outcome = replay(server, &client_frame(true, OpCode::Text, text.as_bytes()));
        assert_eq!(outcome.messages(), [Message::text(text)]);
    }
    let mut broken = vec![b'a'; 4095];
    broken.extend_from_slice(&[0xe2, 0x28]);
    broken.extend_from_slice(&[b'a'; 100]);
    assert_invalid_payload(&client_frame(true, OpCode::Text, &broken));
    let mut unfinished = vec![b'a'; 5000];
    unfinished.extend_from_slice(&[0xe2, 0x82]);
    assert_invalid_payload(&client_frame(true, OpCode::Text, &unfinished));
}

#[test]
fn invalid_utf8_in_a_whole_message() {
    assert_invalid_payload(&client_frame(
        true,
        OpCode::Text,
        &[0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xed, 0xa0, 0x80],
    ));
}

#[test]
fn invalid_utf8_split_across_fragments() {
    assert_invalid_payload(&concat(&[
        client_frame(false, OpCode::Text, &[0xf4]),
        client_frame(true, OpCode::Continuation, &[0x90, 0x80, 0x80]),
    ]));
}

#[test]
fn text_truncated_inside_a_code_point_at_fin() {
    assert_invalid_payload(&concat(&[
        client_frame(false, OpCode::Text, "ok".as_bytes()),
        client_frame(true, OpCode::Continuation, &[0xe2, 0x82]),
    ]));
}

#[test]
fn invalid_utf8_fails_before_the_frame_is_complete() {
    // The frame declares 100 bytes, but only an invalid prefix has arrived.
    let frame = client_frame(
        true,
        OpCode::Text,
        &[[0xff].as_slice(), &[b'a'; 99]].concat(),
    );
    let mut conn = server();
    conn.receive(&frame[..8]);
    assert_eq!(conn.poll_event(), Some(Err(ProtocolError::InvalidUtf8)));
}

#[test]
fn invalid_utf8_fails_before_the_message_is_complete() {
    let mut conn = server();
    conn.receive(&client_frame(false, OpCode::Text, &[0xc0, 0xaf]));
    assert_eq!(conn.poll_event(), Some(Err(ProtocolError::InvalidUtf8)));
}

fn limited(config: Config) -> Connection {
    Connection::server(config)
}

#[test]
fn message_over_the_limit_in_small_fragments_fails_with_1009() {
    let mut config = Config::default();
    config.max_message_size = 1000;
    let mut input = client_frame(false, OpCode::Binary, &[0; 100]);
    for _ in 0..20 {
        input.extend(client_frame(false, OpCode::Continuation, &[0; 100]));
    }
    let outcome = run(limited(config), &input, 7, false);
    assert!(matches!(
        outcome.error(),
        Some(ProtocolError::MessageTooBig {
            size: 1100,
            limit: 1000
        })
    ));
    assert_eq!(outcome.sent_close_code(), Some(1009));
}

#[test]
fn too_many_fragments_fails_with_1008() {
    let mut config = Config::default();
    config.max_fragments = 10;
    let mut input = client_frame(false, OpCode::Binary, b"x");
    for _ in 0..10 {
        input.extend(client_frame(false, OpCode::Continuation, b"x"));
    }
    let outcome = run(limited(config), &input, input.len(), false);
    assert_eq!(
        outcome.error(),
        Some(&ProtocolError::TooManyFragments { limit: 10 })
    );
    assert_eq!(outcome.sent_close_code(), Some(1008));
}

#[test]
fn many_tiny_fragments_within_limits_are_assembled() {
    let mut input = client_frame(false, OpCode::Binary, b"x");
    for _ in 0..99_998 {
        input.extend(client_frame(false, OpCode::Continuation, b"x"));
    }
    input.extend(client_frame(true, OpCode::Continuation, b"x"));
    let outcome = run(server(), &input, 65536, false);
    assert_eq!(outcome.messages(), [Message::binary(vec![b'x'; 100_000])]);
}

#[test]
fn unfragmented_payload_shares_the_read_buffer() {
    // Zero copy: the message's bytes live in the connection's read allocation, so two messages
    // received in one read sit next to each other in memory.
    let input = concat(&[
        client_frame(true, OpCode::Binary, &[1; 64]),
        client_frame(true, OpCode::Binary, &[2; 64]),
    ]);
    let outcome = run(server(), &input, input.len(), false);
    let [Message::Binary(first), Message::Binary(second)] = &outcome.messages()[..] else {
        panic!()
    };
    assert_eq!(first.as_ptr() as usize + 64 + 6, second.as_ptr() as usize);
}

#[test]
fn streaming_mode_hands_out_chunks_as_they_arrive() {
    let mut config = Config::default();
    config.streaming = true;
    let text = "ça va? ".repeat(100);
    let input = concat(&[
        client_frame(false, OpCode::Text, &text.as_bytes()[..301]),
        client_frame(true, OpCode::Continuation, &text.as_bytes()[301..]),
    ]);
    for chunk in [1, 10, input.len()] {
        let outcome = run(limited(config.clone()), &input, chunk, false);
        let mut data = Vec::new();
        let mut lasts = 0;
        for event in &outcome.events {
            let Ok(Event::MessageChunk {
                kind: MessageKind::Text,
                data: piece,
                last,
            }) = event
            else {
                panic!("unexpected {event:?}");
            };
            data.extend_from_slice(piece);
            lasts += usize::from(*last);
        }
        assert_eq!(String::from_utf8(data).unwrap(), text);
        assert_eq!(lasts, 1);
        assert!(matches!(
            outcome.events.last(),
            Some(Ok(Event::MessageChunk { last: true, .. }))
        ));
    }
}

#[test]
fn streaming_mode_still_validates_utf8_across_chunks() {
    let mut config = Config::default();
    config.streaming = true;
    let input = concat(&[
        client_frame(false, OpCode::Text, &[0xe2]),
        client_frame(true, OpCode::Continuation, &[0x82, 0x28]),
    ]);
    let outcome = run(limited(config), &input, 1, false);
    assert_eq!(outcome.error(), Some(&ProtocolError::InvalidUtf8));
}

#[test]
fn streaming_mode_validates_utf8_of_long_frames_cut_by_reads() {
    let mut config = Config::default();
    config.streaming = true;
    // Long enough to be unmasked as it is copied; the bad byte sits in every part a read can
    // leave: right after the header, in the middle and at the very end.
    for bad_at in [0, 150, 299] {
        let mut payload = vec![b'a'; 300];
        payload[bad_at] = 0xff;
        let input = client_frame(true, OpCode::Text, &payload);
        for chunk in [1, 10, 100, 200, input.len()] {
            let outcome = run(limited(config.clone()), &input, chunk, false);
            assert_eq!(
                outcome.error(),
                Some(&ProtocolError::InvalidUtf8),
                "bad byte at {bad_at}, reads of {chunk}"
            );
        }
    }
}

#[test]
fn fragmented_send_round_trips() {
    let mut sender = client();
    sender
        .send_fragment(MessageKind::Text, "hel", false)
        .unwrap();
    sender.ping("mid").unwrap();
    assert_eq!(
        sender.send(Message::text("no")),
        Err(wsio::proto::SendError::FragmentedMessageOpen)
    );
    sender.send_fragment(MessageKind::Text, "lo", true).unwrap();
    let mut wire = Vec::new();
    while let Some(wsio::proto::Transmit::Data(data)) = sender.poll_transmit() {
        wire.extend_from_slice(&data);
    }
    let outcome = replay(server, &wire);
    assert_eq!(
        outcome.events,
        [
            Ok(Event::Ping("mid".into())),
            Ok(Event::Message(Message::text("hello")))
        ]
    );
}
