//! Negotiating permessage-deflate parameters (RFC 7692 §5, §7.1).

use crate::proto::Role;
use crate::proto::handshake::ExtensionOffer;

/// The extension's registered name (RFC 7692 §7).
const NAME: &str = "permessage-deflate";
const SERVER_NO_CONTEXT_TAKEOVER: &str = "server_no_context_takeover";
const CLIENT_NO_CONTEXT_TAKEOVER: &str = "client_no_context_takeover";
const SERVER_MAX_WINDOW_BITS: &str = "server_max_window_bits";
const CLIENT_MAX_WINDOW_BITS: &str = "client_max_window_bits";

/// The largest LZ77 window, 32 KiB, and the one a peer may use when nothing smaller was agreed.
const MAX_WINDOW_BITS: u8 = 15;
/// The smallest window §7.1.2 allows on the wire.
const MIN_WIRE_WINDOW_BITS: u8 = 8;
/// The smallest window zlib can compress with: see "Window size 8" in the module docs.
const MIN_CONFIG_WINDOW_BITS: u8 = 9;

/// What we are willing to agree to, on either side of the handshake.
///
/// A client turns it into an offer with [`offer`](Self::offer) and checks the server's answer
/// with [`accept_response`](Self::accept_response); a server picks among the client's offers with
/// [`negotiate`](Self::negotiate). Window sizes are base-2 logarithms; values outside `9..=15`
/// count as the nearest bound (zlib cannot compress with 8, see the module docs).
///
/// ```
/// use wsio::proto::deflate::DeflateConfig;
///
/// let mut config = DeflateConfig::default();
/// config.server_max_window_bits = 12;
/// assert_eq!(
///     config.offer(),
///     "permessage-deflate; server_max_window_bits=12; client_max_window_bits"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeflateConfig {
    /// The server does not keep its compression context between messages (§7.1.1.1).
    ///
    /// A client asks for it, and fails the handshake if the server does not agree; a server
    /// always answers with it. Off by default: context takeover compresses small, similar
    /// messages far better.
    pub server_no_context_takeover: bool,
    /// The client does not keep its compression context between messages (§7.1.1.2).
    ///
    /// A client announces it and then resets after every message; a server asks the client
    /// for it. Off by default.
    pub client_no_context_takeover: bool,
    /// The largest window the server may compress with (§7.1.2.1); 15 by default.
    ///
    /// A client below 15 asks for it and fails the handshake if the server does not agree; a
    /// server never compresses with more, and announces a value below 15.
    pub server_max_window_bits: u8,
    /// The largest window the client may compress with (§7.1.2.2); 15 by default.
    ///
    /// A client announces a value below 15 as a promise. A server asks for it when the client
    /// lets it choose; a client that does not support the parameter keeps 15, and is accepted.
    pub client_max_window_bits: u8,
    /// Our compression level, 0 (stored, no compression) to 9 (smallest output); 1 by default.
    ///
    /// On ~1 KiB JSON messages with context takeover, level 1 compresses about 4 times faster
    /// than level 6 for output about a third larger (measured with zlib-rs).
    pub level: u32,
    /// Messages shorter than this many bytes are sent uncompressed; 32 by default.
    ///
    /// With context takeover, JSON messages of 32 bytes and up shrink by half or more, for well
    /// under a microsecond each. Without it, deflate does not pay below about 64 bytes; we keep
    /// 32 because context takeover is the default on both sides.
    pub threshold: usize,
}

impl Default for DeflateConfig {
    fn default() -> Self {
        Self {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: MAX_WINDOW_BITS,
            client_max_window_bits: MAX_WINDOW_BITS,
            level: 1,
            threshold: 32,
        }
    }
}

