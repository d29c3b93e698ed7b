//! Incremental UTF-8 validation for text messages that arrive in pieces (RFC 6455 §8.1).

use std::str;

/// Validates a UTF-8 stream fed in arbitrary pieces, failing at the first invalid byte.
///
/// A code point split across pieces is carried over (at most three bytes), so a text message
/// is rejected as soon as its bytes cannot begin valid UTF-8, not only when it ends.
///
/// ```
/// use wsio::proto::Utf8Validator;
/// let mut v = Utf8Validator::default();
/// assert!(v.feed(&[0xe2, 0x82]).is_ok()); // the first two bytes of '€'
/// assert!(v.feed(&[0xac]).is_ok());
/// assert!(v.finish().is_ok());
/// assert!(v.feed(&[0xe2, 0x28]).is_err()); // 0x28 cannot continue a code point
/// ```
#[derive(Debug, Clone, Default)]
pub struct Utf8Validator {
    partial: [u8; 4],
    partial_len: usize,
}

/// The stream is not valid UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidUtf8;

impl Utf8Validator {
    /// Validates the next piece of the stream.
    pub fn feed(&mut self, mut data: &[u8]) -> Result<(), InvalidUtf8> {
        while self.partial_len > 0 {
            let Some((&byte, rest)) = data.split_first() else {
                return Ok(());
            };
            data = rest;
            self.partial[self.partial_len] = byte;
            self.partial_len += 1;
            match str::from_utf8(&self.partial[..self.partial_len]) {
                Ok(_) => self.partial_len = 0,
                Err(error) if error.error_len().is_some() => return Err(InvalidUtf8),
                Err(_) => {}
            }
        }
        match str::from_utf8(data) {
            Ok(_) => Ok(()),
            Err(error) if error.error_len().is_some() => Err(InvalidUtf8),
            Err(error) => {
                let tail = &data[error.valid_up_to()..];
                self.partial[..tail.len()].copy_from_slice(tail);
                self.partial_len = tail.len();
                Ok(())
            }
        }
    }

    /// Ends the stream: fails if it stops inside a code point. Resets the validator.
    pub fn finish(&mut self) -> Result<(), InvalidUtf8> {
        let complete = self.partial_len == 0;
        self.partial_len = 0;
        if complete { Ok(()) } else { Err(InvalidUtf8) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn validate_in_pieces(data: &[u8], cuts: &[usize]) -> bool {
        let mut validator = Utf8Validator::default();
        let mut start = 0;
        for &cut in cuts {
            let cut = cut.clamp(start, data.len());
            if validator.feed(&data[start..cut]).is_err() {
                return false;
            }
            start = cut;
        }
        validator.feed(&data[start..]).is_ok() && validator.finish().is_ok()
    }

    #[test]
    fn fails_at_first_invalid_byte_before_the_end() {
        let mut validator = Utf8Validator::default();
        // "κόσμε" followed by an invalid byte, then more valid text that must not matter.
        let text = "κόσμε".as_bytes();
        assert!(validator.feed(text).is_ok());
        assert_eq!(validator.feed(&[0xed, 0xa0, 0x80]), Err(InvalidUtf8)); // surrogate
    }

    #[test]
    fn truncated_code_point_fails_at_finish() {
        let mut validator = Utf8Validator::default();
        assert!(validator.feed(&[0xf0, 0x9f, 0x98]).is_ok());
        assert_eq!(validator.finish(), Err(InvalidUtf8));
    }

    #[test]
    fn invalid_prefix_fails_without_waiting_for_more() {
        let mut validator = Utf8Validator::default();
        assert!(validator.feed(&[0xf4]).is_ok());
        assert_eq!(validator.feed(&[0x90]), Err(InvalidUtf8)); // above U+10FFFF
    }

    proptest! {
        #[test]
        fn agrees_with_std_for_any_chunking(
            data in proptest::collection::vec(any::<u8>(), 0..64),
            cuts in proptest::collection::vec(0usize..64, 0..6),
        ) {
            let mut cuts = cuts;
            cuts.sort_unstable();
            prop_assert_eq!(validate_in_pieces(&data, &cuts), str::from_utf8(&data).is_ok());
        }

        #[test]
        fn valid_text_passes_for_any_chunking(
            text in "\\PC{0,40}",
            cuts in proptest::collection::vec(0usize..160, 0..6),
        ) {
            let mut cuts = cuts;
            cuts.sort_unstable();
            prop_assert!(validate_in_pieces(text.as_bytes(), &cuts));
        }
    }
}
