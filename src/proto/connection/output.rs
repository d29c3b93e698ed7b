//! The outgoing buffer: frames encoded (and masked, on a client) as they are queued, handed
//! to the driver as owned chunks or borrowed slices.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use super::{Connection, Shutdown, Transmit};
use crate::proto::frame::{FrameHeader, OpCode};
use crate::proto::mask::apply_mask;
use crate::proto::prepared::PreparedMessage;
use crate::proto::rng::Rng;

/// Server payloads at least this long are queued as their own chunk instead of being copied,
/// so a driver writing vectored sends them straight from the caller's buffer. Below it, the
/// copy costs less than a chunk of its own, and a burst of messages leaves as one contiguous
/// buffer.
const COPY_THRESHOLD: usize = 4096;

/// The least the outbound buffer grows by when it is full.
const OUT_TAIL_BLOCK: usize = 4096;

/// Pongs kept owed when pings pile up faster than they are answered; older ones are dropped
/// (answering the latest ping is enough, §5.5.3).
const MAX_PENDING_PONGS: usize = 16;

/// The bytes queued for the transport, in order, and the pongs owed.
///
/// Invariants: the bytes go out as `tail[..queue[0].before]`, `queue[0].payload`,
/// `tail[..queue[1].before]` (after the first ones), ... and finally the rest of `tail`;
/// `tail_queued` is the sum of the `before`s; `buffered` counts every byte of all of them.
/// Owed pongs are not counted until they are encoded, which happens just before the next
/// bytes are handed out (or before a close frame), so the latest ping is answered.
#[derive(Debug)]
pub(super) struct Outgoing {
    /// A client's masking-key generator; boxed because it is large (a ChaCha block) and a
    /// server, which needs none, would otherwise carry its room in every connection.
    rng: Option<Box<Rng>>,
    /// Payloads queued as they are, each after some bytes of `tail`; what `tail` holds
    /// beyond them goes out last.
    queue: VecDeque<QueuedPayload>,
    /// Headers and copied frames, in the order they go out with the queued payloads.
    tail: BytesMut,
    /// The bytes at the front of `tail` that go out before queued payloads: the sum of
    /// their `before`.
    tail_queued: usize,
    buffered: usize,
    /// Pongs owed, oldest first; bounded so a ping flood cannot grow memory.
    pending_pongs: VecDeque<Bytes>,
}

/// A payload written from its own buffer, not copied into `tail`.
#[derive(Debug)]
struct QueuedPayload {
    /// How many bytes at the front of `tail` (after those of the payloads before this one)
    /// go out before this payload: its header, and any frames copied since the last payload.
    before: usize,
    payload: Bytes,
}

impl Outgoing {
    pub(super) fn new(rng: Option<Box<Rng>>) -> Self {
        Self {
            rng,
            queue: VecDeque::new(),
            tail: BytesMut::new(),
            tail_queued: 0,
            buffered: 0,
            pending_pongs: VecDeque::new(),
        }
    }

    /// The bytes queued and not yet handed out.
    #[inline]
    pub(super) fn buffered(&self) -> usize {
        self.buffered
    }

    /// Whether every queued byte was handed out (owed pongs aside).
    #[inline]
    pub(super) fn is_empty(&self) -> bool {
        self.queue.is_empty() && self.tail.is_empty()
    }

    /// Whether anything is waiting to be written, owed pongs included.
    #[inline]
    pub(super) fn has_transmit(&self) -> bool {
        self.buffered > 0 || !self.pending_pongs.is_empty()
    }

    /// Owes a pong for a ping, dropping the oldest owed one when too many are.
    pub(super) fn owe_pong(&mut self, payload: Bytes) {
        if self.pending_pongs.len() == MAX_PENDING_PONGS {
            self.pending_pongs.pop_front();
        }
        self.pending_pongs.push_back(payload);
    }

