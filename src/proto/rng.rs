//! The random source for handshake keys and masking keys (RFC 6455 §4.1, §5.3).

use rand_chacha::ChaCha12Rng;
use rand_core::{RngCore, SeedableRng};

/// A seedable, unpredictable generator for client nonces and frame masks.
///
/// The core never reaches for a global random source: a client connection owns one `Rng`, which
/// the caller seeds from the operating system ([`Rng::from_os`]) or from fixed bytes
/// ([`Rng::from_seed`]) so that tests and fuzz targets are byte-exact. ChaCha12 keeps masks
/// unpredictable to scripts that choose payloads, which is what §10.3 asks of them.
#[derive(Debug, Clone)]
pub struct Rng(ChaCha12Rng);

impl Rng {
    /// Seeds from the operating system's entropy source.
    ///
    /// # Panics
    ///
    /// Panics if the operating system has no entropy source to offer.
    pub fn from_os() -> Self {
        Self(ChaCha12Rng::from_os_rng())
    }

    /// Seeds deterministically: the same seed gives the same keys and masks.
    ///
    /// ```
    /// use wsio::proto::Rng;
    /// let mut a = Rng::from_seed([7; 32]);
    /// let mut b = Rng::from_seed([7; 32]);
    /// assert_eq!(a.mask(), b.mask());
    /// ```
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self(ChaCha12Rng::from_seed(seed))
    }

    /// Returns a fresh 4-byte masking key.
    pub fn mask(&mut self) -> [u8; 4] {
        self.0.next_u32().to_le_bytes()
    }

    /// Returns a fresh 16-byte handshake nonce (the raw bytes behind `Sec-WebSocket-Key`).
    pub fn nonce(&mut self) -> [u8; 16] {
        let mut nonce = [0; 16];
        self.0.fill_bytes(&mut nonce);
        nonce
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn different_seeds_give_different_streams() {
        let mut a = Rng::from_seed([1; 32]);
        let mut b = Rng::from_seed([2; 32]);
        assert_ne!(a.nonce(), b.nonce());
    }

    #[test]
    fn os_seeded_generators_differ() {
        assert_ne!(Rng::from_os().nonce(), Rng::from_os().nonce());
    }
}
