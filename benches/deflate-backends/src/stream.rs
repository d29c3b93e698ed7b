//! Compressing and decompressing one message as permessage-deflate does (RFC 7692 §7.2).

use flate2::{Compress, Decompress, FlushCompress, FlushDecompress, Status};

/// The empty stored block that ends a sync flush: dropped after compressing, appended before
/// decompressing.
pub const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// Replaces `out` with the compressed form of `payload`: sync flush, tail removed.
pub fn compress(stream: &mut Compress, payload: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let mut consumed = 0;
    loop {
        // Deflate never grows data by more than a few bytes per stored block; this bound
        // mostly finishes in one call, and the loop covers the rest.
        let room = payload.len() - consumed + (payload.len() - consumed) / 8 + 64;
        let len = out.len();
        out.resize(len + room, 0);
        let (before_in, before_out) = (stream.total_in(), stream.total_out());
        stream
            .compress(&payload[consumed..], &mut out[len..], FlushCompress::Sync)
            .expect("deflate failed on a valid stream");
        consumed += (stream.total_in() - before_in) as usize;
        let written = (stream.total_out() - before_out) as usize;
        out.truncate(len + written);
        if consumed == payload.len() && written < room {
            break;
        }
    }
    assert!(out.ends_with(&TAIL), "sync flush ends in 00 00 ff ff");
    out.truncate(out.len() - TAIL.len());
}

/// Replaces `out` with the inflated form of one compressed message, appending the tail.
///
/// `out` keeps its capacity between calls; give it room for the largest message.
pub fn decompress(
    stream: &mut Decompress,
    message: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), flate2::DecompressError> {
    out.clear();
    inflate(stream, message, out)?;
    inflate(stream, &TAIL, out)
}

fn inflate(
    stream: &mut Decompress,
    input: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), flate2::DecompressError> {
    let mut consumed = 0;
    loop {
        let len = out.len();
        let room = (input.len() * 4).clamp(256, 1 << 20);
        out.resize(len + room, 0);
        let (before_in, before_out) = (stream.total_in(), stream.total_out());
        let status =
            stream.decompress(&input[consumed..], &mut out[len..], FlushDecompress::None)?;
        consumed += (stream.total_in() - before_in) as usize;
        let written = (stream.total_out() - before_out) as usize;
        out.truncate(len + written);
        let stuck = status == Status::BufError || (written == 0 && consumed < input.len());
        if (consumed == input.len() && written < room) || status == Status::StreamEnd || stuck {
            return Ok(());
        }
    }
}
