//! Memory a connection holds: for a peer's declared frame length before the bytes arrive, and
//! while idle.
//!
//! A counting global allocator sees every allocation of this test binary, which holds one test
//! (running the checks in turn) so that nothing else allocates meanwhile.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::BytesMut;
use wsio::proto::{Config, Connection, Frame, Message, OpCode, Transmit};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
/// Every byte ever allocated: a buffer that regrows counts each allocation it went through.
static ALLOCATED: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATED.fetch_add(layout.size(), Ordering::Relaxed);
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
fn memory_held_by_a_connection() {
    a_declared_but_unsent_payload_is_not_reserved();
    an_idle_connection_gives_its_buffers_back();
    a_large_frame_read_onto_its_message_grows_few_times();
    frames_of_a_read_chunk_are_shared_from_the_read_buffer();
}

/// 64 KiB binary frames read through `receive_with` in reads of 64 KiB (the tokio adapter's
/// default), each read taking only the room it is given: every frame arrives whole in the
/// read buffer, or completes there, and its payload is shared from it. A frame cut by a read
/// used to be copied onto a message of its own: 64 KiB more allocated (and copied) for each.
fn frames_of_a_read_chunk_are_shared_from_the_read_buffer() {
    let (len, count, room) = (64 << 10, 8, 64 << 10);
    let wire = declared_frame_start(OpCode::Binary, true, len, len).repeat(count);
    let mut conn = Connection::server(Config::default());
    let before = ALLOCATED.load(Ordering::Relaxed);
    let mut rest = &wire[..];
    let mut received = 0;
    while !rest.is_empty() {
        conn.receive_with(room, |buf| {
            let piece = (buf.capacity() - buf.len()).min(room).min(rest.len());
            buf.extend_from_slice(&rest[..piece]);
            rest = &rest[piece..];
        });
        while let Some(event) = conn.poll_event() {
            let Ok(wsio::proto::Event::Message(message)) = event else {
                panic!("only messages arrive: {event:?}");
            };
            assert_eq!(message.len(), len);
            received += 1;
        }
    }
    let allocated = ALLOCATED.load(Ordering::Relaxed) - before;
    assert_eq!(received, count);
    assert!(
        allocated < 3 * len,
        "{allocated} bytes allocated to receive {count} messages of {len} bytes"
    );
}

/// A large binary frame read in 64 KiB pieces, straight onto its message once that is on
/// offer (`direct_read_len`, as the tokio adapter does), lands in room made for it, not in a
/// message that regrows (and copies itself) every few reads: 2.4 MB were allocated for this
/// 1 MiB message before.
fn a_large_frame_read_onto_its_message_grows_few_times() {
    let len = 1 << 20;
    let wire = declared_frame_start(OpCode::Binary, true, len, len);
    let mut conn = Connection::server(Config::default());
    let before = ALLOCATED.load(Ordering::Relaxed);
    let mut rest = &wire[..];
    while !rest.is_empty() {
        let piece = rest.len().min(64 << 10);
        if conn.direct_read_len().is_some() {
            conn.receive_with(piece, |buf| buf.extend_from_slice(&rest[..piece]));
        } else {
            conn.receive(&rest[..piece]);
        }
        rest = &rest[piece..];
    }
    let allocated = ALLOCATED.load(Ordering::Relaxed) - before;
    let Some(Ok(wsio::proto::Event::Message(message))) = conn.poll_event() else {
        panic!("the frame is complete");
    };
    assert_eq!(message.len(), len);
    assert!(
        allocated < len * 3 / 2,
        "{allocated} bytes allocated to receive a {len}-byte message"
    );
}

fn an_idle_connection_gives_its_buffers_back() {
    let mut conn = Connection::server(Config::default());
    let mut wire = Vec::new();
    for text in ["hello", "a longer message with ünïcödé in it"] {
        wire.extend(declared_frame_start(OpCode::Text, true, text.len(), 0));
        let start = wire.len();
        wire.extend(text.bytes());
        wsio::proto::apply_mask(&mut wire[start..], [1, 2, 3, 4], 0);
    }
    wire.extend(&declared_frame_start(OpCode::Binary, true, 3000, 1000)); // an unfinished frame
    conn.receive(&wire);
    drop(wire);
    while let Some(event) = conn.poll_event() {
        if let Ok(wsio::proto::Event::Message(message)) = event {
            conn.send(message).unwrap();
        }
    }
    conn.send(Message::binary(vec![9; 100_000])).unwrap();
    while let Some(Transmit::Data(data)) = conn.poll_transmit() {
        drop(data); // written to the socket
    }
    conn.receive(&vec![b'a'; 2000]); // the rest of the binary frame (its payload, unmasked)
    let mut messages = 0;
    while let Some(event) = conn.poll_event() {
        assert!(matches!(event, Ok(wsio::proto::Event::Message(_))));
        messages += 1;
    }
    assert_eq!(messages, 1);
    conn.release_idle_memory();
    // What the connection holds is what dropping it gives back.
    let with_conn = LIVE.load(Ordering::Relaxed);
    drop(conn);
    let held = with_conn - LIVE.load(Ordering::Relaxed);
    assert!(held < 256, "{held} bytes held by an idle connection");
}

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
