//! Data messages and validated text (RFC 6455 §5.6).

use std::fmt;
use std::ops::Deref;
use std::str::Utf8Error;

use bytes::Bytes;
use bytestring::ByteString;

/// Bytes that are valid UTF-8 by construction, shared without copying.
///
/// Text messages hand out their payload as `Utf8Bytes`: the bytes are cut from the connection's
/// read buffer and checked once, so reading the text is free.
///
/// ```
/// use wsio::proto::Utf8Bytes;
/// let text = Utf8Bytes::from("héllo");
/// assert_eq!(text, "héllo");
/// assert!(Utf8Bytes::try_from(bytes::Bytes::from_static(&[0xff])).is_err());
/// ```
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Utf8Bytes(ByteString);

impl Utf8Bytes {
    /// Returns the text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Returns the underlying bytes without copying.
    pub fn into_bytes(self) -> Bytes {
        self.0.into_bytes()
    }

    /// Returns the underlying bytes.
    pub fn as_bytes(&self) -> &Bytes {
        self.0.as_bytes()
    }

    /// Wraps text that shares its allocation with other messages.
    pub(crate) fn from_shared(text: ByteString) -> Self {
        Self(text)
    }

    /// Wraps a `'static` string without copying.
    pub const fn from_static(text: &'static str) -> Self {
        Self(ByteString::from_static(text))
    }
}

impl Deref for Utf8Bytes {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Utf8Bytes {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Utf8Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Utf8Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.as_str(), f)
    }
}

impl From<String> for Utf8Bytes {
    fn from(text: String) -> Self {
        Self(ByteString::from(text))
    }
}

impl From<&str> for Utf8Bytes {
    fn from(text: &str) -> Self {
        Self(ByteString::from(text))
    }
}

impl TryFrom<Bytes> for Utf8Bytes {
    type Error = std::str::Utf8Error;

    fn try_from(bytes: Bytes) -> Result<Self, Self::Error> {
        ByteString::try_from(bytes).map(Self)
    }
}

impl From<Utf8Bytes> for Bytes {
    fn from(text: Utf8Bytes) -> Self {
        text.into_bytes()
    }
}

impl PartialEq<str> for Utf8Bytes {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Utf8Bytes {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for Utf8Bytes {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other
    }
}

/// A complete data message: text or binary.
///
/// Control frames are not messages: pings, pongs and the close handshake have their own
/// commands and events.
///
/// Strings become text messages and bytes binary ones:
///
/// ```
/// use wsio::Message;
/// assert!(Message::from("hi").is_text());
/// assert!(Message::from(&b"\x00\x01"[..]).is_binary());
/// assert_eq!(Message::from(b"hi".to_vec()).into_text().unwrap(), "hi");
/// assert!(Message::binary(vec![0xff]).into_text().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A text message, valid UTF-8.
    Text(Utf8Bytes),
    /// A binary message.
    Binary(Bytes),
}

impl Message {
    /// Creates a text message.
    pub fn text(text: impl Into<Utf8Bytes>) -> Self {
        Self::Text(text.into())
    }

    /// Creates a binary message.
    pub fn binary(data: impl Into<Bytes>) -> Self {
        Self::Binary(data.into())
    }

    /// Returns true for a text message.
    pub fn is_text(&self) -> bool {
        matches!(self, Self::Text(_))
    }

    /// Returns true for a binary message.
    pub fn is_binary(&self) -> bool {
        matches!(self, Self::Binary(_))
    }