    /// Forgets the pongs owed (the connection failed: its close frame goes out alone).
    pub(super) fn clear_pongs(&mut self) {
        self.pending_pongs.clear();
    }

    /// Queues a close frame after the pongs owed, which may not follow it (§5.5.1).
    pub(super) fn queue_close(&mut self, payload: Bytes) {
        self.flush_pongs();
        self.queue_frame(true, OpCode::Close, payload);
    }

    #[inline]
    pub(super) fn queue_frame(&mut self, fin: bool, opcode: OpCode, payload: Bytes) {
        self.queue_frame_with(fin, false, opcode, payload);
    }

    #[inline]
    pub(super) fn queue_frame_with(
        &mut self,
        fin: bool,
        rsv1: bool,
        opcode: OpCode,
        payload: Bytes,
    ) {
        if self.rng.is_some() || payload.len() < COPY_THRESHOLD {
            return self.queue_frame_copied(fin, rsv1, opcode, &payload);
        }
        // A long server payload goes out as its own chunk, after the header: a driver writing
        // vectored sends it straight from the caller's buffer.
        self.queue_header(fin, rsv1, opcode, None, payload.len(), 0);
        self.buffered += payload.len();
        let before = self.tail.len() - self.tail_queued;
        self.tail_queued += before;
        self.queue.push_back(QueuedPayload { before, payload });
    }

    /// Queues a prepared message uncompressed. On a server whose output is empty (a broadcast
    /// to an idle connection, the usual case) the whole frame, encoded once for every
    /// connection, is queued by reference: nothing is copied or allocated for it. Otherwise,
    /// as [`queue_frame`](Self::queue_frame), so that frames queued together still leave as
    /// one buffer.
    #[inline]
    pub(super) fn queue_prepared(&mut self, message: &PreparedMessage) {
        if self.rng.is_none() && self.is_empty() && message.len() < COPY_THRESHOLD {
            let frame = message.server_frame();
            self.buffered += frame.len();
            self.queue.push_back(QueuedPayload {
                before: 0,
                payload: frame,
            });
            return;
        }
        self.queue_frame(true, message.opcode(), message.payload().clone());
    }

    /// Queues a frame whose payload is copied (and masked, for a client) into the outgoing
    /// buffer right after its header.
    #[inline]
    pub(super) fn queue_frame_copied(
        &mut self,
        fin: bool,
        rsv1: bool,
        opcode: OpCode,
        payload: &[u8],
    ) {
        let mask = self.rng.as_deref_mut().map(Rng::mask);
        self.queue_header(fin, rsv1, opcode, mask, payload.len(), payload.len());
        self.buffered += payload.len();
        let start = self.tail.len();
        self.tail.extend_from_slice(payload);
        if let Some(key) = mask {
            apply_mask(&mut self.tail[start..], key, 0);
        }
    }

    /// Appends a frame header to the outgoing buffer, with room for `room` more bytes.
    #[inline(always)]
    fn queue_header(
        &mut self,
        fin: bool,
        rsv1: bool,
        opcode: OpCode,
        mask: Option<[u8; 4]>,
        payload_len: usize,
        room: usize,
    ) {
        let header = FrameHeader {
            fin,
            rsv1,
            opcode,
            mask,
            payload_len: payload_len as u64,
        };
        let (head, head_len) = header.to_bytes();
        let needed = head_len + room;
        if self.tail.capacity() - self.tail.len() < needed {
            // Room for many small frames at once: the chunks handed out share this buffer, so
            // growing it for every frame would go through `reserve` (and maybe allocate) each
            // time.
            self.tail.reserve(needed.max(OUT_TAIL_BLOCK));
        }
        self.tail.extend_from_slice(&head[..head_len]);
        self.buffered += head_len;
    }

    /// Encodes the pongs owed, if any.
    #[inline]
    fn flush_pongs_if_any(&mut self) {
        if !self.pending_pongs.is_empty() {
            self.flush_pongs();
        }
    }

