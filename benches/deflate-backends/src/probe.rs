//! Which window sizes a backend can use (RFC 7692 §7.1.2) and the heap a stream holds.

use std::panic::{self, AssertUnwindSafe};

use flate2::{Compress, Compression, Decompress};

use crate::alloc_counter;
use crate::corpus::{self, Rng};
use crate::stream;
use crate::throughput::LEVELS;

/// The window sizes a permessage-deflate agreement can ask the compressor for. 8 is left out:
/// zlib has no 8-bit raw deflate, and 9 is what RFC 7692 implementations use for it.
const WINDOW_BITS: std::ops::RangeInclusive<u8> = 9..=15;

/// The window sizes whose memory is measured.
const MEMORY_WINDOW_BITS: [u8; 3] = [9, 12, 15];

/// Prints the window and memory records:
/// `window  backend  bits  compressor  honoured  decompressor  round_trip` and
/// `memory  backend  side  level  bits  bytes`.
pub fn run(backend: &str) {
    // The probes catch the panics flate2 raises when a backend refuses a window size.
    panic::set_hook(Box::new(|_| {}));
    for bits in WINDOW_BITS {
        let window = probe_window(bits);
        println!(
            "window\t{backend}\t{bits}\t{}\t{}\t{}\t{}",
            window.compressor, window.honoured, window.decompressor, window.round_trip,
        );
    }
    let sample = corpus::sample_message();
    for bits in MEMORY_WINDOW_BITS {
        for level in LEVELS {
            if let Some(bytes) = compressor_heap(bits, level, &sample) {
                println!("memory\t{backend}\tcompressor\t{level}\t{bits}\t{bytes}");
            }
        }
        if let Some(bytes) = decompressor_heap(bits, &sample) {
            println!("memory\t{backend}\tdecompressor\t-\t{bits}\t{bytes}");
        }
    }
    let _ = panic::take_hook();
}

/// What one window size gives with this backend.
struct Window {
    /// `ok`, or why a raw compressor with this window could not be made.
    compressor: &'static str,
    /// Whether the compressor's back-references stay inside the window.
    honoured: &'static str,
    /// `ok`, or why a raw decompressor with this window could not be made.
    decompressor: &'static str,
    /// Whether a stream made with this window inflates again with this window.
    round_trip: &'static str,
}

fn probe_window(bits: u8) -> Window {
    let mut rng = Rng::new(u64::from(bits));
    // A random block repeated at a distance of exactly the window size: a compressor that
    // respects the window cannot refer back to it, so the output stays as long as the input.
    let block = corpus::random(&mut rng, 1 << bits);
    let twice = [block.as_slice(), block.as_slice()].concat();

    let mut compressed = Vec::new();
    let compressor = match new_compressor(bits, 1) {
        Ok(mut compressor) => {
            let made = attempt(|| stream::compress(&mut compressor, &twice, &mut compressed));
            if made.is_err() {
                compressed.clear();
            }
            made.map(|()| "ok").unwrap_or("fails to compress")
        }
        Err(reason) => reason,
    };
    let honoured = match (compressor, compressed.len()) {
        ("ok", len) if len >= twice.len() * 9 / 10 => "yes",
        ("ok", _) => "no",
        _ => "n/a",
    };
    let (decompressor, round_trip) = match new_decompressor(bits) {
        Ok(mut decompressor) if compressor == "ok" => {
            let mut out = Vec::new();
            let same =
                attempt(|| stream::decompress(&mut decompressor, &compressed, &mut out).is_ok());
            (
                "ok",
                if same == Ok(true) && out == twice {
                    "yes"
                } else {
                    "no"
                },
            )
        }
        Ok(_) => ("ok", "n/a"),
        Err(reason) => (reason, "n/a"),
    };
    Window {
        compressor,
        honoured,
        decompressor,
        round_trip,
    }
}

/// Heap bytes a compressor holds after compressing one message.
fn compressor_heap(bits: u8, level: u32, message: &[u8]) -> Option<usize> {
    let mut out = Vec::with_capacity(64 << 10);
    let before = alloc_counter::allocated();
    let mut compressor = new_compressor(bits, level).ok()?;
    stream::compress(&mut compressor, message, &mut out);
    let held = alloc_counter::allocated() - before;
    drop(compressor);
    Some(held)
}

/// Heap bytes a decompressor holds after inflating one message.
fn decompressor_heap(bits: u8, message: &[u8]) -> Option<usize> {
    let mut compressed = Vec::new();
    // A decompressor with a 15-bit window also stands in for smaller ones when the backend
    // offers no choice, so its input comes from the largest window the backend can make.
    let mut compressor = new_compressor(bits, 1)
        .or_else(|_| new_compressor(15, 1))
        .ok()?;
    stream::compress(&mut compressor, message, &mut compressed);
    let mut out = Vec::with_capacity(64 << 10);
    let before = alloc_counter::allocated();
    let mut decompressor = new_decompressor(bits).ok()?;
    stream::decompress(&mut decompressor, &compressed, &mut out).expect("valid stream");
    let held = alloc_counter::allocated() - before;
    assert!(out == message, "round trip changed the message");
    drop(decompressor);
    Some(held)
}

/// Runs `f`, turning a panic into an error.
fn attempt<T>(f: impl FnOnce() -> T) -> Result<T, ()> {
    panic::catch_unwind(AssertUnwindSafe(f)).map_err(|_| ())
}

/// A raw compressor with a `bits` window, if the backend makes one.
#[cfg(not(feature = "miniz_oxide"))]
fn new_compressor(bits: u8, level: u32) -> Result<Compress, &'static str> {
    attempt(|| Compress::new_with_window_bits(Compression::new(level), false, bits))
        .map_err(|()| "refused")
}

/// A raw decompressor with a `bits` window, if the backend makes one.
#[cfg(not(feature = "miniz_oxide"))]
fn new_decompressor(bits: u8) -> Result<Decompress, &'static str> {
    attempt(|| Decompress::new_with_window_bits(false, bits)).map_err(|()| "refused")
}

/// flate2 offers window sizes only on zlib-like backends; miniz_oxide always uses 32 KiB.
#[cfg(feature = "miniz_oxide")]
fn new_compressor(bits: u8, level: u32) -> Result<Compress, &'static str> {
    if bits == 15 {
        Ok(Compress::new(Compression::new(level), false))
    } else {
        Err("no API")
    }
}

/// As [`new_compressor`]: only the 15-bit window, which inflates any smaller one's output.
#[cfg(feature = "miniz_oxide")]
fn new_decompressor(bits: u8) -> Result<Decompress, &'static str> {
    if bits == 15 {
        Ok(Decompress::new(false))
    } else {
        Err("no API")
    }
}