/// The permessage-deflate agreement in force on one connection, as both ends see it.
///
/// Made by [`DeflateConfig::negotiate`] on a server and [`DeflateConfig::accept_response`] on a
/// client, it also carries our own [`level`](Self::level) and [`threshold`](Self::threshold),
/// so it is all a [`Compressor`](super::Compressor) and [`Decompressor`](super::Decompressor)
/// need. The role methods say which half applies to whom: the client compresses with the
/// `client_*` values and the server with the `server_*` ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeflateParams {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: u8,
    client_max_window_bits: u8,
    level: u32,
    threshold: usize,
}

/// Why a server's permessage-deflate response cannot be accepted (RFC 7692 §7).
///
/// Each one means the client must fail the WebSocket connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeflateNegotiationError {
    /// The response accepts permessage-deflate more than once.
    #[error("permessage-deflate accepted more than once")]
    DuplicateExtension,
    /// A parameter appears more than once.
    #[error("permessage-deflate parameter {name:?} given more than once")]
    DuplicateParam {
        /// The parameter's name, as sent.
        name: String,
    },
    /// A parameter RFC 7692 does not define.
    #[error("unknown permessage-deflate parameter {name:?}")]
    UnknownParam {
        /// The parameter's name, as sent.
        name: String,
    },
    /// A value on a parameter that takes none, a missing value, or a window size that is not
    /// a plain decimal from 8 to 15.
    #[error("invalid value for permessage-deflate parameter {name:?}")]
    InvalidValue {
        /// The parameter's name, as sent.
        name: String,
    },
    /// We asked for a smaller server window and the server did not agree to it or a smaller one.
    #[error("server did not limit its window to the {requested} bits requested")]
    ServerWindowTooLarge {
        /// The `server_max_window_bits` we offered.
        requested: u8,
    },
    /// We asked for `server_no_context_takeover` and the server did not agree to it.
    #[error("server did not accept server_no_context_takeover")]
    MissingServerNoContextTakeover,
}

impl DeflateConfig {
    /// Returns the `Sec-WebSocket-Extensions` value a client sends to offer permessage-deflate.
    ///
    /// It always has `client_max_window_bits`, valueless at 15, so the server may pick a smaller
    /// client window; the other parameters appear when they differ from the defaults.
    pub fn offer(&self) -> String {
        let mut offer = String::from(NAME);
        if self.server_no_context_takeover {
            push_param(&mut offer, SERVER_NO_CONTEXT_TAKEOVER, None);
        }
        if self.client_no_context_takeover {
            push_param(&mut offer, CLIENT_NO_CONTEXT_TAKEOVER, None);
        }
        let server_bits = self.server_window_bits();
        if server_bits < MAX_WINDOW_BITS {
            push_param(&mut offer, SERVER_MAX_WINDOW_BITS, Some(server_bits));
        }
        let client_bits = self.client_window_bits();
        push_param(
            &mut offer,
            CLIENT_MAX_WINDOW_BITS,
            (client_bits < MAX_WINDOW_BITS).then_some(client_bits),
        );
        offer
    }

