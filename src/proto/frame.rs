//! Frame decoding and encoding (RFC 6455 §5.2).

use bytes::{Buf, Bytes, BytesMut};

use super::Role;
use super::error::ProtocolError;
use super::mask::{apply_mask, extend_payload};

/// A frame opcode (RFC 6455 §5.2, §11.8). The reserved values are not representable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpCode {
    /// 0x0: continues a fragmented data message.
    Continuation,
    /// 0x1: the first frame of a text message.
    Text,
    /// 0x2: the first frame of a binary message.
    Binary,
    /// 0x8: the closing handshake.
    Close,
    /// 0x9: a ping.
    Ping,
    /// 0xA: a pong.
    Pong,
}

impl OpCode {
    /// Returns the opcode for its 4-bit wire value, or `None` for the reserved values.
    pub fn from_u8(value: u8) -> Option<Self> {
        Some(match value {
            0x0 => Self::Continuation,
            0x1 => Self::Text,
            0x2 => Self::Binary,
            0x8 => Self::Close,
            0x9 => Self::Ping,
            0xA => Self::Pong,
            _ => return None,
        })
    }

    /// Returns the 4-bit wire value.
    pub fn as_u8(self) -> u8 {
        match self {
            Self::Continuation => 0x0,
            Self::Text => 0x1,
            Self::Binary => 0x2,
            Self::Close => 0x8,
            Self::Ping => 0x9,
            Self::Pong => 0xA,
        }
    }

    /// Returns true for close, ping and pong.
    pub fn is_control(self) -> bool {
        self.as_u8() & 0x8 != 0
    }
}

/// A decoded frame: the mask and length exist only on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// True on the last frame of a message (always true on control frames).
    pub fin: bool,
    /// The RSV1 bit, meaningful only with a negotiated extension (permessage-deflate).
    pub rsv1: bool,
    /// The opcode.
    pub opcode: OpCode,
    /// The unmasked payload.
    pub payload: Bytes,
}

impl Frame {
    /// Creates an unfragmented frame without extension bits.
    pub fn new(opcode: OpCode, payload: impl Into<Bytes>) -> Self {
        Self {
            fin: true,
            rsv1: false,
            opcode,
            payload: payload.into(),
        }
    }

    /// Appends the wire form of this frame to `dst`, masked with `mask` when given.
    ///
    /// ```
    /// use wsio::proto::{Frame, OpCode};
    /// let mut wire = bytes::BytesMut::new();
    /// Frame::new(OpCode::Text, "Hello").encode(Some([0x37, 0xfa, 0x21, 0x3d]), &mut wire);
    /// assert_eq!(&wire[..], [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]);
    /// ```
    pub fn encode(&self, mask: Option<[u8; 4]>, dst: &mut BytesMut) {
        let header = FrameHeader {
            fin: self.fin,
            rsv1: self.rsv1,
            opcode: self.opcode,
            mask,
            payload_len: self.payload.len() as u64,
        };
        header.encode(dst);
        let start = dst.len();
        dst.extend_from_slice(&self.payload);
        if let Some(key) = mask {
            apply_mask(&mut dst[start..], key, 0);
        }
    }
}

/// A frame header as it appears on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// The FIN bit.
    pub fin: bool,
    /// The RSV1 bit.
    pub rsv1: bool,
    /// The opcode.
    pub opcode: OpCode,
    /// The masking key, present on client-to-server frames.
    pub mask: Option<[u8; 4]>,
    /// The declared payload length.
    pub payload_len: u64,
}

impl FrameHeader {
    /// The longest header: 2 bytes, an 8-byte length and a 4-byte mask.
    pub const MAX_LEN: usize = 14;

    /// Appends the header in its minimal length encoding.
    pub fn encode(&self, dst: &mut BytesMut) {
        let (bytes, len) = self.to_bytes();
        dst.extend_from_slice(&bytes[..len]);
    }

