//! Compression and decompression speed and ratio for every case at levels 1 and 6.

use std::time::Duration;

use flate2::{Compress, Compression, Decompress};

use crate::clock::{self, Stopwatch};
use crate::corpus::{CASES, Case};
use crate::stream;

/// The levels measured: wsio's default, and zlib's.
pub const LEVELS: [u32; 2] = [1, 6];

/// Prints one record per case, level and direction:
/// `throughput  backend  case  level  op  bytes/s  messages/s  compressed/original  clock`.
pub fn run(backend: &str, budget: Duration) {
    for case in CASES {
        let messages = case.messages();
        let original: usize = messages.iter().map(Vec::len).sum();
        for level in LEVELS {
            let compressed = compress_all(&case, &messages, level);
            check_round_trip(&case, &messages, &compressed);
            let ratio = compressed.iter().map(Vec::len).sum::<usize>() as f64 / original as f64;
            let mut compressor = Compress::new(Compression::new(level), false);
            let mut decompressor = Decompress::new(false);
            let mut out = Vec::new();
            let rates = [
                (
                    "compress",
                    measure(budget, || {
                        compress_pass(&case, &messages, &mut compressor, &mut out)
                    }),
                ),
                (
                    "decompress",
                    measure(budget, || {
                        decompress_pass(&case, &compressed, &mut decompressor, &mut out)
                    }),
                ),
            ];
            for (op, rate) in rates {
                println!(
                    "throughput\t{backend}\t{}\t{level}\t{op}\t{:.0}\t{:.0}\t{ratio:.5}\t{}",
                    case.name,
                    rate.bytes_per_second,
                    rate.messages_per_second,
                    clock::name(),
                );
            }
        }
    }
}

/// Work done per second of measured time.
struct Rate {
    bytes_per_second: f64,
    messages_per_second: f64,
}

/// Runs `pass` once to warm up, then until `budget` has elapsed (at least three times).
/// `pass` returns the uncompressed bytes and the messages it handled.
fn measure(budget: Duration, mut pass: impl FnMut() -> (usize, usize)) -> Rate {
    pass();
    let stopwatch = Stopwatch::start();
    let (mut bytes, mut messages, mut passes) = (0, 0, 0);
    while passes < 3 || stopwatch.elapsed() < budget {
        let (pass_bytes, pass_messages) = pass();
        bytes += pass_bytes;
        messages += pass_messages;
        passes += 1;
    }
    let seconds = stopwatch.elapsed().as_secs_f64();
    Rate {
        bytes_per_second: bytes as f64 / seconds,
        messages_per_second: messages as f64 / seconds,
    }
}

/// One pass over the messages from an empty history, as a new connection would send them.
///
/// The stream is reset rather than made anew, as a connection reuses its own.
fn compress_pass(
    case: &Case,
    messages: &[Vec<u8>],
    compressor: &mut Compress,
    out: &mut Vec<u8>,
) -> (usize, usize) {
    compressor.reset();
    let mut bytes = 0;
    for message in messages {
        stream::compress(compressor, message, out);
        if !case.takeover {
            compressor.reset();
        }
        bytes += message.len();
    }
    std::hint::black_box(out);
    (bytes, messages.len())
}

/// Inflates what [`compress_all`] produced, in order, from an empty history.
fn decompress_pass(
    case: &Case,
    compressed: &[Vec<u8>],
    decompressor: &mut Decompress,
    out: &mut Vec<u8>,
) -> (usize, usize) {
    decompressor.reset(false);
    let mut bytes = 0;
    for message in compressed {
        stream::decompress(decompressor, message, out).expect("valid stream");
        if !case.takeover {
            decompressor.reset(false);
        }
        bytes += out.len();
    }
    (bytes, compressed.len())
}

fn compress_all(case: &Case, messages: &[Vec<u8>], level: u32) -> Vec<Vec<u8>> {
    let mut compressor = Compress::new(Compression::new(level), false);
    messages
        .iter()
        .map(|message| {
            let mut out = Vec::new();
            stream::compress(&mut compressor, message, &mut out);
            if !case.takeover {
                compressor.reset();
            }
            out
        })
        .collect()
}

/// Makes sure the numbers measure a working codec.
fn check_round_trip(case: &Case, messages: &[Vec<u8>], compressed: &[Vec<u8>]) {
    let mut decompressor = Decompress::new(false);
    let mut out = Vec::new();
    for (message, packed) in messages.iter().zip(compressed) {
        stream::decompress(&mut decompressor, packed, &mut out).expect("valid stream");
        assert!(
            out == *message,
            "{}: round trip changed a message",
            case.name
        );
        if !case.takeover {
            decompressor.reset(false);
        }
    }
}
