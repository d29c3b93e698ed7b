//! The text arena: whole text messages decoded by one `receive`, sharing one allocation.

use std::collections::VecDeque;

use bytestring::ByteString;

use super::Event;
use crate::proto::error::ProtocolError;
use crate::proto::message::{Message, Utf8Bytes};

/// The most a read reserves up front for its whole text messages (they grow past it if need be).
const TEXT_ARENA_RESERVE: usize = 64 << 10;

/// The text of whole text messages decoded by the current `receive`, end to end, and the
/// length of each: one allocation for all of them, shared by their `Utf8Bytes`.
///
/// Invariant: `text` is the concatenation of texts whose lengths are `lens`, in order. The
/// connection turns them into events before it queues any other event and when `receive`
/// returns, so the order of events is the order of the frames.
#[derive(Debug, Default)]
pub(super) struct TextArena {
    text: String,
    lens: Vec<usize>,
}

impl TextArena {
    /// Whether texts are waiting to be handed out.
    #[inline(always)]
    pub(super) fn has_texts(&self) -> bool {
        !self.lens.is_empty()
    }

    /// Adds a whole text message, already validated; `room` bounds the text still to come in
    /// this `receive`.
    pub(super) fn push(&mut self, text: &str, room: usize) {
        self.reserve(text.len(), room);
        self.text.push_str(text);
        self.lens.push(text.len());
    }

    /// Adds the text `append` writes onto the arena (about `len` bytes; `room` bounds the text
    /// still to come in this `receive`) as one message, or nothing if `append` fails.
    #[inline]
    pub(super) fn push_with(
        &mut self,
        len: usize,
        room: usize,
        append: impl FnOnce(&mut String) -> Result<(), ProtocolError>,
    ) -> Result<(), ProtocolError> {
        let start = self.text.len();
        self.reserve(len, room);
        match append(&mut self.text) {
            Ok(()) => {
                self.lens.push(self.text.len() - start);
                Ok(())
            }
            Err(error) => {
                self.text.truncate(start);
                Err(error)
            }
        }
    }

    /// Makes room for a text of `len` bytes; `room` bounds the text still to come in this
    /// `receive`.
    #[inline]
    fn reserve(&mut self, len: usize, room: usize) {
        if self.text.is_empty() {
            // One allocation for every text of this read, within reason.
            self.text.reserve(room.min(TEXT_ARENA_RESERVE).max(len));
        }
    }

    /// Turns the texts gathered into message events, in order.
    #[inline(never)]
    pub(super) fn hand_out(&mut self, events: &mut VecDeque<Result<Event, ProtocolError>>) {
        let mut arena = std::mem::take(&mut self.text);
        if arena.capacity() > 2 * arena.len() {
            // Reserved for more text than came: give the rest back (glibc shrinks in place),
            // since any message kept alive keeps the whole allocation.
            arena.shrink_to_fit();
        }
        let all = ByteString::from(arena);
        let mut start = 0;
        for len in self.lens.drain(..) {
            let text = all.slice_ref(&all[start..start + len]);
            start += len;
            let message = Message::Text(Utf8Bytes::from_shared(text));
            events.push_back(Ok(Event::Message(message)));
        }
    }

    /// Gives back the capacity of an empty arena.
    pub(super) fn release_idle_memory(&mut self) {
        if self.text.is_empty() && self.text.capacity() > 0 {
            self.text = String::new();
            self.lens = Vec::new();
        }
    }
}
