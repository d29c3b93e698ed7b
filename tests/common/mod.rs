//! An in-memory client/server pair and helpers that replay every scenario byte by byte.
#![allow(dead_code)]

use bytes::BytesMut;
use wsio::proto::{
    Config, Connection, DecoderLimits, Event, Frame, FrameDecoder, OpCode, ProtocolError, Rng,
    Role, Transmit,
};

pub const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

pub fn server() -> Connection {
    Connection::server(Config::default())
}

pub fn client() -> Connection {
    Connection::client(Config::default(), Rng::from_seed([9; 32]))
}

/// The wire form of a frame as a client sends it (masked).
pub fn client_frame(fin: bool, opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    wire_frame(fin, opcode, payload, Some(MASK))
}

/// The wire form of a frame as a server sends it (unmasked).
pub fn server_frame(fin: bool, opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    wire_frame(fin, opcode, payload, None)
}

fn wire_frame(fin: bool, opcode: OpCode, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut wire = BytesMut::new();
    let payload = payload.to_vec().into();
    Frame {
        fin,
        rsv1: false,
        opcode,
        payload,
    }
    .encode(mask, &mut wire);
    wire.to_vec()
}

pub fn close_payload(code: u16, reason: &[u8]) -> Vec<u8> {
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(reason);
    payload
}

/// Everything a connection produced for some input.
#[derive(Debug, PartialEq)]
pub struct Outcome {
    pub events: Vec<Result<Event, ProtocolError>>,
    /// Frames written to the peer, decoded.
    pub sent: Vec<Frame>,
    pub shutdown: bool,
}

impl Outcome {
    pub fn error(&self) -> Option<&ProtocolError> {
        self.events.iter().find_map(|event| event.as_ref().err())
    }

    /// The close code of the last close frame sent, if any.
    pub fn sent_close_code(&self) -> Option<u16> {
        self.sent
            .iter()
            .rev()
            .find(|frame| frame.opcode == OpCode::Close)
            .map(|frame| u16::from_be_bytes([frame.payload[0], frame.payload[1]]))
    }

    pub fn messages(&self) -> Vec<wsio::Message> {
        self.events
            .iter()
            .filter_map(|event| match event {
                Ok(Event::Message(message)) => Some(message.clone()),
                _ => None,
            })
            .collect()
    }
}

/// Drains output and events after feeding `input` in chunks of `chunk` bytes.
pub fn run(mut conn: Connection, input: &[u8], chunk: usize, eof: bool) -> Outcome {
    let mut events = Vec::new();
    let mut wire = BytesMut::new();
    let mut shutdown = false;
    let mut drain = |conn: &mut Connection, events: &mut Vec<_>| {
        while let Some(transmit) = conn.poll_transmit() {
            match transmit {
                Transmit::Data(data) => {
                    assert!(!shutdown, "data after shutdown");
                    wire.extend_from_slice(&data);
                }
                Transmit::Shutdown => shutdown = true,
            }
        }
        while let Some(event) = conn.poll_event() {
            events.push(event);
        }
    };
    for piece in input.chunks(chunk.max(1)) {
        conn.receive(piece);
        drain(&mut conn, &mut events);
    }
    if eof {
        conn.receive_eof();
    }
    drain(&mut conn, &mut events);
    assert!(
        events.iter().filter(|event| event.is_err()).count() <= 1,
        "one error at most"
    );
    let reader = match conn.role() {
        Role::Server => Role::Client,
        Role::Client => Role::Server,
    };
    let limits = DecoderLimits {
        max_frame_size: usize::MAX,
        allow_rsv1: false,
    };
    let mut decoder = FrameDecoder::new(reader, limits);
    let mut sent = Vec::new();
    while let Some(frame) = decoder
        .decode(&mut wire)
        .expect("the core sends valid frames")
    {
        sent.push(frame);
    }
    assert!(wire.is_empty(), "partial frame sent");
    Outcome {
        events,
        sent,
        shutdown,
    }
}

/// Runs `input` through a fresh connection whole and one byte per `receive`, checks both give
/// the same outcome, and returns it.
pub fn replay(make: fn() -> Connection, input: &[u8]) -> Outcome {
    let whole = run(make(), input, input.len(), false);
    let bytewise = run(make(), input, 1, false);
    assert_eq!(whole, bytewise, "chunking changed the outcome");
    whole
}

pub fn concat(parts: &[Vec<u8>]) -> Vec<u8> {
    parts.concat()
}
