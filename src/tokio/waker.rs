//! The wakers of a split connection: one per half, and the one that wakes both.

use std::sync::{Arc, Mutex};

use crate::lock::lock;
use std::task::{Context, Wake, Waker};

/// Which half of the application polls: the reader or the writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Side {
    Read,
    Write,
}

impl Side {
    pub(super) fn index(self) -> usize {
        match self {
            Self::Read => 0,
            Self::Write => 1,
        }
    }

    pub(super) fn other(self) -> Self {
        match self {
            Self::Read => Self::Write,
            Self::Write => Self::Read,
        }
    }
}

/// The wakers of a split connection: the tasks of both halves, and the waker that wakes them both.
#[derive(Debug)]
pub(super) struct SplitWakers {
    pub(super) wakers: Arc<Wakers>,
    /// Wakes every task waiting on this connection; given to the stream and the timers.
    pub(super) waker: Waker,
}

impl SplitWakers {
    pub(super) fn new() -> Self {
        let wakers = Arc::new(Wakers::default());
        Self {
            waker: Waker::from(Arc::clone(&wakers)),
            wakers,
        }
    }
}

/// The tasks waiting on one connection, one per side.
///
/// Both sides may poll the same stream and timers, which keep only the last waker they were
/// given; they are given this one instead, which wakes both sides, so neither loses its wakeup
/// to the other.
#[derive(Debug, Default)]
pub(super) struct Wakers {
    pub(super) slots: Mutex<[Option<Waker>; 2]>,
}

impl Wakers {
    pub(super) fn register(&self, side: Side, waker: &Waker) {
        let mut slots = lock(&self.slots);
        let slot = &mut slots[side.index()];
        if !slot
            .as_ref()
            .is_some_and(|current| current.will_wake(waker))
        {
            *slot = Some(waker.clone());
        }
    }

    pub(super) fn wake_side(&self, side: Side) {
        let waker = lock(&self.slots)[side.index()].take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl Wake for Wakers {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let taken = {
            let mut slots = lock(&self.slots);
            [slots[0].take(), slots[1].take()]
        };
        for waker in taken.into_iter().flatten() {
            waker.wake();
        }
    }
}

/// The waker the stream and the timers get: the shared one once split, else the caller's.
pub(super) fn io_waker<'a>(split: &'a Option<SplitWakers>, cx: &'a Context<'_>) -> &'a Waker {
    split.as_ref().map_or(cx.waker(), |split| &split.waker)
}
