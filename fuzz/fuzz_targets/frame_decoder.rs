//! `FrameDecoder`, for either role and a few limits, over arbitrary bytes: feeding them in any
//! chunks gives the same frames and the same error as feeding them whole; the error is one the
//! decoder documents for that role and limit; every frame obeys §5.2/§5.5; and re-encoding a
//! frame with `Frame::encode` and its wire mask gives back the exact bytes it came from.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use wsio::proto::{DecoderLimits, Frame, FrameDecoder, OpCode, ProtocolError, Role};
use wsio_fuzz::Split;

const MAX_FRAME_SIZES: [usize; 8] = [0, 1, 125, 126, 0xFFFF, 0x1_0000, 1 << 20, usize::MAX];

fuzz_target!(|input: &[u8]| {
    let Some(split) = Split::new(input) else {
        return;
    };
    let role = if split.flags & 1 == 0 {
        Role::Server
    } else {
        Role::Client
    };
    let limits = DecoderLimits {
        max_frame_size: MAX_FRAME_SIZES[usize::from(split.flags >> 1 & 0b111)],
        allow_rsv1: split.flags & 0b1_0000 != 0,
    };

    // Whole, remembering where each frame was on the wire.
    let mut decoder = FrameDecoder::new(role, limits);
    let mut buf = BytesMut::from(split.data);
    let mut whole = Vec::new();
    let whole_error = loop {
        let start = split.data.len() - buf.len();
        match decoder.decode(&mut buf) {
            Ok(Some(frame)) => whole.push((frame, start..split.data.len() - buf.len())),
            Ok(None) => break None,
            Err(error) => break Some(error),
        }
    };

    // In chunks.
    let mut decoder = FrameDecoder::new(role, limits);
    let mut buf = BytesMut::new();
    let mut chunked = Vec::new();
    let mut chunked_error = None;
    'feed: for chunk in split.chunks() {
        buf.extend_from_slice(chunk);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(frame)) => chunked.push(frame),
                Ok(None) => break,
                Err(error) => {
                    chunked_error = Some(error);
                    break 'feed;
                }
            }
        }
    }
    let frames: Vec<&Frame> = whole.iter().map(|(frame, _)| frame).collect();
    assert_eq!(
        chunked.iter().collect::<Vec<_>>(),
        frames,
        "chunking changed the frames"
    );
    assert_eq!(chunked_error, whole_error, "chunking changed the error");
    if let Some(error) = &whole_error {
        check_error(error, role, limits);
    }

    for (frame, range) in whole {
        let wire = &split.data[range];
        assert!(
            frame.payload.len() <= limits.max_frame_size,
            "frame over the limit"
        );
        assert!(
            !frame.rsv1 || limits.allow_rsv1,
            "RSV1 without the extension"
        );
        if frame.opcode.is_control() {
            assert!(
                frame.fin && !frame.rsv1 && frame.payload.len() <= 125,
                "bad control frame"
            );
        }
        let mut encoded = BytesMut::new();
        frame.encode(wire_mask(wire), &mut encoded);
        assert_eq!(
            &encoded[..],
            wire,
            "re-encoding changed the bytes of {frame:?}"
        );
        let mut decoder = FrameDecoder::new(role, limits);
        assert_eq!(
            decoder.decode(&mut encoded),
            Ok(Some(frame)),
            "re-encoded frame"
        );
        assert!(encoded.is_empty());
    }
});

/// The masking key of the frame whose wire bytes are `wire`, read from its header.
fn wire_mask(wire: &[u8]) -> Option<[u8; 4]> {
    if wire[1] & 0x80 == 0 {
        return None;
    }
    let at = match wire[1] & 0x7F {
        126 => 4,
        127 => 10,
        _ => 2,
    };
    Some(wire[at..at + 4].try_into().unwrap())
}

/// Panics unless `error` is one the decoder documents for this role and these limits.
fn check_error(error: &ProtocolError, role: Role, limits: DecoderLimits) {
    let possible = match error {
        ProtocolError::ReservedBits
        | ProtocolError::FragmentedControlFrame
        | ProtocolError::ControlFrameTooLong
        | ProtocolError::NonMinimalLength
        | ProtocolError::LengthMsbSet => true,
        ProtocolError::ReservedOpCode(opcode) => OpCode::from_u8(*opcode).is_none() && *opcode < 16,
        ProtocolError::UnmaskedClientFrame => role == Role::Server,
        ProtocolError::MaskedServerFrame => role == Role::Client,
        ProtocolError::FrameTooBig { size, limit } => {
            *limit == limits.max_frame_size && *size > *limit as u64
        }
        other => panic!("a frame decoder cannot fail with {other:?}"),
    };
    assert!(
        possible,
        "{error:?} from a {role:?} decoder with {limits:?}"
    );
}