    /// Returns the payload length in bytes.
    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    /// Returns true for an empty payload.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Returns the payload bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Text(text) => text.as_bytes(),
            Self::Binary(data) => data,
        }
    }

    /// Returns the payload, whatever the kind, without copying.
    #[doc(alias = "into_data")]
    pub fn into_payload(self) -> Bytes {
        match self {
            Self::Text(text) => text.into_bytes(),
            Self::Binary(data) => data,
        }
    }

    /// Returns the payload as text, without copying: a text message's own, or a binary
    /// message's payload once checked to be UTF-8.
    ///
    /// Fails only for a binary payload that is not valid UTF-8; the error gives it back.
    pub fn into_text(self) -> Result<Utf8Bytes, IntoTextError> {
        match self {
            Self::Text(text) => Ok(text),
            // Cloning `Bytes` shares the buffer; the clone is the payload the error returns.
            Self::Binary(data) => {
                Utf8Bytes::try_from(data.clone()).map_err(|error| IntoTextError {
                    payload: data,
                    error,
                })
            }
        }
    }

    /// Returns the text of a text message.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Self::Text(text) => Some(text),
            Self::Binary(_) => None,
        }
    }

    /// Returns the kind of message.
    pub fn kind(&self) -> MessageKind {
        match self {
            Self::Text(_) => MessageKind::Text,
            Self::Binary(_) => MessageKind::Binary,
        }
    }
}

impl From<String> for Message {
    fn from(text: String) -> Self {
        Self::text(text)
    }
}

impl From<&str> for Message {
    fn from(text: &str) -> Self {
        Self::text(text)
    }
}

impl From<Utf8Bytes> for Message {
    fn from(text: Utf8Bytes) -> Self {
        Self::Text(text)
    }
}

impl From<&[u8]> for Message {
    fn from(data: &[u8]) -> Self {
        Self::binary(Bytes::copy_from_slice(data))
    }
}

impl From<Vec<u8>> for Message {
    fn from(data: Vec<u8>) -> Self {
        Self::binary(data)
    }
}

impl From<Bytes> for Message {
    fn from(data: Bytes) -> Self {
        Self::binary(data)
    }
}

/// A binary message that is not valid UTF-8, from [`Message::into_text`]; it gives the payload
/// back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("binary message is not valid utf-8: {error}")]
pub struct IntoTextError {
    payload: Bytes,
    error: Utf8Error,
}

impl IntoTextError {
    /// Where the payload stops being UTF-8.
    pub fn utf8_error(&self) -> Utf8Error {
        self.error
    }

    /// Returns the payload of the message, unchanged.
    pub fn into_payload(self) -> Bytes {
        self.payload
    }
}

/// Whether a message is text or binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageKind {
    /// UTF-8 text (opcode 0x1).
    Text,
    /// Arbitrary bytes (opcode 0x2).
    Binary,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_make_text_and_bytes_make_binary() {
        let texts = [
            Message::from("héllo"),
            Message::from(String::from("héllo")),
            Message::from(Utf8Bytes::from("héllo")),
        ];
        for message in texts {
            assert!(message.is_text() && !message.is_binary());
            assert_eq!(message.kind(), MessageKind::Text);
            assert_eq!(message.as_text(), Some("héllo"));
            assert_eq!(message.len(), "héllo".len());
        }
        let binaries = [
            Message::from(&[0x00, 0xff][..]),
            Message::from(vec![0x00, 0xff]),
            Message::from(Bytes::from_static(&[0x00, 0xff])),
        ];
        for message in binaries {
            assert!(message.is_binary() && !message.is_text());
            assert_eq!(message.as_text(), None);
            assert_eq!(message.as_bytes(), [0x00, 0xff]);
        }
        assert!(Message::from(&[][..]).is_empty());
    }

    #[test]
    fn into_text_keeps_text_and_checks_binary() {
        assert_eq!(Message::text("abc").into_text().unwrap(), "abc");
        let payload = Bytes::from_static("ünïcode".as_bytes());
        let text = Message::binary(payload.clone()).into_text().unwrap();
        // No copy: the text is the binary payload's own buffer.
        assert_eq!(text.as_bytes().as_ptr(), payload.as_ptr());
        assert_eq!(text, "ünïcode");
    }

    #[test]
    fn into_text_of_a_binary_that_is_not_utf8_gives_the_payload_back() {
        let payload = Bytes::from_static(b"ok\xc3(");
        let error = Message::binary(payload.clone()).into_text().unwrap_err();
        assert_eq!(error.utf8_error().valid_up_to(), 2);
        assert_eq!(
            error.to_string(),
            format!("binary message is not valid utf-8: {}", error.utf8_error())
        );
        assert_eq!(error.into_payload(), payload);
    }
}