    /// Checks the server's answer to our [`offer`](Self::offer), given every extension the
    /// response accepted, and returns the agreement.
    ///
    /// `Ok(None)` means the server declined permessage-deflate: the connection goes on without
    /// it. An error means the response breaks RFC 7692 §7 or asks for what we did not offer,
    /// and the handshake must fail.
    pub fn accept_response(
        &self,
        extensions: &[ExtensionOffer],
    ) -> Result<Option<DeflateParams>, DeflateNegotiationError> {
        let mut accepted = extensions.iter().filter(|extension| is_deflate(extension));
        let Some(response) = accepted.next() else {
            return Ok(None);
        };
        if accepted.next().is_some() {
            return Err(DeflateNegotiationError::DuplicateExtension);
        }
        let response = Params::parse(response)?;
        if self.server_no_context_takeover && !response.server_no_context_takeover {
            return Err(DeflateNegotiationError::MissingServerNoContextTakeover);
        }
        // §7.1.2.1: the server accepts a requested window by answering with it or a smaller one.
        // Unrequested, it may still announce one; any valid value is fine for our decompressor.
        let requested = self.server_window_bits();
        let server_max_window_bits = match response.server_max_window_bits {
            Some(bits) if requested == MAX_WINDOW_BITS || bits <= requested => bits,
            Some(_) | None if requested < MAX_WINDOW_BITS => {
                return Err(DeflateNegotiationError::ServerWindowTooLarge { requested });
            }
            _ => MAX_WINDOW_BITS,
        };
        // §7.1.2.2: in a response the parameter needs a value. Our offer always has the
        // parameter, so the server may send it; we keep the smaller of its answer and our own
        // limit, which we announced with a value if it is below 15.
        let client_max_window_bits = match response.client_max_window_bits {
            Some(Some(bits)) => bits.min(self.client_window_bits()),
            Some(None) => {
                return Err(DeflateNegotiationError::InvalidValue {
                    name: CLIENT_MAX_WINDOW_BITS.to_owned(),
                });
            }
            None => self.client_window_bits(),
        };
        Ok(Some(DeflateParams {
            server_no_context_takeover: response.server_no_context_takeover,
            // §7.1.1.2: having offered it, we keep our word whatever the answer says.
            client_no_context_takeover: self.client_no_context_takeover
                || response.client_no_context_takeover,
            server_max_window_bits,
            client_max_window_bits,
            level: self.level,
            threshold: self.threshold,
        }))
    }

    /// Picks the first acceptable permessage-deflate offer from a client's extensions, and
    /// returns the agreement with the `Sec-WebSocket-Extensions` value to answer with.
    ///
    /// Offers are tried in the client's order of preference. One is declined (§7: "A server
    /// MUST decline") when a parameter is unknown, repeated, or has a bad value, and when it
    /// asks for `server_max_window_bits=8`, which we cannot compress with (module docs).
    /// `None` means every offer was declined: answer without the extension.
    pub fn negotiate(&self, offers: &[ExtensionOffer]) -> Option<(DeflateParams, String)> {
        offers
            .iter()
            .filter(|offer| is_deflate(offer))
            .find_map(|offer| self.accept_offer(&Params::parse(offer).ok()?))
    }

    /// Returns the agreement and response for one well-formed offer, or `None` to decline it.
    fn accept_offer(&self, offer: &Params) -> Option<(DeflateParams, String)> {
        let server_max_window_bits = offer
            .server_max_window_bits
            .map_or(self.server_window_bits(), |requested| {
                requested.min(self.server_window_bits())
            });
        // §7.1.2.1 lets us answer with the requested value or a smaller one, never a larger
        // one, so an offer of 8 cannot be met with 9: decline it and try the next.
        if server_max_window_bits < MIN_CONFIG_WINDOW_BITS {
            return None;
        }
        // §7.1.2.2: without the parameter the client may use 15 and we must not say otherwise;
        // with it, we may lower the client's window to ours, or to its own hint if smaller.
        let client_max_window_bits = match offer.client_max_window_bits {
            Some(hint) => hint
                .unwrap_or(MAX_WINDOW_BITS)
                .min(self.client_window_bits()),
            None => MAX_WINDOW_BITS,
        };
        let params = DeflateParams {
            // §7.1.1.1: we must echo it when asked, and may add it unasked.
            server_no_context_takeover: offer.server_no_context_takeover
                || self.server_no_context_takeover,
            // §7.1.1.2: the client resets anyway if it offered this; echoing it lets us reset too.
            client_no_context_takeover: offer.client_no_context_takeover
                || self.client_no_context_takeover,
            server_max_window_bits,
            client_max_window_bits,
            level: self.level,
            threshold: self.threshold,
        };
        let mut response = String::from(NAME);
        if params.server_no_context_takeover {
            push_param(&mut response, SERVER_NO_CONTEXT_TAKEOVER, None);
        }
        if params.client_no_context_takeover {
            push_param(&mut response, CLIENT_NO_CONTEXT_TAKEOVER, None);
        }
        // Accepting a requested server window means answering with it (§7.1.2.1), even at 15.
        if offer.server_max_window_bits.is_some() || server_max_window_bits < MAX_WINDOW_BITS {
            push_param(
                &mut response,
                SERVER_MAX_WINDOW_BITS,
                Some(server_max_window_bits),
            );
        }
        if client_max_window_bits < MAX_WINDOW_BITS {
            push_param(
                &mut response,
                CLIENT_MAX_WINDOW_BITS,
                Some(client_max_window_bits),
            );
        }
        Some((params, response))
    }

