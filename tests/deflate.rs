//! permessage-deflate through the connection (RFC 7692 §6, §7.2): RSV1, inflating limits and
//! errors, compressed round trips in both directions.
#![cfg(feature = "deflate")]

mod common;

use bytes::BytesMut;
use common::*;
use wsio::proto::deflate::{Compressor, DeflateConfig, DeflateParams};
use wsio::proto::handshake::{ClientRequest, RequestParser};
use wsio::proto::{
    Config, Connection, Event, Frame, Message, OpCode, ProtocolError, Rng, Role, Transmit,
};

/// Negotiates through a real offer and answer.
fn params(config: &DeflateConfig) -> DeflateParams {
    let request = ClientRequest::new("ws://example.com/")
        .unwrap()
        .extension(&config.offer())
        .unwrap();
    let (wire, _) = request.encode(&mut Rng::from_seed([1; 32]));
    let request = RequestParser::default().receive(&wire).unwrap().unwrap();
    config.negotiate(request.extensions()).expect("accepted").0
}

fn deflate_server(config: Config) -> Connection {
    Connection::server(config).with_deflate(params(&DeflateConfig::default()))
}

fn deflate_client() -> Connection {
    Connection::client(Config::default(), Rng::from_seed([5; 32]))
        .with_deflate(params(&DeflateConfig::default()))
}

/// A masked client frame with RSV1 set.
fn compressed_frame(fin: bool, opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    let mut wire = BytesMut::new();
    Frame {
        fin,
        rsv1: true,
        opcode,
        payload: payload.to_vec().into(),
    }
    .encode(Some(MASK), &mut wire);
    wire.to_vec()
}

fn compress(data: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    Compressor::new(&params(&DeflateConfig::default()), Role::Client).compress(data, &mut out);
    out.to_vec()
}

fn drain(conn: &mut Connection) -> Vec<u8> {
    let mut wire = Vec::new();
    while let Some(Transmit::Data(data)) = conn.poll_transmit() {
        wire.extend_from_slice(&data);
    }
    wire
}

#[test]
fn rfc_7692_hello_in_one_and_in_two_frames() {
    let hello = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
    let make = || deflate_server(Config::default());
    let outcome = replay(make, &compressed_frame(true, OpCode::Text, &hello));
    assert_eq!(outcome.messages(), [Message::text("Hello")]);
    let split = concat(&[
        compressed_frame(false, OpCode::Text, &hello[..3]),
        client_frame(true, OpCode::Continuation, &hello[3..]),
    ]);
    assert_eq!(replay(make, &split).messages(), [Message::text("Hello")]);
}

#[test]
fn messages_round_trip_compressed_both_ways() {
    let text = "{\"event\":\"tick\",\"price\":\"12.5€\"} ".repeat(50);
    for (mut sender, mut receiver) in [
        (deflate_client(), deflate_server(Config::default())),
        (deflate_server(Config::default()), deflate_client()),
    ] {
        for _ in 0..3 {
            sender.send(Message::text(text.as_str())).unwrap();
        }
        sender.send(Message::binary(vec![1, 2, 3])).unwrap(); // under the threshold
        let wire = drain(&mut sender);
        assert!(
            wire.len() < text.len(),
            "compressed: {} bytes for 3 x {}",
            wire.len(),
            text.len()
        );
        receiver.receive(&wire);
        for _ in 0..3 {
            assert_eq!(
                receiver.poll_event(),
                Some(Ok(Event::Message(Message::text(text.as_str()))))
            );
        }
        assert_eq!(
            receiver.poll_event(),
            Some(Ok(Event::Message(Message::binary(vec![1, 2, 3]))))
        );
    }
}

#[test]
fn only_the_first_frame_of_a_message_carries_rsv1_and_control_frames_never_do() {
    let mut server = deflate_server(Config::default());
    server.send(Message::text("x".repeat(100))).unwrap();
    server
        .send_uncompressed(Message::text("y".repeat(100)))
        .unwrap();
    server.ping("p").unwrap();
    let wire = drain(&mut server);
    let mut decoder = wsio::proto::FrameDecoder::new(
        Role::Client,
        wsio::proto::DecoderLimits {
            max_frame_size: 1 << 20,
            allow_rsv1: true,
        },
    );
    let mut buf = BytesMut::from(&wire[..]);
    let rsv1: Vec<_> = std::iter::from_fn(|| decoder.decode(&mut buf).unwrap())
        .map(|frame| (frame.opcode, frame.rsv1))
        .collect();
    assert_eq!(
        rsv1,
        [
            (OpCode::Text, true),
            (OpCode::Text, false),
            (OpCode::Ping, false)
        ]
    );

    let outcome = replay(
        || deflate_server(Config::default()),
        &concat(&[
            compressed_frame(false, OpCode::Text, &[0xf2, 0x48]),
            compressed_frame(true, OpCode::Continuation, &[0xcd, 0xc9, 0xc9, 0x07, 0x00]),
        ]),
    );
    assert_eq!(outcome.error(), Some(&ProtocolError::ReservedBits));
    assert_eq!(outcome.sent_close_code(), Some(1002));
}

#[test]
fn rsv1_without_negotiation_fails_with_1002() {
    let outcome = replay(
        server,
        &compressed_frame(
            true,
            OpCode::Text,
            &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00],
        ),
    );
    assert_eq!(outcome.error(), Some(&ProtocolError::ReservedBits));
}

#[test]
fn corrupt_compressed_data_fails_with_1007() {
    let outcome = replay(
        || deflate_server(Config::default()),
        &compressed_frame(true, OpCode::Binary, &[0xff, 0xff, 0xff, 0xff]),
    );
    assert_eq!(outcome.error(), Some(&ProtocolError::InvalidCompressedData));
    assert_eq!(outcome.sent_close_code(), Some(1007));
}

#[test]
fn compressed_invalid_utf8_fails_with_1007() {
    let outcome = replay(
        || deflate_server(Config::default()),
        &compressed_frame(true, OpCode::Text, &compress(&[b'a', 0xff, b'b'])),
    );
    assert_eq!(outcome.error(), Some(&ProtocolError::InvalidUtf8));
}

#[test]
fn a_deflate_bomb_fails_with_1009_within_the_limit() {
    let mut config = Config::default();
    config.max_message_size = 1 << 20;
    // 8 MiB of zeros compress to a frame far below the limit; only inflating finds the size.
    let bomb = compress(&vec![0; 8 << 20]);
    assert!(bomb.len() < 128 << 10, "{}", bomb.len());
    let outcome = run(
        deflate_server(config),
        &compressed_frame(true, OpCode::Binary, &bomb),
        16 << 10,
        false,
    );
    assert!(
        matches!(outcome.error(), Some(ProtocolError::MessageTooBig { limit, .. }) if *limit == 1 << 20)
    );
    assert_eq!(outcome.sent_close_code(), Some(1009));
}

#[test]
fn streaming_mode_inflates_chunk_by_chunk() {
    let mut config = Config::default();
    config.streaming = true;
    let text = "streamed and compressed ".repeat(1000);
    let wire = compressed_frame(true, OpCode::Text, &compress(text.as_bytes()));
    let outcome = run(deflate_server(config), &wire, 100, false);
    let mut data = Vec::new();
    for event in &outcome.events {
        let Ok(Event::MessageChunk { data: piece, .. }) = event else {
            panic!("{event:?}")
        };
        data.extend_from_slice(piece);
    }
    assert_eq!(String::from_utf8(data).unwrap(), text);
}
