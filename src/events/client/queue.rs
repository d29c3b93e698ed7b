//! The retry queue of one namespace (socket.io-client's `retries`): emits go out one at a time,
//! each waiting for its acknowledgement; an attempt that times out is sent again, under a new
//! ack id, until the retries run out.
//!
//! Invariants: only the head is ever on the wire, so the queue keeps the emit order; an ack id
//! answers the head only while that attempt is the one on the wire (a late answer to an earlier
//! attempt is ignored, as socket.io-client forgets the ids of timed-out attempts); the head
//! leaves the queue exactly once, with its reply sent.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use super::ClientError;
use super::state::AckReply;
use crate::events::Args;

/// Emits waiting to be acknowledged, oldest first.
#[derive(Default)]
pub(crate) struct RetryQueue {
    items: VecDeque<Queued>,
}

/// One emit of the queue.
struct Queued {
    event: String,
    args: Args,
    /// Where the answer goes; `None` for a plain `emit`.
    reply: Option<AckReply>,
    /// How long each attempt waits for its acknowledgement.
    timeout: Duration,
    /// How many times it is sent again after the first attempt failed.
    retries: u32,
    /// Attempts sent so far.
    tries: u32,
    /// The attempt on the wire: its ack id and when it times out.
    in_flight: Option<(u64, Instant)>,
}

/// An attempt to write now.
pub(crate) struct Attempt {
    pub id: u64,
    pub event: String,
    pub args: Args,
}

impl RetryQueue {
    /// How many emits wait in the queue, the one on the wire included.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Adds an emit at the end.
    pub fn push(
        &mut self,
        event: String,
        args: Args,
        reply: Option<AckReply>,
        timeout: Duration,
        retries: u32,
    ) {
        self.items.push_back(Queued {
            event,
            args,
            reply,
            timeout,
            retries,
            tries: 0,
            in_flight: None,
        });
    }

    /// The head's next attempt, when none is on the wire: it takes ack id `next_id` (which is
    /// then advanced) and times out `timeout` after `now`. Call only while the namespace is
    /// connected.
    pub fn poll_attempt(&mut self, next_id: &mut u64, now: Instant) -> Option<Attempt> {
        let head = self.items.front_mut()?;
        if head.in_flight.is_some() {
            return None;
        }
        let id = *next_id;
        *next_id = next_id.wrapping_add(1);
        head.tries = head.tries.saturating_add(1);
        head.in_flight = Some((id, now + head.timeout));
        Some(Attempt {
            id,
            event: head.event.clone(),
            args: head.args.clone(),
        })
    }

    /// An acknowledgement arrived: when it answers the attempt on the wire, the head is done
    /// and the reply sent; otherwise the arguments are handed back.
    pub fn acknowledge(&mut self, id: u64, args: Args) -> Option<Args> {
        let answers = matches!(
            self.items.front(),
            Some(Queued { in_flight: Some((sent, _)), .. }) if *sent == id
        );
        if !answers {
            return Some(args);
        }
        if let Some(reply) = self.items.pop_front().and_then(|head| head.reply) {
            let _ = reply.send(Ok(args));
        }
        None
    }

    /// When the attempt on the wire times out.
    pub fn deadline(&self) -> Option<Instant> {
        self.items.front()?.in_flight.map(|(_, deadline)| deadline)
    }

    /// Fails the attempt on the wire if its time is up at `now`.
    pub fn expire(&mut self, now: Instant) {
        if self.deadline().is_some_and(|deadline| deadline <= now) {
            self.fail_attempt(|head| ClientError::RetriesExhausted {
                attempts: head.tries,
                timeout: head.timeout,
            });
        }
    }

    /// The connection dropped: the attempt on the wire failed; the head is sent again once the
    /// namespace is connected, if it has retries left.
    pub fn on_lost(&mut self) {
        self.fail_attempt(|_| ClientError::Disconnected);
    }

    /// Ends every emit with `error`.
    pub fn fail_all(&mut self, error: &ClientError) {
        for item in self.items.drain(..) {
            if let Some(reply) = item.reply {
                let _ = reply.send(Err(error.clone()));
            }
        }
    }

    /// The attempt on the wire failed: the head gives up past its retries.
    fn fail_attempt(&mut self, error: impl FnOnce(&Queued) -> ClientError) {
        let Some(head) = self.items.front_mut() else {
            return;
        };
        if head.in_flight.take().is_none() || head.tries <= head.retries {
            return;
        }
        let error = error(head);
        if let Some(reply) = self.items.pop_front().and_then(|head| head.reply) {
            let _ = reply.send(Err(error));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::oneshot;

    fn queue_one(
        queue: &mut RetryQueue,
        retries: u32,
    ) -> oneshot::Receiver<Result<Args, ClientError>> {
        let (reply, answer) = oneshot::channel();
        let timeout = Duration::from_millis(100);
        queue.push("e".into(), Args::default(), Some(reply), timeout, retries);
        answer
    }

    #[test]
    fn retries_then_fails_with_the_attempt_count() {
        let mut queue = RetryQueue::default();
        let mut answer = queue_one(&mut queue, 2);
        let (mut next_id, now) = (0, Instant::now());
        for expected in 0..3 {
            let attempt = queue.poll_attempt(&mut next_id, now).unwrap();
            assert_eq!(attempt.id, expected);
            assert!(
                queue.poll_attempt(&mut next_id, now).is_none(),
                "one at a time"
            );
            queue.expire(now + Duration::from_millis(99));
            assert!(queue.deadline().is_some(), "not yet timed out");
            queue.expire(now + Duration::from_millis(100));
        }
        assert_eq!(queue.len(), 0);
        match answer.try_recv().unwrap() {
            Err(ClientError::RetriesExhausted { attempts: 3, .. }) => {}
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn only_the_attempt_on_the_wire_is_answered() {
        let mut queue = RetryQueue::default();
        let mut answer = queue_one(&mut queue, 1);
        let mut second = queue_one(&mut queue, 1);
        let (mut next_id, now) = (7, Instant::now());
        let first = queue.poll_attempt(&mut next_id, now).unwrap();
        queue.expire(now + Duration::from_secs(1));
        let retry = queue.poll_attempt(&mut next_id, now).unwrap();
        assert_eq!((first.id, retry.id), (7, 8));
        assert!(
            queue.acknowledge(7, Args::default()).is_some(),
            "late answer ignored"
        );
        assert!(queue.acknowledge(8, Args::default()).is_none());
        assert!(answer.try_recv().unwrap().is_ok());
        assert!(second.try_recv().is_err(), "the next emit waits its turn");
        assert_eq!(queue.poll_attempt(&mut next_id, now).unwrap().id, 9);
    }

    #[test]
    fn a_lost_connection_costs_one_attempt() {
        let mut queue = RetryQueue::default();
        let mut answer = queue_one(&mut queue, 1);
        let (mut next_id, now) = (0, Instant::now());
        queue.on_lost();
        assert_eq!(queue.len(), 1, "not sent yet: nothing lost");
        queue.poll_attempt(&mut next_id, now).unwrap();
        queue.on_lost();
        queue.poll_attempt(&mut next_id, now).unwrap();
        queue.on_lost();
        assert!(matches!(
            answer.try_recv().unwrap(),
            Err(ClientError::Disconnected)
        ));
    }
}
