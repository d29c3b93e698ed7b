//! permessage-deflate's `Decompressor` fed arbitrary compressed bytes in arbitrary frames: only
//! `Ok`, `TooBig` or `Corrupt`, never a panic, and never more output than the message limit
//! allows; and whatever the data, `Compressor` then `Decompressor` gives it back, for the
//! agreement the flags pick (context takeover or not, window 9 to 15).
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use wsio::proto::Rng;
use wsio::proto::Role;
use wsio::proto::deflate::{Compressor, Decompressor, DeflateConfig, DeflateParams, InflateError};
use wsio::proto::handshake::{ClientRequest, RequestParser};
use wsio_fuzz::Split;

/// A small limit, so that bombs are cheap to find.
const LIMIT: usize = 64 << 10;

fn params(flags: u8) -> DeflateParams {
    let mut config = DeflateConfig::default();
    config.client_no_context_takeover = flags & 0b0000_1000 != 0;
    config.client_max_window_bits = 9 + (flags >> 4) % 7;
    let request = ClientRequest::new("ws://fuzz/")
        .and_then(|request| request.extension(&config.offer()))
        .expect("valid offer");
    let (wire, _) = request.encode(&mut Rng::from_seed([0; 32]));
    let request = RequestParser::default()
        .receive(&wire)
        .expect("valid")
        .expect("complete");
    config
        .negotiate(request.extensions())
        .expect("acceptable offer")
        .0
}

fuzz_target!(|input: &[u8]| {
    let Some((&flags, input)) = input.split_first() else {
        return;
    };
    let Some(split) = Split::new(input) else {
        return;
    };
    let params = params(flags);

    // Hostile input: the server inflating what a client sent.
    let mut decompressor = Decompressor::new(&params, Role::Server);
    let chunks: Vec<&[u8]> = split.chunks().collect();
    let mut out = BytesMut::new();
    for (index, chunk) in chunks.iter().enumerate() {
        let last = index + 1 == chunks.len();
        match decompressor.decompress(chunk, last, &mut out, LIMIT) {
            Ok(()) => assert!(out.len() <= LIMIT, "{} bytes past the limit", out.len()),
            Err(InflateError::TooBig { limit }) => {
                assert_eq!(limit, LIMIT);
                assert!(out.len() <= LIMIT + 1, "held {} bytes", out.len());
                break;
            }
            Err(InflateError::Corrupt) => break,
            Err(other) => panic!("undocumented error {other:?}"),
        }
    }

    // Round trip: the client compresses the data, the server gets it back, twice in a row so
    // context takeover (or its absence) is exercised.
    let mut compressor = Compressor::new(&params, Role::Client);
    let mut decompressor = Decompressor::new(&params, Role::Server);
    for _ in 0..2 {
        let mut compressed = BytesMut::new();
        compressor.compress(split.data, &mut compressed);
        let mut restored = BytesMut::new();
        decompressor
            .decompress(&compressed, true, &mut restored, usize::MAX)
            .expect("our own output inflates");
        assert_eq!(&restored[..], split.data, "round trip changed the data");
    }
});