    /// The header in its minimal length encoding: the first `len` bytes of the array. Built on
    /// the stack so that queueing a frame appends it in one copy.
    pub(crate) fn to_bytes(self) -> ([u8; Self::MAX_LEN], usize) {
        let mut bytes = [0u8; Self::MAX_LEN];
        bytes[0] = (self.fin as u8) << 7 | (self.rsv1 as u8) << 6 | self.opcode.as_u8();
        let mask_bit = if self.mask.is_some() { 0b1000_0000 } else { 0 };
        let mut len = match self.payload_len {
            short @ 0..=125 => {
                bytes[1] = mask_bit | short as u8;
                2
            }
            medium @ 126..=0xFFFF => {
                bytes[1] = mask_bit | 126;
                bytes[2..4].copy_from_slice(&(medium as u16).to_be_bytes());
                4
            }
            long => {
                bytes[1] = mask_bit | 127;
                bytes[2..10].copy_from_slice(&long.to_be_bytes());
                10
            }
        };
        if let Some(key) = self.mask {
            bytes[len..len + 4].copy_from_slice(&key);
            len += 4;
        }
        (bytes, len)
    }
}

/// What a [`FrameDecoder`] checks frames against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecoderLimits {
    /// The largest payload accepted in one frame.
    pub max_frame_size: usize,
    /// Whether RSV1 may be set (an extension such as permessage-deflate was negotiated).
    pub allow_rsv1: bool,
}

/// An incremental frame decoder for one direction of one connection.
///
/// Feed it the connection's read buffer: it parses a header once, rejects a bad one before any
/// of its payload is buffered, unmasks payload bytes in place as they arrive and finally hands the
/// payload out with `split_to(..).freeze()`, so no payload is ever copied.
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    /// The role of the endpoint that reads: a server expects masked frames, a client unmasked.
    role: Role,
    limits: DecoderLimits,
    current: Option<InProgress>,
}

#[derive(Debug, Clone, Copy)]
struct InProgress {
    header: FrameHeader,
    /// Payload bytes already handed out (streaming) before the ones at the front of the buffer.
    taken: u64,
    /// Payload bytes at the front of the buffer that are already unmasked.
    unmasked: usize,
    /// Of those, the ones `unmask_arrived` has reported (as new or not): the rest were
    /// unmasked as they were copied in (`extend_arrived`) and are still new to the caller.
    reported: usize,
}

impl InProgress {
    fn remaining(&self) -> u64 {
        self.header.payload_len - self.taken
    }
}

impl FrameDecoder {
    /// Creates a decoder for frames received by an endpoint of `role`.
    pub fn new(role: Role, limits: DecoderLimits) -> Self {
        Self {
            role,
            limits,
            current: None,
        }
    }

    /// Changes what frames are checked against; takes effect from the next header.
    pub fn set_limits(&mut self, limits: DecoderLimits) {
        self.limits = limits;
    }

    /// Decodes the next complete frame, or returns `Ok(None)` until enough bytes have arrived.
    ///
    /// ```
    /// use wsio::proto::{DecoderLimits, FrameDecoder, OpCode, Role};
    /// let limits = DecoderLimits { max_frame_size: 1 << 20, allow_rsv1: false };
    /// let mut decoder = FrameDecoder::new(Role::Server, limits);
    /// let mut buf = bytes::BytesMut::from(&[0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f][..]);
    /// assert!(decoder.decode(&mut buf)?.is_none());
    /// buf.extend_from_slice(&[0x9f, 0x4d, 0x51, 0x58]);
    /// let frame = decoder.decode(&mut buf)?.unwrap();
    /// assert_eq!((frame.opcode, &frame.payload[..]), (OpCode::Text, &b"Hello"[..]));
    /// # Ok::<(), wsio::proto::ProtocolError>(())
    /// ```
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, ProtocolError> {
        if self.decode_header(buf)?.is_none() && self.current.is_none() {
            return Ok(None);
        }
        self.unmask_arrived(buf);
        Ok(self.take_frame(buf).map(|(header, payload)| Frame {
            fin: header.fin,
            rsv1: header.rsv1,
            opcode: header.opcode,
            payload,
        }))
    }

