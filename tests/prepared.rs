//! `PreparedMessage`: one message sent to many connections, with and without permessage-deflate.

mod common;

use bytes::Bytes;
use common::*;
use wsio::proto::{
    Config, Connection, Event, Message, MessageKind, PreparedMessage, Rng, SendError, Transmit,
};

/// Everything the connection wants written, as separate transmits.
fn transmits(conn: &mut Connection) -> Vec<Bytes> {
    let mut out = Vec::new();
    while let Some(Transmit::Data(data)) = conn.poll_transmit() {
        out.push(data);
    }
    out
}

fn wire(conn: &mut Connection) -> Vec<u8> {
    transmits(conn).concat()
}

/// Feeds `wire` to `receiver` and returns the messages it delivers.
fn deliver(receiver: &mut Connection, wire: &[u8]) -> Vec<Message> {
    receiver.receive(wire);
    let mut messages = Vec::new();
    while let Some(event) = receiver.poll_event() {
        match event.expect("valid frames") {
            Event::Message(message) => messages.push(message),
            other => panic!("unexpected event {other:?}"),
        }
    }
    messages
}

#[test]
fn writes_the_same_frames_as_send() {
    let big = Bytes::from(vec![7u8; 100_000]);
    for message in [
        Message::text("héllo"),
        Message::text(""),
        Message::binary(big.clone()),
    ] {
        let prepared = PreparedMessage::new(message.clone());
        let (mut direct, mut via_prepared) = (server(), server());
        direct.send(message.clone()).unwrap();
        via_prepared.send_prepared(&prepared).unwrap();
        assert_eq!(wire(&mut direct), wire(&mut via_prepared));
    }
}

#[test]
fn a_large_payload_is_shared_not_copied_by_every_server_connection() {
    let prepared = PreparedMessage::new(Message::binary(vec![1u8; 64 * 1024]));
    let mut payload_addresses = Vec::new();
    for _ in 0..3 {
        let mut conn = server();
        conn.send_prepared(&prepared).unwrap();
        let out = transmits(&mut conn);
        let payload = out
            .iter()
            .find(|chunk| chunk.len() == prepared.len())
            .unwrap();
        payload_addresses.push(payload.as_ptr());
    }
    assert!(
        payload_addresses
            .iter()
            .all(|&p| p == prepared.payload().as_ptr())
    );
}

#[test]
fn a_small_message_is_one_frame_shared_by_idle_server_connections() {
    let prepared = PreparedMessage::new(Message::text("42[\"tick\",1]"));
    let mut frames = Vec::new();
    for _ in 0..3 {
        let mut conn = server();
        conn.send_prepared(&prepared).unwrap();
        let out = transmits(&mut conn);
        assert_eq!(out.len(), 1);
        frames.push(out[0].clone());
    }
    assert_eq!(frames[0][..2], [0x81, prepared.len() as u8]);
    assert_eq!(&frames[0][2..], prepared.payload());
    assert!(
        frames
            .iter()
            .all(|frame| frame.as_ptr() == frames[0].as_ptr())
    );
}

#[test]
fn a_shared_frame_keeps_its_place_among_other_frames() {
    let prepared = PreparedMessage::new(Message::binary(vec![9u8; 300]));
    let (mut direct, mut via_prepared) = (server(), server());
    for conn in [&mut direct, &mut via_prepared] {
        conn.ping("p").unwrap();
        let _ = transmits(conn);
    }
    direct.send(Message::binary(vec![9u8; 300])).unwrap();
    direct.send_text("after").unwrap();
    direct.send(Message::binary(vec![9u8; 300])).unwrap();
    via_prepared.send_prepared(&prepared).unwrap();
    via_prepared.send_text("after").unwrap();
    via_prepared.send_prepared(&prepared).unwrap();
    assert_eq!(wire(&mut direct), wire(&mut via_prepared));
    // Written in part through borrowed slices, the rest follows in order.
    via_prepared.send_prepared(&prepared).unwrap();
    via_prepared.send_text("end").unwrap();
    let mut written = Vec::new();
    while via_prepared.buffered_amount() > 0 {
        let chunk = via_prepared.transmit_chunk();
        let n = chunk.len().min(7);
        written.extend_from_slice(&chunk[..n]);
        via_prepared.advance_transmit(n);
    }
    direct.send(Message::binary(vec![9u8; 300])).unwrap();
    direct.send_text("end").unwrap();
    assert_eq!(written, wire(&mut direct));
}

#[test]
fn client_connections_mask_each_copy_with_their_own_key() {
    let prepared = PreparedMessage::new(Message::text("same text for everyone"));
    let mut a = Connection::client(Config::default(), Rng::from_seed([1; 32]));
    let mut b = Connection::client(Config::default(), Rng::from_seed([2; 32]));
    a.send_prepared(&prepared).unwrap();
    b.send_prepared(&prepared).unwrap();
    let (wire_a, wire_b) = (wire(&mut a), wire(&mut b));
    assert_ne!(wire_a, wire_b, "different masks");
    for wire in [wire_a, wire_b] {
        assert_eq!(
            deliver(&mut server(), &wire),
            [Message::text("same text for everyone")]
        );
    }
}

