//! Incremental UTF-8 validation for text messages that arrive in pieces (RFC 6455 §8.1).
//!
//! The bulk of every piece is checked with SIMD (`simdutf8`); only a code point split across
//! pieces (at most four bytes) goes through `std`.

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
    pub fn feed(&mut self, data: &[u8]) -> Result<(), InvalidUtf8> {
        self.feed_with(data, |_| {})
    }

    /// Validates the next piece of the stream and hands `sink` the text it completes, in order:
    /// the code point carried over from the previous piece, if this piece completes it, then
    /// every whole code point of this piece. Nothing is handed out past an invalid byte.
    ///
    /// Copying text out through `sink` builds a `String` without validating it a second time.
    pub(crate) fn feed_with(
        &mut self,
        mut data: &[u8],
        mut sink: impl FnMut(&str),
    ) -> Result<(), InvalidUtf8> {
        while self.partial_len > 0 {
            let Some((&byte, rest)) = data.split_first() else {
                return Ok(());
            };
            data = rest;
            self.partial[self.partial_len] = byte;
            self.partial_len += 1;
            match str::from_utf8(&self.partial[..self.partial_len]) {
                Ok(text) => {
                    sink(text);
                    self.partial_len = 0;
                }
                Err(error) if error.error_len().is_some() => return Err(InvalidUtf8),
                Err(_) => {}
            }
        }
        let (whole, tail) = data.split_at(incomplete_tail_start(data));
        let text = simdutf8::basic::from_utf8(whole).map_err(|_| InvalidUtf8)?;
        // The tail is a lead byte and too few continuation bytes; it must still be able to
        // become a code point, or the stream fails now rather than at the next piece.
        if let Err(error) = str::from_utf8(tail)
            && error.error_len().is_some()
        {
            return Err(InvalidUtf8);
        }
        sink(text);
        self.partial[..tail.len()].copy_from_slice(tail);
        self.partial_len = tail.len();
        Ok(())
    }

    /// Ends the stream: fails if it stops inside a code point. Resets the validator.
    pub fn finish(&mut self) -> Result<(), InvalidUtf8> {
        let complete = self.partial_len == 0;
        self.partial_len = 0;
        if complete { Ok(()) } else { Err(InvalidUtf8) }
    }
}

/// Where a code point that `data` starts but does not finish begins, or `data.len()` if it ends
/// on a code point boundary (or on bytes that are invalid anyway, which validation reports).
fn incomplete_tail_start(data: &[u8]) -> usize {
    // A code point is at most four bytes: its lead byte is among the last three if it is cut.
    for back in 1..=data.len().min(3) {
        let index = data.len() - back;
        let byte = data[index];
        if byte & 0b1100_0000 == 0b1000_0000 {
            continue; // a continuation byte: the lead is further back
        }
        let needed = match byte {
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF7 => 4,
            _ => 1,
        };
        return if back < needed { index } else { data.len() };
    }
    data.len()
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
        fn sink_receives_exactly_the_valid_text(
            text in "\\PC{0,200}",
            cuts in proptest::collection::vec(0usize..800, 0..6),
        ) {
            let mut cuts = cuts;
            cuts.sort_unstable();
            let data = text.as_bytes();
            let mut validator = Utf8Validator::default();
            let mut copied = String::new();
            let mut start = 0;
            for cut in cuts.into_iter().chain([data.len()]) {
                let cut = cut.clamp(start, data.len());
                prop_assert!(validator.feed_with(&data[start..cut], |piece| copied.push_str(piece)).is_ok());
                start = cut;
            }
            prop_assert!(validator.finish().is_ok());
            prop_assert_eq!(copied, text);
        }

        #[test]
        fn agrees_with_std_on_long_inputs(
            data in proptest::collection::vec(prop_oneof![
                4 => 0x20u8..0x7f,
                1 => 0x80u8..0xc0,
                1 => 0xc0u8..=0xff,
            ], 0..300),
            cuts in proptest::collection::vec(0usize..300, 0..6),
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