    /// Parses the next header if none is in progress, consuming its bytes from `buf`.
    ///
    /// Returns the header only when it was parsed by this call.
    pub(crate) fn decode_header(
        &mut self,
        buf: &mut BytesMut,
    ) -> Result<Option<FrameHeader>, ProtocolError> {
        if self.current.is_some() {
            return Ok(None);
        }
        let Some((header, header_len)) = self.peek_header(buf)? else {
            return Ok(None);
        };
        buf.advance(header_len);
        self.begin_frame(header);
        Ok(Some(header))
    }

    /// Parses and checks the header at the front of `data` without consuming anything; returns
    /// it and its length, or `Ok(None)` until it is complete. Call between frames only.
    pub(crate) fn peek_header(
        &self,
        data: &[u8],
    ) -> Result<Option<(FrameHeader, usize)>, ProtocolError> {
        debug_assert!(self.current.is_none(), "a frame is in progress");
        parse_header(data, self.role, self.limits)
    }

    /// Starts the frame of a header from [`peek_header`](Self::peek_header) whose bytes the
    /// caller consumed: its payload comes next.
    pub(crate) fn begin_frame(&mut self, header: FrameHeader) {
        self.current = Some(InProgress {
            header,
            taken: 0,
            unmasked: 0,
            reported: 0,
        });
    }

    /// The header of the frame in progress, if any.
    pub(crate) fn current_header(&self) -> Option<&FrameHeader> {
        self.current.as_ref().map(|current| &current.header)
    }

    /// Unmasks the payload bytes of the frame in progress that arrived since the last call and
    /// returns how many bytes at the front of `buf` are unmasked, and how many of those are new
    /// since the last call (including those `extend_arrived` unmasked).
    pub(crate) fn unmask_arrived(&mut self, buf: &mut BytesMut) -> (usize, usize) {
        let Some(current) = self.current.as_mut() else {
            return (0, 0);
        };
        let available =
            usize::try_from(current.remaining()).map_or(buf.len(), |n| n.min(buf.len()));
        let fresh = available - current.reported;
        if let Some(key) = current.header.mask {
            let offset = (current.taken as usize).wrapping_add(current.unmasked);
            apply_mask(&mut buf[current.unmasked..available], key, offset);
        }
        current.unmasked = available;
        current.reported = available;
        (available, fresh)
    }

    /// Appends `data`, the next payload bytes of the frame in progress (no more than it still
    /// needs), to `buf`: unmasked on the way when everything `buf` holds is already unmasked
    /// payload of this frame, as it is after [`unmask_arrived`](Self::unmask_arrived); as they
    /// are otherwise, for `unmask_arrived` to do. Either way the next `unmask_arrived` reports
    /// them as new.
    pub(crate) fn extend_arrived(&mut self, buf: &mut BytesMut, data: &[u8]) {
        match self.current.as_mut() {
            Some(current) if current.unmasked == buf.len() => {
                debug_assert!(
                    (current.unmasked + data.len()) as u64 <= current.remaining(),
                    "more bytes than the frame has"
                );
                let offset = (current.taken as usize).wrapping_add(current.unmasked);
                extend_payload(buf, data, current.header.mask, offset);
                current.unmasked += data.len();
            }
            _ => buf.extend_from_slice(data),
        }
    }

    /// The header of the data or control frame in progress and how many of its payload bytes
    /// have not been taken yet (some may be in the buffer).
    pub(crate) fn payload_remaining(&self) -> Option<(&FrameHeader, u64)> {
        let current = self.current.as_ref()?;
        Some((&current.header, current.remaining()))
    }

    /// Counts `n` payload bytes of the frame in progress as taken straight from the transport,
    /// bypassing the buffer (which must hold none of the frame), and returns the masking offset
    /// of the first of them and whether they end the frame.
    pub(crate) fn take_direct(&mut self, n: usize) -> (usize, bool) {
        let current = self.current.as_mut().expect("a frame in progress");
        debug_assert_eq!(current.unmasked, 0, "bytes of the frame are buffered");
        let offset = current.taken as usize;
        current.taken += n as u64;
        let done = current.remaining() == 0;
        if done {
            self.current = None;
        }
        (offset, done)
    }

