//! The bounded outgoing queue of one connection and its overflow policy.
//!
//! A volatile packet is queued only when the connection is writable, as socket.io has it:
//! nothing queued and nothing being written; otherwise it is dropped. Under `limit` queued
//! packets every other packet is queued. At the limit a packet is still queued, and the
//! connection is marked as over its limit. A
//! connection over its limit for longer than `overflow_timeout`, or holding twice `limit`
//! packets, overflows: the caller disconnects it. Pushing never waits, so a broadcast never
//! stalls on a slow recipient.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::Message;
use crate::lock::lock;
use crate::proto::PreparedMessage;

/// What one connection sends for one packet: its WebSocket messages, shared by every
/// recipient of a broadcast.
pub(crate) type Outgoing = Arc<[PreparedMessage]>;

/// Turns an encoded packet into what each connection sends. Every send path goes through here:
/// a broadcast is encoded once, and with permessage-deflate and no server context takeover
/// each message is also compressed once for all its recipients.
pub(crate) fn prepare(messages: Vec<Message>) -> Outgoing {
    prepare_with(messages, true)
}

/// Like [`prepare`]; without `compress` the messages go out uncompressed even where
/// permessage-deflate is on (socket.io's `compress(false)`).
pub(crate) fn prepare_with(messages: Vec<Message>, compress: bool) -> Outgoing {
    let prepare = match compress {
        true => PreparedMessage::new,
        false => PreparedMessage::uncompressed,
    };
    messages.into_iter().map(prepare).collect()
}

/// One entry of the queue.
#[derive(Debug)]
pub(crate) enum Item {
    /// A packet's messages.
    Packet(Outgoing),
    /// Flush what is written so far before writing what follows: the packets before it go
    /// out as writes of their own, never gathered with later ones.
    Flush,
    /// Close the WebSocket after what is queued before this.
    Close,
}

/// What became of a pushed packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Push {
    /// Queued.
    Queued,
    /// A volatile packet dropped because the queue is full.
    Dropped,
    /// The connection is closing: nothing more is queued.
    Closed,
    /// Refused: the connection has been over its limit too long; disconnect it.
    Overflow,
}

#[derive(Debug)]
pub(crate) struct Queue {
    state: Mutex<State>,
    ready: Notify,
    limit: usize,
    overflow_timeout: Duration,
}

#[derive(Debug, Default)]
struct State {
    items: VecDeque<Item>,
    /// Packets in `items`.
    packets: usize,
    /// When the queue last reached its limit, while it stays there.
    over_since: Option<Instant>,
    /// The writer took items and has not reported them written yet.
    writing: bool,
    closed: bool,
}

impl Queue {
    pub(crate) fn new(limit: usize, overflow_timeout: Duration) -> Self {
        Self {
            state: Mutex::default(),
            ready: Notify::new(),
            limit: limit.max(1),
            overflow_timeout,
        }
    }

    /// Queues a packet according to the policy in the module docs.
    pub(crate) fn push(&self, packet: Outgoing, volatile: bool) -> Push {
        let mut state = self.lock();
        if state.closed {
            return Push::Closed;
        }
        if volatile && (state.writing || !state.items.is_empty()) {
            return Push::Dropped;
        }
        if state.packets >= self.limit {
            let now = Instant::now();
            let since = *state.over_since.get_or_insert(now);
            if state.packets >= 2 * self.limit || now - since > self.overflow_timeout {
                return Push::Overflow;
            }
        }
        state.items.push_back(Item::Packet(packet));
        state.packets += 1;
        drop(state);
        self.ready.notify_one();
        Push::Queued
    }

    /// Queues a flush after the packets queued so far (see [`Item::Flush`]).
    pub(crate) fn push_flush(&self) {
        let mut state = self.lock();
        if state.closed {
            return;
        }
        state.items.push_back(Item::Flush);
        drop(state);
        self.ready.notify_one();
    }

    /// Refuses further packets and queues the close after those already queued. With
    /// `discard`, the queued packets are dropped first (for a connection that overflowed).
    pub(crate) fn close(&self, discard: bool) {
        let mut state = self.lock();
        if state.closed {
            return;
        }
        if discard {
            state.items.clear();
            state.packets = 0;
        }
        state.closed = true;
        state.items.push_back(Item::Close);
        drop(state);
        self.ready.notify_one();
    }

    /// The writer wrote and flushed what it took: the connection is writable again.
    pub(crate) fn written(&self) {
        self.lock().writing = false;
    }

    /// Waits for items and moves all of them into `out`.
    pub(crate) async fn take(&self, out: &mut Vec<Item>) {
        self.take_after(out, false).await;
    }

    /// With `written`, [`written`](Self::written) then [`take`](Self::take), taking the lock
    /// once when items are waiting: the writer's loop.
    pub(crate) async fn take_after(&self, out: &mut Vec<Item>, mut written: bool) {
        loop {
            let notified = self.ready.notified();
            {
                let mut state = self.lock();
                if written {
                    state.writing = false;
                    written = false;
                }
                if !state.items.is_empty() {
                    out.extend(state.items.drain(..));
                    state.packets = 0;
                    state.over_since = None;
                    state.writing = true;
                    return;
                }
            }
            notified.await;
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet() -> Outgoing {
        prepare(vec![Message::text("42[\"a\"]")])
    }

    #[tokio::test]
    async fn volatile_queued_only_when_nothing_is_queued_or_being_written() {
        let queue = Queue::new(8, Duration::from_secs(1));
        assert_eq!(queue.push(packet(), true), Push::Queued);
        assert_eq!(queue.push(packet(), true), Push::Dropped);
        assert_eq!(queue.push(packet(), false), Push::Queued);
        let mut out = Vec::new();
        queue.take(&mut out).await;
        assert_eq!(out.len(), 2);
        // Taken but not yet written: still not writable.
        assert_eq!(queue.push(packet(), true), Push::Dropped);
        queue.written();
        assert_eq!(queue.push(packet(), true), Push::Queued);
    }

    #[tokio::test]
    async fn over_the_limit_for_too_long_overflows() {
        let queue = Queue::new(2, Duration::from_millis(50));
        for _ in 0..3 {
            assert_eq!(queue.push(packet(), false), Push::Queued);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(queue.push(packet(), false), Push::Overflow);
        let mut out = Vec::new();
        queue.take(&mut out).await;
        assert_eq!(out.len(), 3);
        queue.written();
        assert_eq!(queue.push(packet(), true), Push::Queued);
    }

    #[tokio::test]
    async fn twice_the_limit_overflows_at_once() {
        let queue = Queue::new(2, Duration::from_secs(60));
        for _ in 0..4 {
            assert_eq!(queue.push(packet(), false), Push::Queued);
        }
        assert_eq!(queue.push(packet(), false), Push::Overflow);
    }

    #[tokio::test]
    async fn close_comes_after_queued_packets_and_refuses_more() {
        let queue = Queue::new(4, Duration::from_secs(1));
        queue.push(packet(), false);
        queue.close(false);
        assert_eq!(queue.push(packet(), false), Push::Closed);
        let mut out = Vec::new();
        queue.take(&mut out).await;
        assert!(matches!(out.as_slice(), [Item::Packet(_), Item::Close]));
    }
}
