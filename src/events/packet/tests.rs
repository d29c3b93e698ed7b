//! The protocol document's examples and the edge cases of the reference parser.

use serde_json::json;

use super::*;

fn decode(text: &str) -> Result<Option<Packet>, DecodeError> {
    Decoder::default().receive_text(text)
}

fn decoded(text: &str) -> Packet {
    decode(text).unwrap().unwrap()
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

#[test]
fn examples_from_the_v5_document() {
    let cases = [
        (
            "0",
            Packet::Connect {
                namespace: "/".into(),
                data: None,
            },
        ),
        (
            "0/admin,{\"token\":\"123\"}",
            Packet::Connect {
                namespace: "/admin".into(),
                data: Some(object(json!({"token": "123"}))),
            },
        ),
        (
            "0{\"sid\":\"oSO0OpakMV_3jnilAAAA\"}",
            Packet::Connect {
                namespace: "/".into(),
                data: Some(object(json!({"sid": "oSO0OpakMV_3jnilAAAA"}))),
            },
        ),
        (
            "4{\"message\":\"Not authorized\"}",
            Packet::ConnectError {
                namespace: "/".into(),
                message: "Not authorized".into(),
                data: None,
            },
        ),
        (
            "2[\"foo\"]",
            Packet::Event {
                namespace: "/".into(),
                event: "foo".into(),
                args: Args::new(),
                ack: None,
            },
        ),
        (
            "2/admin,[\"bar\"]",
            Packet::Event {
                namespace: "/admin".into(),
                event: "bar".into(),
                args: Args::new(),
                ack: None,
            },
        ),
        (
            "212[\"foo\"]",
            Packet::Event {
                namespace: "/".into(),
                event: "foo".into(),
                args: Args::new(),
                ack: Some(12),
            },
        ),
        (
            "3/admin,13[\"bar\"]",
            Packet::Ack {
                namespace: "/admin".into(),
                id: 13,
                args: Args::from(json!(["bar"])),
            },
        ),
        (
            "1/admin,",
            Packet::Disconnect {
                namespace: "/admin".into(),
            },
        ),
    ];
    for (text, packet) in cases {
        assert_eq!(decoded(text), packet, "decoding {text}");
        assert_eq!(packet.encode().text, text, "encoding {packet:?}");
    }
}

#[test]
fn binary_event_waits_for_its_attachments() {
    let mut decoder = Decoder::default();
    let text = "51-[\"baz\",{\"_placeholder\":true,\"num\":0}]";
    assert_eq!(decoder.receive_text(text), Ok(None));
    assert!(decoder.is_waiting());
    let packet = decoder
        .receive_binary(Bytes::from_static(&[1, 2, 3]))
        .unwrap()
        .unwrap();
    let Packet::Event { event, args, .. } = &packet else {
        panic!("not an event: {packet:?}");
    };
    assert_eq!(event, "baz");
    assert_eq!(args.binary_at(0).unwrap().as_ref(), [1, 2, 3]);
    let encoded = packet.encode();
    assert_eq!(encoded.text, text);
    assert_eq!(encoded.attachments, [Bytes::from_static(&[1, 2, 3])]);
}

#[test]
fn binary_ack_with_namespace() {
    let mut decoder = Decoder::default();
    let text = "62-/admin,15[{\"_placeholder\":true,\"num\":1},{\"_placeholder\":true,\"num\":0}]";
    assert_eq!(decoder.receive_text(text), Ok(None));
    assert_eq!(decoder.receive_binary(Bytes::from_static(b"a")), Ok(None));
    let packet = decoder
        .receive_binary(Bytes::from_static(b"b"))
        .unwrap()
        .unwrap();
    let Packet::Ack {
        namespace,
        id,
        args,
    } = &packet
    else {
        panic!("not an ack: {packet:?}");
    };
    assert_eq!((namespace.as_str(), *id), ("/admin", 15));
    assert_eq!(args.binary_at(0).unwrap().as_ref(), b"b");
    assert_eq!(args.binary_at(1).unwrap().as_ref(), b"a");
    assert_eq!(packet.encode().text, text);
}

#[test]
fn to_messages_adds_the_engine_io_prefix() {
    let packet = Packet::Event {
        namespace: "/".into(),
        event: "file".into(),
        args: Args::new().with_binary(vec![7u8]),
        ack: Some(1),
    };
    let messages = packet.to_messages();
    assert_eq!(
        messages,
        [
            Message::text("451-1[\"file\",{\"_placeholder\":true,\"num\":0}]"),
            Message::binary(vec![7u8]),
        ]
    );
}

#[test]
fn connect_error_accepts_the_v4_string_form() {
    assert_eq!(
        decoded("4\"Invalid namespace\""),
        Packet::ConnectError {
            namespace: "/".into(),
            message: "Invalid namespace".into(),
            data: None,
        }
    );
    let with_data = Packet::ConnectError {
        namespace: "/x".into(),
        message: "no".into(),
        data: Some(json!({"retry": false})),
    };
    assert_eq!(decoded(&with_data.encode().text), with_data);
}

#[test]
fn ack_ids_with_many_digits() {
    let max = format!("3{}[]", u64::MAX);
    assert!(matches!(decoded(&max), Packet::Ack { id: u64::MAX, .. }));
    let over = format!("3{}0[]", u64::MAX);
    assert_eq!(decode(&over), Err(DecodeError::AckIdTooLarge));
    assert!(matches!(decoded("3007[]"), Packet::Ack { id: 7, .. }));
    assert!(matches!(decoded("37[]"), Packet::Ack { id: 7, ref args, .. } if args.is_empty()));
}

#[test]
fn ack_without_its_array_is_rejected() {
    // socket.io-parser: the ACK payload is mandatory, an array, possibly empty.
    assert_eq!(decode("37"), Err(DecodeError::InvalidPayload(3)));
    assert_eq!(decode("3/admin,7"), Err(DecodeError::InvalidPayload(3)));
    assert_eq!(decode("37\"a\""), Err(DecodeError::InvalidPayload(3)));
    let mut decoder = Decoder::default();
    assert_eq!(decoder.receive_text("61-7"), Ok(None));
    assert_eq!(
        decoder.receive_binary(Bytes::from_static(&[1])),
        Err(DecodeError::InvalidPayload(6))
    );
}

#[test]
fn object_keys_keep_their_order() {
    let text = r#"2["order",{"z":1,"a":{"y":2,"b":3},"m":[{"k":0,"c":1}]}]"#;
    let packet = decoded(text);
    assert_eq!(packet.encode().text, text);
    let Packet::Event { args, .. } = &packet else {
        panic!("not an event: {packet:?}");
    };
    let keys: Vec<&str> = args.values()[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["z", "a", "m"]);
}

#[test]
fn event_names_are_unreserved_strings_or_numbers() {
    // socket.io-parser takes a number as an event name; JavaScript listeners see its string.
    for (text, name) in [("2[1,2]", "1"), ("2[-7]", "-7"), ("2[1.5]", "1.5")] {
        assert!(
            matches!(decoded(text), Packet::Event { ref event, .. } if event == name),
            "{text}"
        );
    }
    assert_eq!(decode("2[null]"), Err(DecodeError::InvalidEventName));
    assert_eq!(decode("2[true]"), Err(DecodeError::InvalidEventName));
    assert_eq!(decode("2[[\"a\"]]"), Err(DecodeError::InvalidEventName));
    assert_eq!(decode("2[{}]"), Err(DecodeError::InvalidEventName));
    assert_eq!(decode("2[]"), Err(DecodeError::InvalidPayload(2)));
    assert_eq!(decode("2"), Err(DecodeError::InvalidPayload(2)));
    assert_eq!(decode("2{\"a\":1}"), Err(DecodeError::InvalidPayload(2)));
    for name in RESERVED_EVENTS {
        assert_eq!(
            decode(&format!("2[\"{name}\"]")),
            Err(DecodeError::ReservedEventName(name.to_string()))
        );
    }
}

#[test]
fn namespace_without_leading_slash_is_not_a_namespace() {
    assert!(matches!(
        decode("2admin,[\"a\"]"),
        Err(DecodeError::InvalidJson(_))
    ));
    assert_eq!(
        decoded("1/admin"),
        Packet::Disconnect {
            namespace: "/admin".into()
        }
    );
}

#[test]
fn payload_shapes_per_type() {
    assert_eq!(decode("0[1]"), Err(DecodeError::InvalidPayload(0)));
    assert_eq!(decode("0\"x\""), Err(DecodeError::InvalidPayload(0)));
    assert_eq!(decode("1{}"), Err(DecodeError::InvalidPayload(1)));
    assert_eq!(decode("3"), Err(DecodeError::InvalidAckId));
    assert_eq!(decode("31{}"), Err(DecodeError::InvalidPayload(3)));
    assert_eq!(decode("4"), Err(DecodeError::InvalidPayload(4)));
    assert_eq!(decode("4[1]"), Err(DecodeError::InvalidPayload(4)));
    assert_eq!(
        decode("4{\"message\":1}"),
        Err(DecodeError::InvalidPayload(4))
    );
    assert_eq!(decode("01{}"), Err(DecodeError::InvalidAckId));
    assert_eq!(decode("11"), Err(DecodeError::InvalidAckId));
}

#[test]
fn malformed_headers() {
    assert_eq!(decode(""), Err(DecodeError::Empty));
    assert_eq!(decode("7[]"), Err(DecodeError::UnknownType('7')));
    assert_eq!(decode("é"), Err(DecodeError::UnknownType('é')));
    assert_eq!(decode("5[\"a\"]"), Err(DecodeError::InvalidAttachmentCount));
    assert_eq!(
        decode("5-[\"a\"]"),
        Err(DecodeError::InvalidAttachmentCount)
    );
    assert_eq!(
        decode("51[\"a\"]"),
        Err(DecodeError::InvalidAttachmentCount)
    );
    assert!(matches!(
        decode("2[\"a\""),
        Err(DecodeError::InvalidJson(_))
    ));
    assert!(matches!(
        decode("2[\"a\"] x"),
        Err(DecodeError::InvalidJson(_))
    ));
}

#[test]
fn attachment_limits() {
    let limits = DecodeLimits {
        max_attachments: 2,
        max_packet_size: 16,
    };
    let mut decoder = Decoder::new(limits);
    assert_eq!(
        decoder.receive_text("53-[\"a\"]"),
        Err(DecodeError::TooManyAttachments { count: 3, limit: 2 })
    );
    let huge = format!("5{}-[\"a\"]", "9".repeat(40));
    assert!(matches!(
        decoder.receive_text(&huge),
        Err(DecodeError::TooManyAttachments { .. } | DecodeError::TooLarge { .. })
    ));
    assert_eq!(
        Decoder::default().receive_text(&format!("5{}-[\"a\"]", "9".repeat(40))),
        Err(DecodeError::TooManyAttachments {
            count: usize::MAX,
            limit: 64
        })
    );
    assert_eq!(
        decoder.receive_text(&"x".repeat(17)),
        Err(DecodeError::TooLarge {
            size: 17,
            limit: 16
        })
    );
    assert_eq!(decoder.receive_text("51-[\"a\"]"), Ok(None));
    assert_eq!(
        decoder.receive_binary(Bytes::from(vec![0; 17])),
        Err(DecodeError::TooLarge {
            size: 17,
            limit: 16
        })
    );
}

#[test]
fn attachments_out_of_order_or_unexpected() {
    let mut decoder = Decoder::default();
    assert_eq!(
        decoder.receive_binary(Bytes::new()),
        Err(DecodeError::UnexpectedBinary)
    );
    assert_eq!(decoder.receive_text("51-[\"a\"]"), Ok(None));
    assert_eq!(
        decoder.receive_text("2[\"a\"]"),
        Err(DecodeError::UnexpectedText)
    );
    let mut decoder = Decoder::default();
    decoder
        .receive_text("51-[\"a\",{\"_placeholder\":true,\"num\":1}]")
        .unwrap();
    assert_eq!(
        decoder.receive_binary(Bytes::new()),
        Err(DecodeError::PlaceholderOutOfRange { index: 1, count: 1 })
    );
    assert_eq!(
        decode("2[\"a\",{\"_placeholder\":true,\"num\":0}]"),
        Err(DecodeError::PlaceholderOutOfRange { index: 0, count: 0 })
    );
}

#[test]
fn binary_type_with_no_attachments_decodes_as_plain() {
    let packet = decoded("50-[\"a\",1]");
    assert_eq!(packet.encode().text, "2[\"a\",1]");
}

#[test]
fn huge_numbers_and_deep_nesting() {
    assert!(matches!(
        decoded("2[\"n\",18446744073709551615]"),
        Packet::Event { .. }
    ));
    let big = decoded("2[\"n\",123456789012345678901234567890]");
    assert_eq!(decoded(&big.encode().text), big);
    assert!(matches!(
        decode("2[\"n\",1e400]"),
        Err(DecodeError::InvalidJson(_))
    ));
    let deep = format!("2[\"n\",{}{}]", "[".repeat(200), "]".repeat(200));
    assert!(matches!(decode(&deep), Err(DecodeError::InvalidJson(_))));
}

#[test]
fn unicode_and_escapes_round_trip() {
    let packet = Packet::Event {
        namespace: "/ünï".into(),
        event: "mé\"ss\\age\u{1F600}".into(),
        args: Args::from(json!(["\u{0}\n", {"k": [1.5, -0.25, null, true]}])),
        ack: Some(0),
    };
    assert_eq!(decoded(&packet.encode().text), packet);
}