    fn server_window_bits(&self) -> u8 {
        self.server_max_window_bits
            .clamp(MIN_CONFIG_WINDOW_BITS, MAX_WINDOW_BITS)
    }

    fn client_window_bits(&self) -> u8 {
        self.client_max_window_bits
            .clamp(MIN_CONFIG_WINDOW_BITS, MAX_WINDOW_BITS)
    }
}

impl DeflateParams {
    /// Returns whether the server resets its compression context after every message.
    pub fn server_no_context_takeover(&self) -> bool {
        self.server_no_context_takeover
    }

    /// Returns whether the client resets its compression context after every message.
    pub fn client_no_context_takeover(&self) -> bool {
        self.client_no_context_takeover
    }

    /// Returns the largest window the server compresses with, from 8 to 15.
    pub fn server_max_window_bits(&self) -> u8 {
        self.server_max_window_bits
    }

    /// Returns the largest window the client compresses with, from 8 to 15.
    pub fn client_max_window_bits(&self) -> u8 {
        self.client_max_window_bits
    }

    /// Returns our compression level, from the [`DeflateConfig`] that negotiated this.
    pub fn level(&self) -> u32 {
        self.level
    }

    /// Returns the size below which we send a message uncompressed, from the [`DeflateConfig`].
    pub fn threshold(&self) -> usize {
        self.threshold
    }

    /// Returns the window our compressor must stay within when we play `role`.
    pub fn compressor_window_bits(&self, role: Role) -> u8 {
        match role {
            Role::Client => self.client_max_window_bits,
            Role::Server => self.server_max_window_bits,
        }
    }

    /// Returns whether our compressor resets after every message when we play `role`.
    pub fn compressor_no_context_takeover(&self, role: Role) -> bool {
        match role {
            Role::Client => self.client_no_context_takeover,
            Role::Server => self.server_no_context_takeover,
        }
    }

    /// Returns the window the peer compresses with, which our decompressor needs, when we play
    /// `role`.
    pub fn decompressor_window_bits(&self, role: Role) -> u8 {
        self.compressor_window_bits(peer(role))
    }

    /// Returns whether the peer resets after every message, so our decompressor can too, when
    /// we play `role`.
    pub fn decompressor_no_context_takeover(&self, role: Role) -> bool {
        self.compressor_no_context_takeover(peer(role))
    }

    /// Returns whether a message we compress, playing `role`, depends only on its own payload,
    /// so one compressed frame can go to many connections.
    ///
    /// True when our side keeps no context. A broadcaster then compresses once per distinct
    /// [`compressor_window_bits`](Self::compressor_window_bits) and level; or once with the
    /// smallest window among the recipients, since data compressed with a smaller window is
    /// valid for every peer that allowed a larger one.
    pub fn shares_compressed_frames(&self, role: Role) -> bool {
        self.compressor_no_context_takeover(role)
    }
}

/// The parameters of one permessage-deflate offer or response, checked against §7.1.
#[derive(Debug, Default)]
struct Params {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    /// `Some(None)` when present without a value, which only an offer may do.
    client_max_window_bits: Option<Option<u8>>,
}

