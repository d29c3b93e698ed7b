//! An independent checker for the bytes one endpoint writes (RFC 6455 §5.2, §5.5, §7.4).
//!
//! Written from the RFC, not from the crate: it shares no code with `wsio::proto`'s decoder.

use wsio::proto::Role;

/// A frame as the checker saw it on the wire, unmasked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireFrame {
    /// The FIN bit.
    pub fin: bool,
    /// The 4-bit opcode.
    pub opcode: u8,
    /// The payload, unmasked.
    pub payload: Vec<u8>,
}

/// Checks the byte stream written by an endpoint of `sender` role, frame by frame.
///
/// Feed it every `Transmit::Data` in order and call [`shutdown`](Self::shutdown) on
/// `Transmit::Shutdown`; it panics, with the reason, on the first thing a correct endpoint
/// would never write.
#[derive(Debug)]
pub struct WireChecker {
    sender: Role,
    pending: Vec<u8>,
    /// The opcode of the fragmented data message in progress.
    open_message: Option<u8>,
    close_sent: bool,
    shut_down: bool,
    frames: Vec<WireFrame>,
}

impl WireChecker {
    /// A checker for what an endpoint of `sender` role writes.
    pub fn new(sender: Role) -> Self {
        Self {
            sender,
            pending: Vec::new(),
            open_message: None,
            close_sent: false,
            shut_down: false,
            frames: Vec::new(),
        }
    }

    /// Takes the next bytes written and checks every frame they complete.
    pub fn data(&mut self, bytes: &[u8]) {
        assert!(
            !self.shut_down,
            "{} bytes written after the shutdown",
            bytes.len()
        );
        self.pending.extend_from_slice(bytes);
        while let Some((frame, len)) = self.parse_one() {
            self.pending.drain(..len);
            self.check_sequence(&frame);
            self.frames.push(frame);
        }
    }

    /// Takes the shutdown of the write side.
    pub fn shutdown(&mut self) {
        assert!(!self.shut_down, "shutdown written twice");
        assert!(
            self.pending.is_empty(),
            "shutdown in the middle of a frame ({} bytes of it written)",
            self.pending.len()
        );
        self.shut_down = true;
    }

    /// Whether a close frame was written.
    pub fn close_sent(&self) -> bool {
        self.close_sent
    }

    /// Whether the shutdown was written.
    pub fn is_shut_down(&self) -> bool {
        self.shut_down
    }

    /// Every complete frame written so far.
    pub fn frames(&self) -> &[WireFrame] {
        &self.frames
    }

    /// Parses and checks the frame at the front of `pending`, with its length on the wire.
    fn parse_one(&self) -> Option<(WireFrame, usize)> {
        let bytes = &self.pending;
        let (&first, &second) = (bytes.first()?, bytes.get(1)?);
        let fin = first >> 7 == 1;
        let opcode = first & 0x0F;
        assert_eq!(first & 0b0111_0000, 0, "reserved bits set in {first:#04x}");
        assert!(
            matches!(opcode, 0x0..=0x2 | 0x8..=0xA),
            "reserved opcode {opcode:#x}"
        );
        let masked = second >> 7 == 1;
        let expect_masked = self.sender == Role::Client;
        assert_eq!(
            masked, expect_masked,
            "mask bit wrong for a {:?}",
            self.sender
        );
        let (len, mut at) = match second & 0x7F {
            126 => {
                let len = u64::from(u16::from_be_bytes(bytes.get(2..4)?.try_into().unwrap()));
                assert!(len >= 126, "16-bit length {len} fits the 7-bit form");
                (len, 4)
            }
            127 => {
                let len = u64::from_be_bytes(bytes.get(2..10)?.try_into().unwrap());
                assert!(len > 0xFFFF, "64-bit length {len} fits a shorter form");
                assert!(len >> 63 == 0, "64-bit length with the top bit set");
                (len, 10)
            }
            short => (u64::from(short), 2),
        };
        if opcode & 0x8 != 0 {
            assert!(fin, "control frame {opcode:#x} without FIN");
            assert!(len <= 125, "control frame {opcode:#x} of {len} bytes");
        }
        let key: Option<[u8; 4]> = if masked {
            let key = bytes.get(at..at + 4)?.try_into().unwrap();
            at += 4;
            Some(key)
        } else {
            None
        };
        let len = usize::try_from(len).expect("a frame the size of memory");
        let mut payload = bytes.get(at..at + len)?.to_vec();
        if let Some(key) = key {
            for (index, byte) in payload.iter_mut().enumerate() {
                *byte ^= key[index % 4];
            }
        }
        Some((
            WireFrame {
                fin,
                opcode,
                payload,
            },
            at + len,
        ))
    }

