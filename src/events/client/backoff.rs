//! The delay before each reconnection attempt: exponential, capped, with random jitter.

use std::time::Duration;

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

/// How the client reconnects after losing the connection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Reconnection {
    /// Whether it reconnects at all.
    pub enabled: bool,
    /// The most attempts in a row before it gives up.
    pub attempts: u32,
    /// The delay before the first attempt; it doubles with each attempt.
    pub delay: Duration,
    /// The longest delay.
    pub delay_max: Duration,
    /// How far (as a fraction, `0.0..=1.0`) a delay may deviate either way at random, so many
    /// clients dropped at once do not come back at once.
    pub randomization: f64,
}

impl Default for Reconnection {
    fn default() -> Self {
        Self {
            enabled: true,
            attempts: 20,
            delay: Duration::from_secs(1),
            delay_max: Duration::from_secs(5),
            randomization: 0.5,
        }
    }
}

/// Computes the delays of one run of reconnection attempts.
#[derive(Debug)]
pub(crate) struct Backoff {
    policy: Reconnection,
    rng: ChaCha8Rng,
}

impl Backoff {
    /// Returns a backoff for `policy`, seeded from the OS.
    pub fn new(policy: Reconnection) -> Self {
        Self {
            policy,
            rng: ChaCha8Rng::from_os_rng(),
        }
    }

    /// The delay before attempt `attempt` (counting from 1): `delay * 2^(attempt-1)`, moved by
    /// up to `randomization` of itself either way, then capped at `delay_max`.
    pub fn delay(&mut self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(31);
        let base = self.policy.delay.saturating_mul(1 << exponent);
        let randomization = self.policy.randomization.clamp(0.0, 1.0);
        let unit = f64::from(self.rng.next_u32()) / f64::from(u32::MAX);
        let deviation = base.mul_f64(randomization * unit);
        let moved = match self.rng.next_u32() & 1 {
            0 => base.saturating_sub(deviation),
            _ => base.saturating_add(deviation),
        };
        moved.min(self.policy.delay_max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(randomization: f64) -> Reconnection {
        Reconnection {
            delay: Duration::from_millis(100),
            delay_max: Duration::from_millis(1000),
            randomization,
            ..Reconnection::default()
        }
    }

    #[test]
    fn without_jitter_the_delay_doubles_up_to_the_cap() {
        let mut backoff = Backoff::new(policy(0.0));
        let delays: Vec<u128> = (1..=6).map(|n| backoff.delay(n).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(backoff.delay(u32::MAX), Duration::from_millis(1000));
    }

    #[test]
    fn jitter_stays_within_the_randomization_factor_and_varies() {
        let mut backoff = Backoff::new(policy(0.5));
        let delays: Vec<Duration> = (0..200).map(|_| backoff.delay(2)).collect();
        for delay in &delays {
            assert!(
                (100..=300).contains(&delay.as_millis()),
                "{delay:?} outside 200 ms ± 50 %"
            );
        }
        let distinct: std::collections::HashSet<_> = delays.iter().collect();
        assert!(
            distinct.len() > 10,
            "jitter produced {} values",
            distinct.len()
        );
    }
}
