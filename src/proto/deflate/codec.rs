//! Compressing and decompressing message payloads (RFC 7692 §7.2).

use bytes::{BufMut, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::DeflateParams;
use crate::proto::Role;

/// The empty stored block that ends a sync flush: removed after compressing (§7.2.1), put back
/// before decompressing (§7.2.2).
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// The most output produced per call into zlib, so a message's buffer grows in bounded steps.
const STEP: usize = 64 * 1024;

/// The smallest window zlib compresses with, and the one we inflate 8-bit windows with.
const MIN_ZLIB_WINDOW_BITS: u8 = 9;

/// Compresses the data messages we send, one whole message at a time (§7.2.1).
///
/// Each connection owns one, made from the agreement and our [`Role`]. The zlib state is
/// allocated by the first non-empty message and kept while context takeover is in force;
/// without it, [`release`](Self::release) frees it between messages.
#[derive(Debug)]
pub struct Compressor {
    stream: Option<Compress>,
    window_bits: u8,
    level: u32,
    no_context_takeover: bool,
}

/// Decompresses the data messages we receive, frame by frame (§7.2.2).
///
/// Each connection owns one, made from the agreement and our [`Role`]. It counts the inflated
/// size of the current message across frames, so one limit covers the whole message.
#[derive(Debug)]
pub struct Decompressor {
    stream: Option<Decompress>,
    window_bits: u8,
    no_context_takeover: bool,
    /// Bytes inflated so far for the current message.
    message_len: usize,
    /// Whether a message has started and not ended, so the state must be kept.
    mid_message: bool,
}

/// Why a compressed message could not be decompressed.
///
/// Either way the message is lost and the connection must be failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InflateError {
    /// The message inflates to more than `limit` bytes; decompression stopped there.
    #[error("compressed message inflates to more than {limit} bytes")]
    TooBig {
        /// The `max_total` the message exceeded.
        limit: usize,
    },
    /// The payload is not valid DEFLATE data, or refers back past the start of the message
    /// (without context takeover) or past 32 KiB of history.
    #[error("invalid compressed data")]
    Corrupt,
}

impl Compressor {
    /// Makes the compressor for our outgoing messages when we play `role`.
    ///
    /// It allocates nothing until the first non-empty message.
    pub fn new(params: &DeflateParams, role: Role) -> Self {
        Self {
            stream: None,
            window_bits: params.compressor_window_bits(role),
            level: params.level().min(9),
            no_context_takeover: params.compressor_no_context_takeover(role),
        }
    }

    /// Appends the compressed form of one whole message's payload to `out`.
    ///
    /// Call it once per message whose payload reaches the [`threshold`](DeflateParams::threshold)
    /// and send the result with RSV1 set, in one frame or split into several. The sync flush
    /// tail is already removed. An empty payload becomes the single byte `00`.
    pub fn compress(&mut self, payload: &[u8], out: &mut BytesMut) {
        if payload.is_empty() {
            // An empty stored block without its LEN/NLEN tail. After a sync flush the stream
            // sits on a byte boundary between blocks, so this is valid whatever came before,
            // and it adds nothing to the window.
            out.put_u8(0x00);
            return;
        }
        let (window_bits, level) = (self.window_bits, self.level);
        let stream = self
            .stream
            .get_or_insert_with(|| new_compress(window_bits, level));
        let start = out.len();
        let mut consumed = 0;
        loop {
            let remaining = payload.len() - consumed;
            let room = (remaining + remaining / 8 + 64).min(STEP);
            let len = out.len();
            out.resize(len + room, 0);
            let (before_in, before_out) = (stream.total_in(), stream.total_out());
            // zlib only fails on a misused stream, which this loop never produces.
            stream
                .compress(&payload[consumed..], &mut out[len..], FlushCompress::Sync)
                .expect("deflate failed on a valid stream");
            consumed += progress(stream.total_in(), before_in);
            let written = progress(stream.total_out(), before_out);
            out.truncate(len + written);
            // With room left over, the flush is complete (zlib's contract for avail_out).
            if consumed == payload.len() && written < room {
                break;
            }
        }
        debug_assert!(
            out[start..].ends_with(&TAIL),
            "sync flush ends in 00 00 ff ff"
        );
        out.truncate(out.len() - TAIL.len());
        if self.no_context_takeover {
            stream.reset();
        }
    }