    /// Takes the whole payload of a frame whose header was just decoded, unmasked, if all of it
    /// is in `buf`.
    // Inlined into `Connection::process`: returned through the stack instead, its `Bytes` was
    // read back with a wider load than the stores that wrote it, a stall on every message.
    #[inline]
    pub(crate) fn take_whole(&mut self, buf: &mut BytesMut) -> Option<Bytes> {
        let current = self.current?;
        let len = usize::try_from(current.header.payload_len).ok()?;
        if current.taken != 0 || current.unmasked != 0 || buf.len() < len {
            return None;
        }
        self.current = None;
        let mut payload = buf.split_to(len);
        if let Some(key) = current.header.mask {
            apply_mask(&mut payload, key, 0);
        }
        Some(payload.freeze())
    }

    /// `take_whole` for a payload that is copied out: unmasked where it lies in `buf` and
    /// handed to `copy`, then dropped from `buf`, rather than split off as shared `Bytes` (a
    /// reference count taken and given back for each message).
    #[inline]
    pub(crate) fn take_whole_copied<R>(
        &mut self,
        buf: &mut BytesMut,
        copy: impl FnOnce(&[u8]) -> R,
    ) -> Option<R> {
        let current = self.current?;
        let len = usize::try_from(current.header.payload_len).ok()?;
        if current.taken != 0 || current.unmasked != 0 || buf.len() < len {
            return None;
        }
        self.current = None;
        let payload = &mut buf[..len];
        if let Some(key) = current.header.mask {
            apply_mask(payload, key, 0);
        }
        let copied = copy(payload);
        buf.advance(len);
        Some(copied)
    }

    /// Takes the whole payload of the frame in progress once all of it is unmasked.
    pub(crate) fn take_frame(&mut self, buf: &mut BytesMut) -> Option<(FrameHeader, Bytes)> {
        let current = self.current?;
        if current.unmasked as u64 != current.remaining() {
            return None;
        }
        self.current = None;
        Some((current.header, buf.split_to(current.unmasked).freeze()))
    }

    /// Takes the unmasked payload bytes at the front of `buf` (streaming), and whether they end
    /// the frame.
    pub(crate) fn take_partial(
        &mut self,
        buf: &mut BytesMut,
    ) -> Option<(FrameHeader, Bytes, bool)> {
        let unmasked = self.current?.unmasked;
        let chunk = buf.split_to(unmasked).freeze();
        let (header, done) = self.consume_unmasked();
        Some((header, chunk, done))
    }

    /// Drops the unmasked payload bytes at the front of `buf` (the caller copied them out),
    /// and returns the header and whether they ended the frame.
    pub(crate) fn skip_unmasked(&mut self, buf: &mut BytesMut) -> Option<(FrameHeader, bool)> {
        buf.advance(self.current?.unmasked);
        Some(self.consume_unmasked())
    }

    /// Counts the unmasked bytes of the frame in progress as taken out of the buffer.
    fn consume_unmasked(&mut self) -> (FrameHeader, bool) {
        let current = self.current.as_mut().expect("a frame in progress");
        current.taken += current.unmasked as u64;
        current.unmasked = 0;
        current.reported = 0;
        let header = current.header;
        let done = current.remaining() == 0;
        if done {
            self.current = None;
        }
        (header, done)
    }
}