#[test]
fn refused_like_send_when_closed_or_inside_a_fragmented_message() {
    let prepared = PreparedMessage::new(Message::text("x"));
    let mut conn = server();
    conn.send_fragment(MessageKind::Text, "a", false).unwrap();
    assert_eq!(
        conn.send_prepared(&prepared),
        Err(SendError::FragmentedMessageOpen)
    );
    conn.send_fragment(MessageKind::Text, "b", true).unwrap();
    conn.send_prepared(&prepared).unwrap();
    conn.close(None).unwrap();
    assert_eq!(conn.send_prepared(&prepared), Err(SendError::Closed));
}

#[test]
fn accessors_describe_the_message() {
    let prepared = PreparedMessage::from(Message::binary(vec![1, 2, 3]));
    assert_eq!(prepared.kind(), MessageKind::Binary);
    assert_eq!(prepared.len(), 3);
    assert!(!prepared.is_empty());
    assert_eq!(&prepared.payload()[..], [1, 2, 3]);
    assert!(PreparedMessage::new(Message::text("")).is_empty());
}

#[cfg(feature = "deflate")]
mod deflate {
    use super::*;
    use wsio::proto::deflate::{DeflateConfig, DeflateParams};
    use wsio::proto::handshake::{ClientRequest, RequestParser};

    /// What a server configured with `server` agrees with a client offering `client`.
    fn agree(client: &DeflateConfig, server: &DeflateConfig) -> DeflateParams {
        let request = ClientRequest::new("ws://example.com/")
            .unwrap()
            .extension(&client.offer())
            .unwrap();
        let (wire, _) = request.encode(&mut Rng::from_seed([1; 32]));
        let request = RequestParser::default().receive(&wire).unwrap().unwrap();
        server.negotiate(request.extensions()).expect("accepted").0
    }

    fn no_context_server() -> DeflateConfig {
        let mut config = DeflateConfig::default();
        config.server_no_context_takeover = true;
        config
    }

    fn pair(params: DeflateParams, seed: u8) -> (Connection, Connection) {
        (
            Connection::server(Config::default()).with_deflate(params),
            Connection::client(Config::default(), Rng::from_seed([seed; 32])).with_deflate(params),
        )
    }