impl Params {
    /// Reads the parameters, rejecting unknown or repeated ones and invalid values.
    fn parse(extension: &ExtensionOffer) -> Result<Self, DeflateNegotiationError> {
        let mut params = Self::default();
        let mut seen: Vec<&str> = Vec::with_capacity(4);
        for (name, value) in extension.params() {
            let invalid = || DeflateNegotiationError::InvalidValue {
                name: name.to_owned(),
            };
            if seen
                .iter()
                .any(|earlier| earlier.eq_ignore_ascii_case(name))
            {
                return Err(DeflateNegotiationError::DuplicateParam {
                    name: name.to_owned(),
                });
            }
            seen.push(name);
            if name.eq_ignore_ascii_case(SERVER_NO_CONTEXT_TAKEOVER) {
                if value.is_some() {
                    return Err(invalid());
                }
                params.server_no_context_takeover = true;
            } else if name.eq_ignore_ascii_case(CLIENT_NO_CONTEXT_TAKEOVER) {
                if value.is_some() {
                    return Err(invalid());
                }
                params.client_no_context_takeover = true;
            } else if name.eq_ignore_ascii_case(SERVER_MAX_WINDOW_BITS) {
                let bits = value.and_then(parse_window_bits).ok_or_else(invalid)?;
                params.server_max_window_bits = Some(bits);
            } else if name.eq_ignore_ascii_case(CLIENT_MAX_WINDOW_BITS) {
                let bits = value
                    .map(|value| parse_window_bits(value).ok_or_else(invalid))
                    .transpose()?;
                params.client_max_window_bits = Some(bits);
            } else {
                return Err(DeflateNegotiationError::UnknownParam {
                    name: name.to_owned(),
                });
            }
        }
        Ok(params)
    }
}

fn is_deflate(extension: &ExtensionOffer) -> bool {
    extension.name().eq_ignore_ascii_case(NAME)
}

fn peer(role: Role) -> Role {
    match role {
        Role::Client => Role::Server,
        Role::Server => Role::Client,
    }
}

/// Reads a window size: a decimal from 8 to 15 without leading zeros or sign (§7.1.2).
fn parse_window_bits(value: &str) -> Option<u8> {
    let bits: u8 = value.parse().ok()?;
    let canonical_len = if bits >= 10 { 2 } else { 1 };
    ((MIN_WIRE_WINDOW_BITS..=MAX_WINDOW_BITS).contains(&bits) && value.len() == canonical_len)
        .then_some(bits)
}

