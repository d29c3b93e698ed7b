//! CPU time of the calling thread, so that time spent waiting for a shared CPU is not counted.

use std::time::{Duration, Instant};

/// Measures elapsed time: the thread's CPU time when Linux reports it, wall time otherwise.
pub struct Stopwatch {
    start_cpu: Option<u64>,
    start_wall: Instant,
}

/// Which clock [`Stopwatch`] uses on this machine, as printed in the records.
pub fn name() -> &'static str {
    if thread_cpu_nanos().is_some() {
        "thread-cpu"
    } else {
        "wall"
    }
}

impl Stopwatch {
    /// Starts measuring now.
    pub fn start() -> Self {
        Self {
            start_cpu: thread_cpu_nanos(),
            start_wall: Instant::now(),
        }
    }

    /// Time since [`start`](Self::start).
    pub fn elapsed(&self) -> Duration {
        match (self.start_cpu, thread_cpu_nanos()) {
            (Some(start), Some(now)) => Duration::from_nanos(now.saturating_sub(start)),
            _ => self.start_wall.elapsed(),
        }
    }
}

/// Nanoseconds this thread has run on a CPU: the first field of its `schedstat`, which has
/// nanosecond resolution (the tick-based counters in `stat` have 10 ms).
fn thread_cpu_nanos() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanos = text.split_whitespace().next()?.parse().ok()?;
    // A kernel without scheduler statistics reports zero; fall back to the wall clock.
    (nanos > 0).then_some(nanos)
}