    /// Frees the zlib state if our side keeps no context between messages; the next message
    /// allocates it again.
    ///
    /// Worth calling on a connection that goes idle: the state is 245 to 371 KiB. Does nothing
    /// under context takeover, where the state is the shared history.
    pub fn release(&mut self) {
        if self.no_context_takeover {
            self.stream = None;
        }
    }
}

impl Decompressor {
    /// Makes the decompressor for the peer's messages when we play `role`.
    ///
    /// It allocates nothing until the first frame.
    pub fn new(params: &DeflateParams, role: Role) -> Self {
        Self {
            stream: None,
            // A larger window decodes everything a smaller one produced, and flate2 has no raw
            // 8-bit inflater. zlib-rs in fact keeps 32 KiB of history whatever it is told.
            window_bits: params
                .decompressor_window_bits(role)
                .max(MIN_ZLIB_WINDOW_BITS),
            no_context_takeover: params.decompressor_no_context_takeover(role),
            message_len: 0,
            mid_message: false,
        }
    }

    /// Inflates the payload of one frame of a compressed message and appends it to `out`.
    ///
    /// Call it for every frame of a message whose first frame had RSV1 set, with
    /// `end_of_message` on the last one (FIN). Stops with [`InflateError::TooBig`] as soon as
    /// the message inflates past `max_total` bytes, having appended at most one byte more than
    /// that: output grows in steps of at most 64 KiB, each checked against the limit.
    pub fn decompress(
        &mut self,
        input: &[u8],
        end_of_message: bool,
        out: &mut BytesMut,
        max_total: usize,
    ) -> Result<(), InflateError> {
        let mut result = self.inflate(input, out, max_total);
        if end_of_message && result.is_ok() {
            result = self.inflate(&TAIL, out, max_total);
        }
        match result {
            Ok(()) if end_of_message => {
                self.message_len = 0;
                self.mid_message = false;
                if self.no_context_takeover
                    && let Some(stream) = &mut self.stream
                {
                    stream.reset(false);
                }
            }
            Ok(()) => self.mid_message = true,
            Err(_) => {
                // The connection is failing; start afresh rather than keep a broken stream.
                self.stream = None;
                self.message_len = 0;
                self.mid_message = false;
            }
        }
        result
    }

    /// Frees the zlib state between messages if the peer keeps no context; the next message
    /// allocates it again.
    ///
    /// Does nothing under context takeover or in the middle of a message.
    pub fn release(&mut self) {
        if self.no_context_takeover && !self.mid_message {
            self.stream = None;
        }
    }

    /// Inflates `chunk` into `out` in bounded steps, counting against `max_total`.
    fn inflate(
        &mut self,
        chunk: &[u8],
        out: &mut BytesMut,
        max_total: usize,
    ) -> Result<(), InflateError> {
        let window_bits = self.window_bits;
        let stream = self
            .stream
            .get_or_insert_with(|| Decompress::new_with_window_bits(false, window_bits));
        let mut consumed = 0;
        // Start near the usual ratio and double, so small messages do not zero 64 KiB.
        let mut room = chunk.len().saturating_mul(4).clamp(256, STEP);
        loop {
            // One byte past the limit tells "exactly the limit" from "too big".
            let step = room.min(max_total.saturating_sub(self.message_len).saturating_add(1));
            let len = out.len();
            out.resize(len + step, 0);
            let (before_in, before_out) = (stream.total_in(), stream.total_out());
            let status =
                stream.decompress(&chunk[consumed..], &mut out[len..], FlushDecompress::None);
            let read = progress(stream.total_in(), before_in);
            let written = progress(stream.total_out(), before_out);
            consumed += read;
            out.truncate(len + written);
            self.message_len += written;
            let status = status.map_err(|_| InflateError::Corrupt)?;
            if self.message_len > max_total {
                return Err(InflateError::TooBig { limit: max_total });
            }
            if status == Status::StreamEnd {
                // A block with BFINAL set ended the DEFLATE stream (§7.2.3.4); what follows,
                // at least the tail, starts a new one.
                stream.reset(false);
                if consumed == chunk.len() {
                    return Ok(());
                }
            } else if consumed == chunk.len() && written < step {
                // Input used up and output room to spare: nothing is pending inside zlib.
                return Ok(());
            } else if read == 0 && written == 0 {
                // No progress: done if the last step filled its room exactly and nothing was
                // left; with input left over, only a broken stream stalls.
                return if consumed == chunk.len() {
                    Ok(())
                } else {
                    Err(InflateError::Corrupt)
                };
            }
            room = (room * 2).min(STEP);
        }
    }
}

