//! Memory held for a peer's declared frame length before the bytes arrive.
//!
//! A counting global allocator sees every allocation of this test binary, which holds this one
//! test so that nothing else allocates meanwhile.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::BytesMut;
use wsio::proto::{Config, Connection, Frame, OpCode};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(live, Ordering::Relaxed);
        // SAFETY: the caller's contract for `alloc` is passed on as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The first `sent` bytes of a masked client frame whose header declares `len` bytes.
fn declared_frame_start(opcode: OpCode, fin: bool, len: usize, sent: usize) -> Vec<u8> {
    let mut wire = BytesMut::new();
    Frame {
        fin,
        rsv1: false,
        opcode,
        payload: vec![b'a'; len].into(),
    }
    .encode(Some([1, 2, 3, 4]), &mut wire);
    wire.truncate(wire.len() - len + sent);
    wire.to_vec()
}

#[test]
fn a_declared_but_unsent_payload_is_not_reserved() {
    let declared = 15 << 20; // within the default 16 MiB frame limit
    for (opcode, fin) in [
        (OpCode::Text, true),
        (OpCode::Text, false),
        (OpCode::Binary, true),
        (OpCode::Binary, false),
    ] {
        let wire = declared_frame_start(opcode, fin, declared, 100_000);
        let mut conn = Connection::server(Config::default());
        let before = LIVE.load(Ordering::Relaxed);
        PEAK.store(before, Ordering::Relaxed);
        // As a socket would deliver it: a first read, then the rest stalls.
        for chunk in wire.chunks(64 << 10) {
            conn.receive(chunk);
            if let Some(event) = conn.poll_event() {
                panic!("nothing is complete yet: {event:?}");
            }
        }
        let held = PEAK.load(Ordering::Relaxed) - before;
        assert!(
            held < 2 << 20,
            "{opcode:?} fin={fin}: {held} bytes held for 100 000 received of {declared} declared"
        );
        drop(conn);
    }
}