    /// Checks a frame's place in the stream: fragmentation, and what may follow a close.
    fn check_sequence(&mut self, frame: &WireFrame) {
        match frame.opcode {
            0x0 => {
                assert!(!self.close_sent, "data frame after the close frame");
                assert!(
                    self.open_message.is_some(),
                    "continuation without a message"
                );
                if frame.fin {
                    self.open_message = None;
                }
            }
            0x1 | 0x2 => {
                assert!(!self.close_sent, "data frame after the close frame");
                assert!(
                    self.open_message.is_none(),
                    "new message inside a fragmented one"
                );
                if !frame.fin {
                    self.open_message = Some(frame.opcode);
                }
            }
            0x8 => {
                assert!(!self.close_sent, "second close frame");
                self.close_sent = true;
                check_close_payload(&frame.payload);
            }
            _ => {}
        }
    }
}

/// A close payload is empty, or a sendable code and a UTF-8 reason (§5.5.1, §7.4).
fn check_close_payload(payload: &[u8]) {
    if payload.is_empty() {
        return;
    }
    assert!(payload.len() >= 2, "one-byte close payload");
    let code = u16::from_be_bytes([payload[0], payload[1]]);
    assert!(
        matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999),
        "close code {code} may not be sent"
    );
    assert!(
        std::str::from_utf8(&payload[2..]).is_ok(),
        "close reason is not UTF-8"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_5_7_examples_pass() {
        let mut server = WireChecker::new(Role::Server);
        server.data(&[0x81, 0x05, 0x48, 0x65, 0x6c]);
        server.data(&[
            0x6c, 0x6f, 0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f,
        ]);
        server.data(&[
            0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x88, 0x02, 0x03, 0xe8,
        ]);
        server.shutdown();
        let texts: Vec<&[u8]> = server.frames().iter().map(|f| &f.payload[..]).collect();
        assert_eq!(
            texts,
            [&b"Hello"[..], b"Hel", b"lo", b"Hello", &[0x03, 0xe8]]
        );

        let mut client = WireChecker::new(Role::Client);
        client.data(&[
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ]);
        assert_eq!(client.frames()[0].payload, b"Hello");
        let mut long = vec![0x82, 0x7E, 0x01, 0x00];
        long.resize(4 + 256, 0);
        WireChecker::new(Role::Server).data(&long);
    }

    fn rejects(sender: Role, bytes: &[u8]) -> bool {
        let bytes = bytes.to_vec();
        std::panic::catch_unwind(move || WireChecker::new(sender).data(&bytes)).is_err()
    }

    #[test]
    fn bad_frames_are_caught() {
        assert!(rejects(Role::Server, &[0x81, 0x80, 0, 0, 0, 0])); // masked from a server
        assert!(rejects(Role::Client, &[0x81, 0x00])); // unmasked from a client
        assert!(rejects(Role::Server, &[0xC1, 0x00])); // RSV1
        assert!(rejects(Role::Server, &[0x83, 0x00])); // reserved opcode
        assert!(rejects(Role::Server, &[0x09, 0x00])); // fragmented ping
        assert!(rejects(Role::Server, &[0x82, 0x7E, 0x00, 0x7D])); // non-minimal 16-bit
        assert!(rejects(
            Role::Server,
            &[0x82, 0x7F, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF]
        ));
        assert!(rejects(Role::Server, &[0x80, 0x00])); // continuation of nothing
        assert!(rejects(Role::Server, &[0x01, 0x00, 0x81, 0x00])); // message inside a message
        assert!(rejects(Role::Server, &[0x88, 0x01, 0x03])); // one-byte close
        assert!(rejects(Role::Server, &[0x88, 0x02, 0x03, 0xed])); // 1005
        assert!(rejects(Role::Server, &[0x88, 0x00, 0x81, 0x00])); // data after close
        assert!(rejects(Role::Server, &[0x88, 0x00, 0x88, 0x00])); // two closes
        let mut ping = vec![0x89, 0x7E, 0x00, 0x7E];
        ping.resize(4 + 126, 0);
        assert!(rejects(Role::Server, &ping));
    }
}