    // Out of line: pongs are rare, and inlined they would make every `poll_transmit` heavier.
    #[inline(never)]
    fn flush_pongs(&mut self) {
        while let Some(payload) = self.pending_pongs.pop_front() {
            self.queue_frame(true, OpCode::Pong, payload);
        }
    }

    /// Hands out the next queued bytes as an owned chunk.
    #[inline]
    fn poll_data(&mut self) -> Option<Bytes> {
        self.flush_pongs_if_any();
        let data = match self.queue.front_mut() {
            Some(front) if front.before > 0 => {
                let before = std::mem::take(&mut front.before);
                self.tail_queued -= before;
                self.tail.split_to(before).freeze()
            }
            Some(_) => self.queue.pop_front().expect("a front").payload,
            None if !self.tail.is_empty() => self.tail.split().freeze(),
            None => return None,
        };
        self.buffered -= data.len();
        Some(data)
    }

    /// The next queued bytes, borrowed.
    #[inline]
    fn chunk(&mut self) -> &[u8] {
        self.flush_pongs_if_any();
        match self.queue.front() {
            Some(front) if front.before > 0 => &self.tail[..front.before],
            Some(front) => &front.payload,
            None => &self.tail,
        }
    }

    /// Fills `slices` with the queued bytes, in order, borrowed; returns how many it filled.
    #[inline]
    fn slices<'a>(&'a mut self, slices: &mut [std::io::IoSlice<'a>]) -> usize {
        self.flush_pongs_if_any();
        let mut filled = 0;
        let mut put = |data: &'a [u8]| match slices.get_mut(filled) {
            _ if data.is_empty() => true,
            Some(slot) => {
                *slot = std::io::IoSlice::new(data);
                filled += 1;
                true
            }
            None => false,
        };
        let mut tail: &'a [u8] = &self.tail;
        for queued in &self.queue {
            let (before, rest) = tail.split_at(queued.before);
            tail = rest;
            if !put(before) || !put(&queued.payload) {
                return filled;
            }
        }
        put(tail);
        filled
    }

    /// Lets go of the first `written` bytes queued.
    #[inline]
    fn advance(&mut self, written: usize) {
        if written == self.buffered && written > 0 {
            // Everything went out (the usual case): keep the buffer's room for the next frames,
            // where they start over.
            self.buffered = 0;
            if !self.queue.is_empty() {
                self.queue.clear();
            }
            self.tail.clear();
            self.tail_queued = 0;
            return;
        }
        self.advance_partly(written);
    }

    // Out of line: the usual write takes everything, and this loop would make every call heavier.
    #[inline(never)]
    fn advance_partly(&mut self, written: usize) {
        assert!(
            written <= self.buffered,
            "advance_transmit({written}) with only {} bytes queued",
            self.buffered
        );
        self.buffered -= written;
        let mut left = written;
        while left > 0 {
            let Some(front) = self.queue.front_mut() else {
                if left == self.tail.len() {
                    // Keeps the buffer's room for the next frames, where they start over.
                    self.tail.clear();
                } else {
                    bytes::Buf::advance(&mut self.tail, left);
                }
                return;
            };
            if front.before > 0 {
                let taken = left.min(front.before);
                front.before -= taken;
                self.tail_queued -= taken;
                bytes::Buf::advance(&mut self.tail, taken);
                left -= taken;
            } else if left < front.payload.len() {
                bytes::Buf::advance(&mut front.payload, left);
                return;
            } else {
                left -= front.payload.len();
                self.queue.pop_front();
            }
        }
    }

    /// Gives back the capacity of `tail` when it holds nothing (the queue of payloads, a few
    /// words per entry, stays for the next sends).
    #[inline]
    pub(super) fn release_idle_tail(&mut self) {
        // As in `release_idle_memory`: an empty `BytesMut` may still hold an allocation.
        if self.tail.is_empty() {
            self.tail = BytesMut::new();
        }
    }

    /// Gives back the capacity of the buffers that hold nothing.
    pub(super) fn release_idle_memory(&mut self) {
        // An empty `BytesMut` may still share the allocation of the chunks split off it (even
        // with no spare capacity left): replacing it is the way to let go.
        if self.tail.is_empty() {
            self.tail = BytesMut::new();
        }
        if self.queue.is_empty() && self.queue.capacity() > 0 {
            self.queue = VecDeque::new();
        }
    }
}