fn push_param(out: &mut String, name: &str, value: Option<u8>) {
    out.push_str("; ");
    out.push_str(name);
    if let Some(value) = value {
        out.push('=');
        out.push_str(&value.to_string());
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::proto::handshake::{HandshakeLimits, RequestParser};

    /// Parses a `Sec-WebSocket-Extensions` value the way the handshake does.
    pub(in crate::proto::deflate) fn extensions(value: &str) -> Vec<ExtensionOffer> {
        let request = format!(
            "GET / HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Extensions: {value}\r\n\r\n"
        );
        RequestParser::new(HandshakeLimits::default())
            .receive(request.as_bytes())
            .expect("valid request")
            .expect("complete request")
            .extensions()
            .to_vec()
    }

    /// Returns the agreement a default client config reads from a server's response.
    pub(in crate::proto::deflate) fn agreed(response: &str) -> DeflateParams {
        DeflateConfig::default()
            .accept_response(&extensions(response))
            .expect("valid response")
            .expect("accepted")
    }

    fn config(edit: impl FnOnce(&mut DeflateConfig)) -> DeflateConfig {
        let mut config = DeflateConfig::default();
        edit(&mut config);
        config
    }

    fn params(
        server_nct: bool,
        client_nct: bool,
        server_bits: u8,
        client_bits: u8,
    ) -> DeflateParams {
        DeflateParams {
            server_no_context_takeover: server_nct,
            client_no_context_takeover: client_nct,
            server_max_window_bits: server_bits,
            client_max_window_bits: client_bits,
            level: 1,
            threshold: 32,
        }
    }

    #[test]
    fn offers() {
        assert_eq!(
            DeflateConfig::default().offer(),
            "permessage-deflate; client_max_window_bits"
        );
        let all = config(|c| {
            c.server_no_context_takeover = true;
            c.client_no_context_takeover = true;
            c.server_max_window_bits = 10;
            c.client_max_window_bits = 11;
        });
        assert_eq!(
            all.offer(),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             server_max_window_bits=10; client_max_window_bits=11"
        );
        // Out-of-range settings count as the nearest bound.
        let clamped = config(|c| {
            c.server_max_window_bits = 8;
            c.client_max_window_bits = 20;
        });
        assert_eq!(
            clamped.offer(),
            "permessage-deflate; server_max_window_bits=9; client_max_window_bits"
        );
        // Every offer is one the server side accepts.
        for config in [DeflateConfig::default(), all, clamped] {
            assert!(config.negotiate(&extensions(&config.offer())).is_some());
        }
    }

    /// The negotiation examples of RFC 7692 §7.1.3, answered by a default server.
    #[test]
    fn server_answers_rfc_7_1_3_examples() {
        let server = DeflateConfig::default();
        for (offer, response, expected) in [
            (
                "permessage-deflate",
                "permessage-deflate",
                params(false, false, 15, 15),
            ),
            (
                "permessage-deflate; client_max_window_bits; server_max_window_bits=10",
                "permessage-deflate; server_max_window_bits=10",
                params(false, false, 10, 15),
            ),
            (
                "permessage-deflate; client_max_window_bits; server_max_window_bits=10, \
                 permessage-deflate; client_max_window_bits",
                "permessage-deflate; server_max_window_bits=10",
                params(false, false, 10, 15),
            ),
            (
                "permessage-deflate; client_max_window_bits",
                "permessage-deflate",
                params(false, false, 15, 15),
            ),
        ] {
            let (agreed, answer) = server.negotiate(&extensions(offer)).expect(offer);
            assert_eq!(answer, response, "{offer}");
            assert_eq!(agreed, expected, "{offer}");
        }
    }

    #[test]
    fn server_applies_its_config() {
        for (edit, offer, response, expected) in [
            (
                config(|c| c.client_max_window_bits = 10),
                "permessage-deflate; client_max_window_bits",
                "permessage-deflate; client_max_window_bits=10",
                params(false, false, 15, 10),
            ),
            // The client's own smaller hint wins, and is echoed.
            (
                config(|c| c.client_max_window_bits = 10),
                "permessage-deflate; client_max_window_bits=9",
                "permessage-deflate; client_max_window_bits=9",
                params(false, false, 15, 9),
            ),
            // A client that cannot be limited keeps 15, and is accepted.
            (
                config(|c| c.client_max_window_bits = 10),
                "permessage-deflate",
                "permessage-deflate",
                params(false, false, 15, 15),
            ),
            // A client may compress with 8: our decompressor copes.
            (
                DeflateConfig::default(),
                "permessage-deflate; client_max_window_bits=8",
                "permessage-deflate; client_max_window_bits=8",
                params(false, false, 15, 8),
            ),
            (
                config(|c| c.server_max_window_bits = 12),
                "permessage-deflate",
                "permessage-deflate; server_max_window_bits=12",
                params(false, false, 12, 15),
            ),
            (
                config(|c| c.server_max_window_bits = 12),
                "permessage-deflate; server_max_window_bits=14",
                "permessage-deflate; server_max_window_bits=12",
                params(false, false, 12, 15),
            ),
            (
                DeflateConfig::default(),
                "permessage-deflate; server_max_window_bits=15",
                "permessage-deflate; server_max_window_bits=15",
                params(false, false, 15, 15),
            ),
            (
                DeflateConfig::default(),
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
                params(true, true, 15, 15),
            ),
            (
                config(|c| {
                    c.server_no_context_takeover = true;
                    c.client_no_context_takeover = true;
                }),
                "permessage-deflate",
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
                params(true, true, 15, 15),
            ),
            // Names compare ignoring case; quoted values read as tokens.
            (
                DeflateConfig::default(),
                "Permessage-Deflate; Server_Max_Window_Bits=\"10\"",
                "permessage-deflate; server_max_window_bits=10",
                params(false, false, 10, 15),
            ),
        ] {
            let (agreed, answer) = edit.negotiate(&extensions(offer)).expect(offer);
            assert_eq!(answer, response, "{offer}");
            assert_eq!(agreed, expected, "{offer}");
            // A client reads the same agreement back from the answer.
            let client = DeflateConfig::default()
                .accept_response(&extensions(&answer))
                .unwrap()
                .unwrap();
            assert_eq!(
                client.server_max_window_bits(),
                expected.server_max_window_bits
            );
            assert_eq!(
                client.server_no_context_takeover(),
                expected.server_no_context_takeover
            );
        }
    }

    #[test]
    fn server_declines_invalid_offers_and_takes_the_next() {
        let server = DeflateConfig::default();
        for offer in [
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=08",
            "permessage-deflate; server_max_window_bits=+9",
            "permessage-deflate; server_max_window_bits=ten",
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; client_max_window_bits=7",
            "permessage-deflate; client_max_window_bits=16",
            "permessage-deflate; client_max_window_bits=0",
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; client_no_context_takeover=true",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; client_max_window_bits; CLIENT_MAX_WINDOW_BITS=10",
            "permessage-deflate; server_max_window_bits=10; server_max_window_bits=10",
            "permessage-deflate; unknown",
            "permessage-deflate; x=1",
            // Valid, but would need a 256-byte compression window (module docs).
            "permessage-deflate; server_max_window_bits=8",
        ] {
            assert_eq!(server.negotiate(&extensions(offer)), None, "{offer}");
            let with_fallback =
                format!("{offer}, x-other, permessage-deflate; client_no_context_takeover");
            let (agreed, answer) = server.negotiate(&extensions(&with_fallback)).expect(offer);
            assert_eq!(answer, "permessage-deflate; client_no_context_takeover");
            assert_eq!(agreed, params(false, true, 15, 15));
        }
        assert_eq!(server.negotiate(&extensions("x-other")), None);
        assert_eq!(server.negotiate(&[]), None);
    }

    #[test]
    fn client_reads_valid_responses() {
        let client = DeflateConfig::default();
        for (response, expected) in [
            ("permessage-deflate", params(false, false, 15, 15)),
            (
                "permessage-deflate; server_no_context_takeover",
                params(true, false, 15, 15),
            ),
            (
                "permessage-deflate; client_no_context_takeover",
                params(false, true, 15, 15),
            ),
            // Unrequested, the server may still announce a smaller window, even 8.
            (
                "permessage-deflate; server_max_window_bits=8",
                params(false, false, 8, 15),
            ),
            (
                "permessage-deflate; client_max_window_bits=12",
                params(false, false, 15, 12),
            ),
            (
                "permessage-deflate; client_max_window_bits=8",
                params(false, false, 15, 8),
            ),
        ] {
            let agreed = client.accept_response(&extensions(response));
            assert_eq!(agreed, Ok(Some(expected)), "{response}");
        }
        // Other accepted extensions are not ours to check.
        assert_eq!(client.accept_response(&extensions("x-other")), Ok(None));
        assert_eq!(client.accept_response(&[]), Ok(None));

        let asking = config(|c| {
            c.server_no_context_takeover = true;
            c.client_no_context_takeover = true;
            c.server_max_window_bits = 12;
            c.client_max_window_bits = 11;
        });
        for (response, expected) in [
            (
                "permessage-deflate; server_no_context_takeover; server_max_window_bits=12",
                params(true, true, 12, 11),
            ),
            (
                "permessage-deflate; server_no_context_takeover; server_max_window_bits=9; \
                 client_max_window_bits=10",
                params(true, true, 9, 10),
            ),
            // A larger client window than we promised changes nothing.
            (
                "permessage-deflate; server_no_context_takeover; server_max_window_bits=12; \
                 client_max_window_bits=15",
                params(true, true, 12, 11),
            ),
        ] {
            let agreed = asking.accept_response(&extensions(response));
            assert_eq!(agreed, Ok(Some(expected)), "{response}");
        }
    }

    #[test]
    fn client_rejects_invalid_responses() {
        use DeflateNegotiationError::*;
        let name = |name: &str| name.to_owned();
        let client = DeflateConfig::default();
        for (response, error) in [
            ("permessage-deflate, permessage-deflate", DuplicateExtension),
            (
                "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
                DuplicateParam {
                    name: name("server_no_context_takeover"),
                },
            ),
            (
                "permessage-deflate; foo",
                UnknownParam { name: name("foo") },
            ),
            (
                "permessage-deflate; client_max_window_bits",
                InvalidValue {
                    name: name("client_max_window_bits"),
                },
            ),
            (
                "permessage-deflate; client_max_window_bits=16",
                InvalidValue {
                    name: name("client_max_window_bits"),
                },
            ),
            (
                "permessage-deflate; server_max_window_bits=7",
                InvalidValue {
                    name: name("server_max_window_bits"),
                },
            ),
            (
                "permessage-deflate; server_max_window_bits",
                InvalidValue {
                    name: name("server_max_window_bits"),
                },
            ),
            (
                "permessage-deflate; client_no_context_takeover=1",
                InvalidValue {
                    name: name("client_no_context_takeover"),
                },
            ),
        ] {
            assert_eq!(
                client.accept_response(&extensions(response)),
                Err(error),
                "{response}"
            );
        }

        let asking = config(|c| {
            c.server_no_context_takeover = true;
            c.server_max_window_bits = 10;
        });
        for (response, error) in [
            (
                "permessage-deflate; server_max_window_bits=10",
                MissingServerNoContextTakeover,
            ),
            (
                "permessage-deflate; server_no_context_takeover",
                ServerWindowTooLarge { requested: 10 },
            ),
            (
                "permessage-deflate; server_no_context_takeover; server_max_window_bits=11",
                ServerWindowTooLarge { requested: 10 },
            ),
        ] {
            assert_eq!(
                asking.accept_response(&extensions(response)),
                Err(error),
                "{response}"
            );
        }
        assert_eq!(
            DeflateNegotiationError::ServerWindowTooLarge { requested: 10 }.to_string(),
            "server did not limit its window to the 10 bits requested"
        );
    }

    #[test]
    fn roles_pick_their_half() {
        let agreed = params(true, false, 10, 12);
        assert_eq!(agreed.compressor_window_bits(Role::Server), 10);
        assert_eq!(agreed.decompressor_window_bits(Role::Client), 10);
        assert_eq!(agreed.compressor_window_bits(Role::Client), 12);
        assert_eq!(agreed.decompressor_window_bits(Role::Server), 12);
        assert!(agreed.compressor_no_context_takeover(Role::Server));
        assert!(agreed.decompressor_no_context_takeover(Role::Client));
        assert!(!agreed.compressor_no_context_takeover(Role::Client));
        assert!(!agreed.decompressor_no_context_takeover(Role::Server));
        assert!(agreed.shares_compressed_frames(Role::Server));
        assert!(!agreed.shares_compressed_frames(Role::Client));
        assert_eq!((agreed.level(), agreed.threshold()), (1, 32));
    }

    #[test]
    fn window_bits_are_canonical_decimals() {
        for (value, bits) in [("8", Some(8)), ("9", Some(9)), ("15", Some(15))] {
            assert_eq!(parse_window_bits(value), bits);
        }
        for value in ["7", "16", "08", "015", "+9", "-9", "", "9 ", "256", "264"] {
            assert_eq!(parse_window_bits(value), None, "{value:?}");
        }
    }
}