/// Parses and checks a header at the front of `buf`; `Ok(None)` means more bytes are needed.
fn parse_header(
    buf: &[u8],
    role: Role,
    limits: DecoderLimits,
) -> Result<Option<(FrameHeader, usize)>, ProtocolError> {
    let [first, second, ..] = *buf else {
        return Ok(None);
    };
    let fin = first & 0b1000_0000 != 0;
    let rsv1 = first & 0b0100_0000 != 0;
    if first & 0b0011_0000 != 0 || (rsv1 && !limits.allow_rsv1) {
        return Err(ProtocolError::ReservedBits);
    }
    let opcode =
        OpCode::from_u8(first & 0x0F).ok_or(ProtocolError::ReservedOpCode(first & 0x0F))?;
    let masked = second & 0b1000_0000 != 0;
    let short_len = second & 0x7F;
    if opcode.is_control() {
        if !fin {
            return Err(ProtocolError::FragmentedControlFrame);
        }
        if short_len > 125 {
            return Err(ProtocolError::ControlFrameTooLong);
        }
        if rsv1 {
            return Err(ProtocolError::ReservedBits);
        }
    }
    match (role, masked) {
        (Role::Server, false) => return Err(ProtocolError::UnmaskedClientFrame),
        (Role::Client, true) => return Err(ProtocolError::MaskedServerFrame),
        _ => {}
    }
    let (payload_len, mut len) = match short_len {
        126 => {
            let Some(bytes) = buf.get(2..4) else {
                return Ok(None);
            };
            let len = u64::from(u16::from_be_bytes([bytes[0], bytes[1]]));
            if len < 126 {
                return Err(ProtocolError::NonMinimalLength);
            }
            (len, 4)
        }
        127 => {
            let Some(bytes) = buf.get(2..10) else {
                return Ok(None);
            };
            let len = u64::from_be_bytes(bytes.try_into().expect("8 bytes"));
            if len >> 63 != 0 {
                return Err(ProtocolError::LengthMsbSet);
            }
            if len <= 0xFFFF {
                return Err(ProtocolError::NonMinimalLength);
            }
            (len, 10)
        }
        short => (u64::from(short), 2),
    };
    if payload_len > limits.max_frame_size as u64 {
        return Err(ProtocolError::FrameTooBig {
            size: payload_len,
            limit: limits.max_frame_size,
        });
    }
    let mask = if masked {
        let Some(bytes) = buf.get(len..len + 4) else {
            return Ok(None);
        };
        len += 4;
        Some(bytes.try_into().expect("4 bytes"))
    } else {
        None
    };
    Ok(Some((
        FrameHeader {
            fin,
            rsv1,
            opcode,
            mask,
            payload_len,
        },
        len,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const LIMITS: DecoderLimits = DecoderLimits {
        max_frame_size: 1 << 24,
        allow_rsv1: false,
    };

    fn decode_all(role: Role, wire: &[u8]) -> Result<Option<Frame>, ProtocolError> {
        let mut buf = BytesMut::from(wire);
        FrameDecoder::new(role, LIMITS).decode(&mut buf)
    }

    /// RFC 6455 §5.7.
    #[test]
    fn rfc_examples() {
        let hello = Frame::new(OpCode::Text, "Hello");
        assert_eq!(
            decode_all(Role::Client, &[0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]),
            Ok(Some(hello.clone()))
        );
        let masked = [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        assert_eq!(decode_all(Role::Server, &masked), Ok(Some(hello)));
        let fragments = [
            [0x01, 0x03, 0x48, 0x65, 0x6c],
            [0x80, 0x02, 0x6c, 0x6f, 0x00],
        ];
        let first = decode_all(Role::Client, &fragments[0]).unwrap().unwrap();
        assert_eq!(
            (first.fin, first.opcode, &first.payload[..]),
            (false, OpCode::Text, &b"Hel"[..])
        );
        let last = decode_all(Role::Client, &fragments[1][..4])
            .unwrap()
            .unwrap();
        assert_eq!(
            (last.fin, last.opcode, &last.payload[..]),
            (true, OpCode::Continuation, &b"lo"[..])
        );
        let ping = decode_all(Role::Client, &[0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f])
            .unwrap()
            .unwrap();
        assert_eq!(
            (ping.opcode, &ping.payload[..]),
            (OpCode::Ping, &b"Hello"[..])
        );
        let pong = [
            0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        assert_eq!(
            decode_all(Role::Server, &pong).unwrap().unwrap().opcode,
            OpCode::Pong
        );
        let mut binary_256 = vec![0x82, 0x7E, 0x01, 0x00];
        binary_256.extend(std::iter::repeat_n(0xAB, 256));
        assert_eq!(
            decode_all(Role::Client, &binary_256)
                .unwrap()
                .unwrap()
                .payload
                .len(),
            256
        );
        let mut binary_64k = vec![0x82, 0x7F, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00];
        binary_64k.extend(std::iter::repeat_n(0xAB, 65536));
        assert_eq!(
            decode_all(Role::Client, &binary_64k)
                .unwrap()
                .unwrap()
                .payload
                .len(),
            65536
        );
    }

    #[test]
    fn rejections() {
        use ProtocolError::*;
        let cases: &[(Role, &[u8], ProtocolError)] = &[
            (Role::Client, &[0xC1, 0x00], ReservedBits),
            (Role::Client, &[0xA1, 0x00], ReservedBits),
            (Role::Client, &[0x91, 0x00], ReservedBits),
            (Role::Client, &[0x83, 0x00], ReservedOpCode(0x3)),
            (Role::Client, &[0x8B, 0x00], ReservedOpCode(0xB)),
            (Role::Client, &[0x09, 0x00], FragmentedControlFrame),
            (Role::Client, &[0x89, 0x7E, 0x00, 0x7E], ControlFrameTooLong),
            (Role::Server, &[0x82, 0x00], UnmaskedClientFrame),
            (Role::Client, &[0x82, 0x80, 1, 2, 3, 4], MaskedServerFrame),
            (Role::Client, &[0x82, 0x7E, 0x00, 0x05], NonMinimalLength),
            (
                Role::Client,
                &[0x82, 0x7F, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF],
                NonMinimalLength,
            ),
            (
                Role::Client,
                &[0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0],
                LengthMsbSet,
            ),
            (
                Role::Client,
                &[0x82, 0x7F, 0x40, 0, 0, 0, 0, 0, 0, 0],
                FrameTooBig {
                    size: 1 << 62,
                    limit: 1 << 24,
                },
            ),
        ];
        for (role, wire, expected) in cases {
            assert_eq!(
                decode_all(*role, wire).as_ref(),
                Err(expected),
                "{wire:02x?}"
            );
        }
    }

    #[test]
    fn huge_declared_length_needs_no_allocation() {
        // A declared 2^62-byte frame is refused from its header alone.
        let mut buf = BytesMut::from(&[0x82, 0x7F, 0x40, 0, 0, 0, 0, 0, 0, 0][..]);
        let capacity = buf.capacity();
        assert!(
            FrameDecoder::new(Role::Client, LIMITS)
                .decode(&mut buf)
                .is_err()
        );
        assert_eq!(buf.capacity(), capacity);
    }

    fn any_frame() -> impl Strategy<Value = Frame> {
        let data = (
            any::<bool>(),
            prop_oneof![
                Just(OpCode::Continuation),
                Just(OpCode::Text),
                Just(OpCode::Binary)
            ],
            proptest::collection::vec(any::<u8>(), 0..70_000),
        );
        let control = (
            prop_oneof![Just(OpCode::Close), Just(OpCode::Ping), Just(OpCode::Pong)],
            proptest::collection::vec(any::<u8>(), 0..=125),
        );
        prop_oneof![
            data.prop_map(|(fin, opcode, payload)| Frame {
                fin,
                rsv1: false,
                opcode,
                payload: payload.into()
            }),
            control.prop_map(|(opcode, payload)| Frame::new(opcode, payload)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn encode_then_decode_is_identity(
            frames in proptest::collection::vec(any_frame(), 1..4),
            masks in proptest::collection::vec(any::<[u8; 4]>(), 4),
            chunk in 1usize..5000,
        ) {
            for (role, masked) in [(Role::Server, true), (Role::Client, false)] {
                let mut wire = BytesMut::new();
                for (frame, mask) in frames.iter().zip(&masks) {
                    frame.encode(masked.then_some(*mask), &mut wire);
                }
                let mut decoder = FrameDecoder::new(role, LIMITS);
                let mut buf = BytesMut::new();
                let mut decoded = Vec::new();
                for piece in wire.chunks(chunk) {
                    buf.extend_from_slice(piece);
                    while let Some(frame) = decoder.decode(&mut buf).unwrap() {
                        decoded.push(frame);
                    }
                }
                prop_assert_eq!(&decoded, &frames);
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(wire in proptest::collection::vec(any::<u8>(), 0..64)) {
            for role in [Role::Client, Role::Server] {
                let mut buf = BytesMut::from(&wire[..]);
                let mut decoder = FrameDecoder::new(role, LIMITS);
                while let Ok(Some(_)) = decoder.decode(&mut buf) {}
            }
        }
    }
}