impl Connection {
    /// Whether anything is waiting to be written: queued bytes, or pongs owed (encoded by the
    /// next `poll_transmit`, `transmit_chunk` or `transmit_slices`). A pending shutdown is not
    /// counted.
    ///
    /// A driver that writes only when there is something to write asks this first, so a read
    /// loop that sends nothing costs one check per message.
    #[inline]
    pub fn has_transmit(&self) -> bool {
        self.out.has_transmit()
    }

    /// Returns the next bytes to write to the peer, or the instruction to shut the transport's
    /// write side down once every byte went out.
    ///
    /// Call after every `receive`, `receive_eof`, `send`, `close` and `handle_timeout`; control
    /// replies (pongs, the close echo) are queued here even when the application sent nothing.
    /// What it returns is no longer the connection's: the driver writes it (all of it, in order,
    /// resuming after a partial write) or drops the transport.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        if let Some(data) = self.out.poll_data() {
            return Some(Transmit::Data(data));
        }
        if self.shutdown == Shutdown::Queued {
            self.shutdown = Shutdown::Done;
            return Some(Transmit::Shutdown);
        }
        None
    }

    /// The next bytes to write, borrowed and left queued (empty when none): write them, then
    /// call [`advance_transmit`](Self::advance_transmit) with how many were written. The
    /// alternative to [`poll_transmit`](Self::poll_transmit) for drivers that write from a
    /// borrowed slice (a partial write then needs no bookkeeping of its own); the two may be
    /// mixed. Once nothing is left, `poll_transmit` reports a pending shutdown.
    #[inline]
    pub fn transmit_chunk(&mut self) -> &[u8] {
        self.out.chunk()
    }

    /// Fills `slices` with the bytes waiting to be written, in order, borrowed and left queued,
    /// and returns how many slices it filled: for one vectored write of everything queued.
    /// Call [`advance_transmit`](Self::advance_transmit) with how many bytes were written.
    ///
    /// ```
    /// use std::io::{IoSlice, Write};
    /// use wsio::proto::{Config, Connection, Message};
    /// let mut server = Connection::server(Config::default());
    /// server.send(Message::binary(vec![7; 2000]))?;
    /// server.send_text("bye")?;
    /// let mut socket = Vec::new();
    /// let mut slices = [IoSlice::new(&[]); 8];
    /// let filled = server.transmit_slices(&mut slices);
    /// let written = socket.write_vectored(&slices[..filled])?;
    /// server.advance_transmit(written);
    /// assert_eq!(socket.len(), 4 + 2000 + 2 + 3);
    /// assert_eq!(server.buffered_amount(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn transmit_slices<'a>(&'a mut self, slices: &mut [std::io::IoSlice<'a>]) -> usize {
        self.out.slices(slices)
    }

    /// Marks the first `written` bytes of those waiting to be written as written (see
    /// [`transmit_chunk`](Self::transmit_chunk) and [`transmit_slices`](Self::transmit_slices)).
    ///
    /// # Panics
    ///
    /// If `written` is more than [`buffered_amount`](Self::buffered_amount): the driver claims to
    /// have written bytes it was never given.
    #[inline]
    pub fn advance_transmit(&mut self, written: usize) {
        self.out.advance(written);
    }

    /// The number of bytes queued for the transport and not yet handed out by `poll_transmit`
    /// (or marked written by `advance_transmit`).
    #[inline]
    pub fn buffered_amount(&self) -> usize {
        self.out.buffered()
    }
}