/// Makes a raw-deflate stream for `window_bits` from 8 to 15.
///
/// zlib cannot compress with a 256-byte window (it silently uses 512 bytes, and refuses raw
/// streams), so for 8 we write stored blocks, which refer to no earlier data and so fit any
/// window. Only a client gets here: a server declines offers that would need it.
fn new_compress(window_bits: u8, level: u32) -> Compress {
    if window_bits < MIN_ZLIB_WINDOW_BITS {
        Compress::new_with_window_bits(Compression::none(), false, MIN_ZLIB_WINDOW_BITS)
    } else {
        Compress::new_with_window_bits(Compression::new(level), false, window_bits)
    }
}

/// Returns how far a zlib byte counter moved during one call.
fn progress(after: u64, before: u64) -> usize {
    usize::try_from(after - before).expect("one call moves at most a slice's length")
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::proto::deflate::negotiate::tests::agreed;

    const HELLO: &[u8] = b"Hello";
    const LIMIT: usize = 16 << 20;

    /// The agreement from a response with these values, as both ends hold it.
    fn params(
        server_nct: bool,
        client_nct: bool,
        server_bits: u8,
        client_bits: u8,
    ) -> DeflateParams {
        let mut response = format!(
            "permessage-deflate; server_max_window_bits={server_bits}; \
             client_max_window_bits={client_bits}"
        );
        if server_nct {
            response.push_str("; server_no_context_takeover");
        }
        if client_nct {
            response.push_str("; client_no_context_takeover");
        }
        agreed(&response)
    }

    fn default_params() -> DeflateParams {
        agreed("permessage-deflate")
    }

    fn compress(compressor: &mut Compressor, payload: &[u8]) -> Vec<u8> {
        let mut out = BytesMut::new();
        compressor.compress(payload, &mut out);
        out.to_vec()
    }

    fn decompress(
        decompressor: &mut Decompressor,
        frames: &[&[u8]],
    ) -> Result<Vec<u8>, InflateError> {
        let mut out = BytesMut::new();
        for (i, frame) in frames.iter().enumerate() {
            decompressor.decompress(frame, i + 1 == frames.len(), &mut out, LIMIT)?;
        }
        Ok(out.to_vec())
    }

    /// Pseudo-English text, so compression has something to find.
    fn text(seed: u64, len: usize) -> Vec<u8> {
        const WORDS: &[&str] = &[
            "the",
            "socket",
            "frame",
            "window",
            "deflate",
            "message",
            "of",
            "and",
            "server",
            "client",
            "{\"type\":\"chat\",",
            "\"user\":",
            "context",
            "takeover",
            "a",
            "to",
        ];
        let mut state = seed | 1;
        let mut out = Vec::with_capacity(len + 16);
        while out.len() < len {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            out.extend_from_slice(WORDS[(state % WORDS.len() as u64) as usize].as_bytes());
            out.push(b' ');
        }
        out.truncate(len);
        out
    }

    /// §7.2.3.1: "Hello" in one compressed frame and split across two.
    #[test]
    fn hello_from_rfc_7_2_3_1() {
        let compressed = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
        let mut decompressor = Decompressor::new(&default_params(), Role::Client);
        assert_eq!(
            decompress(&mut decompressor, &[&compressed]).unwrap(),
            HELLO
        );
        let mut decompressor = Decompressor::new(&default_params(), Role::Client);
        let fragmented: [&[u8]; 2] = [&[0xf2, 0x48, 0xcd], &[0xc9, 0xc9, 0x07, 0x00]];
        assert_eq!(decompress(&mut decompressor, &fragmented).unwrap(), HELLO);

        let mut compressor = Compressor::new(&default_params(), Role::Server);
        assert_eq!(compress(&mut compressor, HELLO), compressed);
    }

    /// §7.2.3.2: a second "Hello" refers back to the first under context takeover.
    #[test]
    fn sliding_window_from_rfc_7_2_3_2() {
        let first = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
        let second = [0xf2, 0x00, 0x11, 0x00, 0x00];
        let mut decompressor = Decompressor::new(&default_params(), Role::Server);
        assert_eq!(decompress(&mut decompressor, &[&first]).unwrap(), HELLO);
        assert_eq!(decompress(&mut decompressor, &[&second]).unwrap(), HELLO);

        // zlib-rs finds its own, equally valid, back reference.
        let mut compressor = Compressor::new(&default_params(), Role::Client);
        assert_eq!(compress(&mut compressor, HELLO), first);
        let again = compress(&mut compressor, HELLO);
        assert!(again.len() < first.len(), "{again:x?}");
        let mut decompressor = Decompressor::new(&default_params(), Role::Server);
        assert_eq!(decompress(&mut decompressor, &[&first]).unwrap(), HELLO);
        assert_eq!(decompress(&mut decompressor, &[&again]).unwrap(), HELLO);

        // Without context, the second message cannot refer back: it fails to decode.
        let reset = params(false, true, 15, 15);
        let mut decompressor = Decompressor::new(&reset, Role::Server);
        assert_eq!(decompress(&mut decompressor, &[&first]).unwrap(), HELLO);
        assert_eq!(
            decompress(&mut decompressor, &[&second]),
            Err(InflateError::Corrupt)
        );
        let mut compressor = Compressor::new(&reset, Role::Client);
        assert_eq!(compress(&mut compressor, HELLO), first);
        assert_eq!(compress(&mut compressor, HELLO), first);
    }

    /// §7.2.3.3 to §7.2.3.5: a stored block, a block with BFINAL set, and two blocks.
    #[test]
    fn other_block_forms_from_rfc_7_2_3() {
        let stored = [
            0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
        ];
        let bfinal = [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00];
        let two_blocks = [
            0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00,
        ];
        let mut decompressor = Decompressor::new(&default_params(), Role::Client);
        for payload in [&stored[..], &bfinal, &two_blocks, &bfinal, &stored] {
            assert_eq!(decompress(&mut decompressor, &[payload]).unwrap(), HELLO);
        }
    }

    #[test]
    fn empty_messages() {
        for agreement in [default_params(), params(true, true, 9, 9)] {
            let mut compressor = Compressor::new(&agreement, Role::Server);
            let mut decompressor = Decompressor::new(&agreement, Role::Client);
            assert_eq!(compress(&mut compressor, b""), [0x00]);
            assert!(
                compressor.stream.is_none(),
                "nothing allocated for an empty message"
            );
            for payload in [&b""[..], HELLO, b"", HELLO, b""] {
                let compressed = compress(&mut compressor, payload);
                assert_eq!(
                    decompress(&mut decompressor, &[&compressed]).unwrap(),
                    payload
                );
            }
            // An empty frame ending a message is fine too.
            let compressed = compress(&mut compressor, HELLO);
            assert_eq!(
                decompress(&mut decompressor, &[&compressed, b""]).unwrap(),
                HELLO
            );
        }
    }

    #[test]
    fn large_messages_round_trip_at_every_window() {
        let big = text(7, 300_000);
        for bits in 8..=15 {
            for nct in [false, true] {
                let agreement = params(nct, nct, bits, bits);
                for role in [Role::Client, Role::Server] {
                    let peer = if role == Role::Client {
                        Role::Server
                    } else {
                        Role::Client
                    };
                    let mut compressor = Compressor::new(&agreement, role);
                    let mut decompressor = Decompressor::new(&agreement, peer);
                    for _ in 0..2 {
                        let compressed = compress(&mut compressor, &big);
                        // At 8 bits the compressor writes stored blocks.
                        assert_eq!(compressed.len() < big.len(), bits > 8, "bits {bits}");
                        let frames: Vec<&[u8]> = compressed.chunks(70_000).collect();
                        assert_eq!(decompress(&mut decompressor, &frames).unwrap(), big);
                    }
                }
            }
        }
    }

    /// A client told to compress with a 256-byte window writes stored blocks, which refer to
    /// nothing: the payload appears verbatim, and any window decodes it.
    #[test]
    fn window_8_compresses_into_stored_blocks() {
        let agreement = params(false, false, 15, 8);
        let mut compressor = Compressor::new(&agreement, Role::Client);
        let payload = text(3, 5000);
        for _ in 0..2 {
            let compressed = compress(&mut compressor, &payload);
            assert!(compressed.windows(payload.len()).any(|w| w == payload));
            let mut decompressor = Decompressor::new(&agreement, Role::Server);
            assert_eq!(
                decompress(&mut decompressor, &[&compressed]).unwrap(),
                payload
            );
        }
    }

    /// zlib-rs inflates with a 32 KiB window whatever was agreed, so a peer that refers back
    /// further than its agreed window is decoded, not refused: lenient, never unsafe.
    #[test]
    fn peers_exceeding_their_window_are_still_decoded() {
        let first = text(11, 1024);
        let mut compressor = Compressor::new(&default_params(), Role::Server);
        let compressed = [
            compress(&mut compressor, &first),
            compress(&mut compressor, &first),
        ];
        assert!(
            compressed[1].len() < compressed[0].len() / 4,
            "the second message refers back 1 KiB"
        );
        let mut decompressor = Decompressor::new(&params(false, false, 9, 15), Role::Client);
        for message in &compressed {
            assert_eq!(decompress(&mut decompressor, &[message]).unwrap(), first);
        }
    }

    #[test]
    fn without_context_takeover_frames_can_be_shared() {
        let agreement = params(true, false, 12, 15);
        assert!(agreement.shares_compressed_frames(Role::Server));
        let payload = text(5, 2000);
        let mut busy = Compressor::new(&agreement, Role::Server);
        compress(&mut busy, &text(6, 3000));
        let once = compress(&mut busy, &payload);
        let mut fresh = Compressor::new(&agreement, Role::Server);
        assert_eq!(compress(&mut fresh, &payload), once);
        assert_eq!(compress(&mut busy, &payload), once);

        // Under context takeover, history changes the output.
        let mut keeping = Compressor::new(&default_params(), Role::Server);
        let first = compress(&mut keeping, &payload);
        assert_ne!(compress(&mut keeping, &payload), first);
    }

    #[test]
    fn release_frees_state_only_without_context() {
        let payload = text(1, 500);
        let mut keeping = Compressor::new(&default_params(), Role::Server);
        compress(&mut keeping, &payload);
        keeping.release();
        assert!(keeping.stream.is_some());

        let agreement = params(true, true, 15, 15);
        let mut compressor = Compressor::new(&agreement, Role::Server);
        let mut decompressor = Decompressor::new(&agreement, Role::Client);
        assert!(compressor.stream.is_none() && decompressor.stream.is_none());
        let compressed = compress(&mut compressor, &payload);
        compressor.release();
        assert!(compressor.stream.is_none());
        assert_eq!(compress(&mut compressor, &payload), compressed);

        let mut out = BytesMut::new();
        let (head, rest) = compressed.split_at(10);
        decompressor
            .decompress(head, false, &mut out, LIMIT)
            .unwrap();
        decompressor.release();
        assert!(
            decompressor.stream.is_some(),
            "kept in the middle of a message"
        );
        decompressor
            .decompress(rest, true, &mut out, LIMIT)
            .unwrap();
        assert_eq!(out, payload);
        decompressor.release();
        assert!(decompressor.stream.is_none());
        assert_eq!(
            decompress(&mut decompressor, &[&compressed]).unwrap(),
            payload
        );
    }

    #[test]
    fn limit_counts_the_whole_message() {
        let payload = vec![b'a'; 100_000];
        let mut compressor = Compressor::new(&default_params(), Role::Server);
        let compressed = compress(&mut compressor, &payload);
        let frames: Vec<&[u8]> = compressed.chunks(compressed.len() / 3 + 1).collect();

        // Exactly at the limit is fine.
        let mut decompressor = Decompressor::new(&default_params(), Role::Client);
        let mut out = BytesMut::new();
        for (i, frame) in frames.iter().enumerate() {
            let last = i + 1 == frames.len();
            decompressor
                .decompress(frame, last, &mut out, payload.len())
                .unwrap();
        }
        assert_eq!(out.len(), payload.len());

        let mut compressor = Compressor::new(&default_params(), Role::Server);
        let compressed = compress(&mut compressor, &payload);
        let frames: Vec<&[u8]> = compressed.chunks(compressed.len() / 3 + 1).collect();
        let mut decompressor = Decompressor::new(&default_params(), Role::Client);
        let mut out = BytesMut::new();
        let limit = payload.len() - 1;
        let error = frames
            .iter()
            .enumerate()
            .find_map(|(i, frame)| {
                decompressor
                    .decompress(frame, i + 1 == frames.len(), &mut out, limit)
                    .err()
            })
            .expect("too big");
        assert_eq!(error, InflateError::TooBig { limit });
        assert_eq!(out.len(), limit + 1);
    }

    /// Writes a DEFLATE bit stream, least significant bit first (RFC 1951 §3.1.1).
    struct BitWriter {
        bytes: Vec<u8>,
        bits: u64,
        count: u32,
    }

    impl BitWriter {
        fn bits(&mut self, value: u64, count: u32) {
            self.bits |= value << self.count;
            self.count += count;
            while self.count >= 8 {
                self.bytes.push(self.bits as u8);
                self.bits >>= 8;
                self.count -= 8;
            }
        }

        /// Huffman codes go most significant bit first.
        fn code(&mut self, code: u64, len: u32) {
            let reversed = (0..len).fold(0, |acc, i| acc | ((code >> i) & 1) << (len - 1 - i));
            self.bits(reversed, len);
        }

        fn finish(mut self) -> Vec<u8> {
            if self.count > 0 {
                self.bits(0, 8 - self.count);
            }
            self.bytes
        }
    }

    /// One dynamic block: a literal zero, then `matches` copies of 258 bytes at distance 1,
    /// each taking 2 bits, the densest DEFLATE allows (~1030:1); then the empty stored block
    /// header that the appended tail completes.
    fn zero_bomb(matches: usize) -> Vec<u8> {
        let mut w = BitWriter {
            bytes: Vec::new(),
            bits: 0,
            count: 0,
        };
        w.bits(0, 1); // BFINAL
        w.bits(0b10, 2); // BTYPE: dynamic Huffman
        w.bits(29, 5); // HLIT: 286 literal/length codes
        w.bits(0, 5); // HDIST: 1 distance code
        w.bits(14, 4); // HCLEN: 18 code length codes
        // Code length code lengths in RFC 1951 order 16, 17, 18, 0, 8, ..., 2, 14, 1:
        // symbol 18 gets 1 bit, symbols 1 and 2 get 2 bits.
        for symbol in [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1] {
            let len = match symbol {
                18 => 1,
                1 | 2 => 2,
                _ => 0,
            };
            w.bits(len, 3);
        }
        // Canonical codes: 18 -> 0, 1 -> 10, 2 -> 11.
        let (zeros, one, two) = ((0, 1), (0b10, 2), (0b11, 2));
        w.code(two.0, two.1); // literal 0: 2 bits
        w.code(zeros.0, zeros.1);
        w.bits(127, 7); // 138 zeros
        w.code(zeros.0, zeros.1);
        w.bits(106, 7); // 117 zeros: literals 1 to 255
        w.code(two.0, two.1); // 256, end of block: 2 bits
        w.code(zeros.0, zeros.1);
        w.bits(17, 7); // 28 zeros: 257 to 284
        w.code(one.0, one.1); // 285, length 258: 1 bit
        w.code(one.0, one.1); // distance code 0, distance 1: 1 bit
        // Canonical codes: 285 -> 0, literal 0 -> 10, 256 -> 11; distance 0 -> 0.
        w.code(0b10, 2);
        for _ in 0..matches {
            w.code(0, 1);
            w.code(0, 1);
        }
        w.code(0b11, 2);
        w.bits(0, 3); // BFINAL 0, BTYPE stored: the tail supplies LEN and NLEN
        w.finish()
    }

    #[test]
    fn hand_made_bomb_is_valid() {
        let mut decompressor = Decompressor::new(&default_params(), Role::Server);
        let inflated = decompress(&mut decompressor, &[&zero_bomb(1000)]).unwrap();
        assert_eq!(inflated.len(), 1 + 258 * 1000);
        assert!(inflated.iter().all(|&b| b == 0));
    }

    /// ~380 KiB that inflate to 384 MiB stop at the 64 MiB limit, never holding much more.
    #[test]
    fn decompression_bomb_stops_at_the_limit() {
        const LIMIT: usize = 64 << 20;
        let bomb = zero_bomb((384 << 20) / 258);
        assert!(bomb.len() < 400 << 10, "{} bytes", bomb.len());
        let mut decompressor = Decompressor::new(&default_params(), Role::Server);
        let mut out = BytesMut::new();
        let result = decompressor.decompress(&bomb, true, &mut out, LIMIT);
        assert_eq!(result, Err(InflateError::TooBig { limit: LIMIT }));
        assert_eq!(out.len(), LIMIT + 1);
        // Amortized growth at most doubles the buffer; nothing near 384 MiB was held.
        assert!(out.capacity() <= 2 * (LIMIT + STEP), "{}", out.capacity());

        // Split over frames, the limit still covers the whole message.
        let mut decompressor = Decompressor::new(&default_params(), Role::Server);
        let mut out = BytesMut::new();
        let frames: Vec<&[u8]> = bomb.chunks(bomb.len() / 8).collect();
        let error = frames.iter().enumerate().find_map(|(i, frame)| {
            let last = i + 1 == frames.len();
            decompressor.decompress(frame, last, &mut out, LIMIT).err()
        });
        assert_eq!(error, Some(InflateError::TooBig { limit: LIMIT }));
        assert_eq!(out.len(), LIMIT + 1);
    }

    #[test]
    fn decompressor_starts_afresh_after_an_error() {
        let mut decompressor = Decompressor::new(&default_params(), Role::Client);
        assert_eq!(
            decompress(&mut decompressor, &[&[0xff; 8]]),
            Err(InflateError::Corrupt)
        );
        let hello = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
        assert_eq!(decompress(&mut decompressor, &[&hello]).unwrap(), HELLO);
    }

    fn agreement() -> impl Strategy<Value = (DeflateParams, Role)> {
        (
            any::<bool>(),
            any::<bool>(),
            8..=15u8,
            8..=15u8,
            any::<bool>(),
        )
            .prop_map(
                |(server_nct, client_nct, server_bits, client_bits, client)| {
                    let role = if client { Role::Client } else { Role::Server };
                    (
                        params(server_nct, client_nct, server_bits, client_bits),
                        role,
                    )
                },
            )
    }

    fn message() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..3000),
            (any::<u64>(), 0..6000usize).prop_map(|(seed, len)| text(seed, len)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn messages_round_trip(
            (agreement, role) in agreement(),
            messages in proptest::collection::vec((message(), 1..5usize), 1..6),
        ) {
            let peer = if role == Role::Client { Role::Server } else { Role::Client };
            let mut compressor = Compressor::new(&agreement, role);
            let mut decompressor = Decompressor::new(&agreement, peer);
            for (payload, frame_count) in &messages {
                let compressed = compress(&mut compressor, payload);
                let frame_len = compressed.len().div_ceil(*frame_count).max(1);
                let frames: Vec<&[u8]> = compressed.chunks(frame_len).collect();
                prop_assert_eq!(&decompress(&mut decompressor, &frames).unwrap(), payload);
            }
        }

        #[test]
        fn arbitrary_input_never_panics(
            (agreement, role) in agreement(),
            prefix in message(),
            garbage in proptest::collection::vec(any::<u8>(), 0..2000),
            split in any::<prop::sample::Index>(),
        ) {
            let mut compressor = Compressor::new(&agreement, role);
            let mut input = compress(&mut compressor, &prefix);
            input.truncate(input.len() / 2);
            input.extend_from_slice(&garbage);
            let (head, tail) = input.split_at(split.index(input.len() + 1));
            let peer = if role == Role::Client { Role::Server } else { Role::Client };
            let mut decompressor = Decompressor::new(&agreement, peer);
            let mut out = BytesMut::new();
            let result = decompressor
                .decompress(head, false, &mut out, 1 << 20)
                .and_then(|()| decompressor.decompress(tail, true, &mut out, 1 << 20));
            prop_assert!(
                matches!(result, Ok(()) | Err(InflateError::Corrupt | InflateError::TooBig { .. })),
                "{:?}", result
            );
            prop_assert!(out.len() <= (1 << 20) + 1);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4000)) {
            let mut decompressor = Decompressor::new(&default_params(), Role::Client);
            let mut out = BytesMut::new();
            let result = decompressor.decompress(&bytes, true, &mut out, 1 << 16);
            prop_assert!(
                matches!(result, Ok(()) | Err(InflateError::Corrupt | InflateError::TooBig { .. })),
                "{:?}", result
            );
        }
    }
}