    fn json(n: usize) -> String {
        (0..n)
            .map(|i| {
                format!(
                    "{{\"id\":{i},\"name\":\"sensor-{i}\",\"value\":\"{}€\"}}",
                    i * 7
                )
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    #[test]
    fn without_server_context_one_compressed_payload_serves_every_connection() {
        let params = agree(&DeflateConfig::default(), &no_context_server());
        assert!(params.server_no_context_takeover());
        let text = json(2000);
        let prepared = PreparedMessage::new(Message::text(text.clone()));
        let mut compressed_addresses = Vec::new();
        for seed in 0..3 {
            let (mut server, mut client) = pair(params, seed);
            server.send_prepared(&prepared).unwrap();
            let out = transmits(&mut server);
            assert!(out[0][0] & 0x40 != 0, "RSV1 set");
            let payload = out.iter().max_by_key(|chunk| chunk.len()).unwrap();
            assert!(payload.len() < text.len() / 3, "compressed");
            compressed_addresses.push(payload.as_ptr());
            assert_eq!(
                deliver(&mut client, &out.concat()),
                [Message::text(text.clone())]
            );
        }
        assert!(compressed_addresses.windows(2).all(|w| w[0] == w[1]));
    }

    #[test]
    fn each_window_size_gets_its_own_compressed_payload() {
        let prepared = PreparedMessage::new(Message::text(json(3000)));
        let mut client_offer = DeflateConfig::default();
        let mut outputs = Vec::new();
        for bits in [9, 12, 15, 9] {
            client_offer.server_max_window_bits = bits;
            let params = agree(&client_offer, &no_context_server());
            assert_eq!(params.server_max_window_bits(), bits);
            let (mut server, mut client) = pair(params, bits);
            server.send_prepared(&prepared).unwrap();
            let wire = wire(&mut server);
            assert_eq!(
                deliver(&mut client, &wire),
                [Message::text(json(3000))],
                "{bits} bits"
            );
            outputs.push(wire);
        }
        assert_eq!(outputs[0], outputs[3], "the 9-bit payload is reused");
        assert_ne!(outputs[0], outputs[2], "9 and 15 bits compress differently");
    }

    #[test]
    fn with_context_takeover_each_connection_keeps_its_own_history() {
        let params = agree(&DeflateConfig::default(), &DeflateConfig::default());
        assert!(!params.shares_compressed_frames(wsio::proto::Role::Server));
        let (mut server, mut client) = pair(params, 9);
        let prepared = PreparedMessage::new(Message::text(json(50)));
        // Interleave prepared and ordinary sends: the peer's inflater must follow one history.
        let mut expected = Vec::new();
        for round in 0..5 {
            server.send_prepared(&prepared).unwrap();
            expected.push(Message::text(json(50)));
            server.send(Message::text(json(round + 10))).unwrap();
            expected.push(Message::text(json(round + 10)));
        }
        let wire = wire(&mut server);
        assert_eq!(deliver(&mut client, &wire), expected);
        // Later copies of the same text cost little thanks to the shared history.
        assert!(wire.len() < 5 * json(50).len() / 4);
    }

    #[test]
    fn an_uncompressed_message_goes_out_as_it_is_with_or_without_context() {
        let text = json(500);
        for server_config in [no_context_server(), DeflateConfig::default()] {
            let params = agree(&DeflateConfig::default(), &server_config);
            let (mut server, mut client) = pair(params, 4);
            let plain = PreparedMessage::uncompressed(Message::text(text.clone()));
            assert!(!plain.compressible());
            // Between two compressed sends: the peer's inflater history stays in step.
            let compressed = PreparedMessage::new(Message::text(text.clone()));
            server.send_prepared(&compressed).unwrap();
            let first = wire(&mut server);
            assert!(first[0] & 0x40 != 0, "RSV1 set");
            server.send_prepared(&plain).unwrap();
            let second = wire(&mut server);
            assert_eq!(second[0], 0x81, "FIN + text, no RSV1");
            assert!(second.len() > text.len(), "the payload as it is");
            server.send_prepared(&compressed).unwrap();
            let third = wire(&mut server);
            assert!(third[0] & 0x40 != 0, "RSV1 set");
            let delivered = deliver(&mut client, &[first, second, third].concat());
            assert_eq!(delivered, vec![Message::text(text.clone()); 3]);
        }
    }

    #[test]
    fn below_the_threshold_goes_out_uncompressed() {
        let params = agree(&DeflateConfig::default(), &no_context_server());
        let (mut server, mut client) = pair(params, 3);
        let prepared = PreparedMessage::new(Message::text("short"));
        server.send_prepared(&prepared).unwrap();
        let wire = wire(&mut server);
        assert_eq!(wire[0], 0x81, "FIN + text, no RSV1");
        assert_eq!(deliver(&mut client, &wire), [Message::text("short")]);
    }

    #[test]
    fn clients_without_their_context_send_the_prepared_payload_under_their_own_masks() {
        let mut offer = DeflateConfig::default();
        offer.client_no_context_takeover = true;
        let params = agree(&offer, &DeflateConfig::default());
        let prepared = PreparedMessage::new(Message::binary(json(500).into_bytes()));
        for seed in [4, 5] {
            let mut client = Connection::client(Config::default(), Rng::from_seed([seed; 32]))
                .with_deflate(params);
            let mut server = Connection::server(Config::default()).with_deflate(params);
            client.send_prepared(&prepared).unwrap();
            client.send_prepared(&prepared).unwrap();
            let wire = wire(&mut client);
            let expected = Message::binary(json(500).into_bytes());
            assert_eq!(deliver(&mut server, &wire), [expected.clone(), expected]);
        }
    }

    fn noise(len: usize) -> Vec<u8> {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect()
    }

    #[test]
    fn incompressible_data_goes_out_as_it_is_when_no_context_is_kept() {
        let data = noise(10_000);
        let params = agree(&DeflateConfig::default(), &no_context_server());
        let (mut server, mut client) = pair(params, 7);
        server.send(Message::binary(data.clone())).unwrap();
        server
            .send_prepared(&PreparedMessage::new(Message::binary(data.clone())))
            .unwrap();
        let wire = wire(&mut server);
        assert_eq!(wire[0], 0x82, "no RSV1");
        assert_eq!(wire.len(), 2 * (4 + data.len()), "sent raw, twice");
        let expected = Message::binary(data);
        assert_eq!(deliver(&mut client, &wire), [expected.clone(), expected]);
    }

    #[test]
    fn with_context_takeover_even_incompressible_data_goes_through_the_compressor() {
        // The peer's window has to hold the same history as ours, so nothing is skipped.
        let data = noise(10_000);
        let params = agree(&DeflateConfig::default(), &DeflateConfig::default());
        let (mut server, mut client) = pair(params, 8);
        server.send(Message::binary(data.clone())).unwrap();
        server.send(Message::text(json(100))).unwrap();
        let wire = wire(&mut server);
        assert_eq!(wire[0], 0xc2, "FIN + RSV1 + binary");
        assert_eq!(
            deliver(&mut client, &wire),
            [Message::binary(data), Message::text(json(100))]
        );
    }
}
