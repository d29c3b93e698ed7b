//! The seam between the connection and permessage-deflate (RFC 7692 §6): RSV1 marks a
//! compressed data message, whose payload is inflated frame by frame.

use bytes::{Bytes, BytesMut};

use super::error::ProtocolError;
use super::prepared::PreparedMessage;

#[cfg(feature = "deflate")]
use super::Role;
#[cfg(feature = "deflate")]
use super::deflate::{Compressor, Decompressor, DeflateParams, InflateError};

/// The compression in force on one connection: none, or the negotiated permessage-deflate.
#[derive(Debug, Default)]
pub(crate) struct Compression {
    #[cfg(feature = "deflate")]
    deflate: Option<Box<Deflate>>,
}

#[cfg(feature = "deflate")]
#[derive(Debug)]
struct Deflate {
    params: DeflateParams,
    role: Role,
    compressor: Compressor,
    decompressor: Decompressor,
}

impl Compression {
    /// Starts permessage-deflate with the negotiated parameters.
    #[cfg(feature = "deflate")]
    pub(crate) fn deflate(params: DeflateParams, role: Role) -> Self {
        Self {
            deflate: Some(Box::new(Deflate {
                compressor: Compressor::new(&params, role),
                decompressor: Decompressor::new(&params, role),
                params,
                role,
            })),
        }
    }

    /// The negotiated permessage-deflate parameters, if any.
    #[cfg(feature = "deflate")]
    pub(crate) fn params(&self) -> Option<&DeflateParams> {
        self.deflate.as_ref().map(|deflate| &deflate.params)
    }

    /// Inflates one frame's payload of a compressed message onto `out`, failing with 1009 as
    /// soon as the message inflates past `limit` and with 1007 on corrupt data.
    pub(crate) fn inflate(
        &mut self,
        payload: &[u8],
        end_of_message: bool,
        out: &mut BytesMut,
        limit: usize,
    ) -> Result<(), ProtocolError> {
        #[cfg(feature = "deflate")]
        if let Some(deflate) = &mut self.deflate {
            deflate
                .decompressor
                .decompress(payload, end_of_message, out, limit)
                .map_err(|error| match error {
                    InflateError::TooBig { limit } => ProtocolError::MessageTooBig {
                        size: limit as u64 + 1,
                        limit,
                    },
                    InflateError::Corrupt => ProtocolError::InvalidCompressedData,
                })?;
            if end_of_message {
                deflate.decompressor.release();
            }
            return Ok(());
        }
        let _ = (payload, end_of_message, out, limit);
        // Unreachable in practice: the decoder refuses RSV1 when nothing was negotiated.
        Err(ProtocolError::ReservedBits)
    }

    /// Compresses a whole message when compression is on and the message is long enough to
    /// gain from it; `None` means send it as it is.
    #[inline(always)]
    pub(crate) fn compress(&mut self, payload: &[u8]) -> Option<Bytes> {
        // Inline down to this check: most connections send without compression, and every
        // short message pays for the call otherwise.
        #[cfg(feature = "deflate")]
        if self.deflate.is_some() {
            return self.compress_deflating(payload);
        }
        let _ = payload;
        None
    }

    #[cfg(feature = "deflate")]
    #[inline(never)]
    fn compress_deflating(&mut self, payload: &[u8]) -> Option<Bytes> {
        let deflate = self.deflate.as_mut()?;
        if payload.len() < deflate.params.threshold() {
            return None;
        }
        let mut out = BytesMut::new();
        deflate.compressor.compress(payload, &mut out);
        // Without context takeover nothing depends on this message having gone through the
        // compressor, so data that did not shrink (already compressed, random) goes out as it
        // is. With it, the peer's window must see the same history as ours.
        if deflate.params.shares_compressed_frames(deflate.role) && out.len() >= payload.len() {
            return None;
        }
        Some(out.freeze())
    }

    /// Like [`compress`](Self::compress) for a prepared message: when our side keeps no
    /// context, the compressed payload is made once and shared with every connection under
    /// the same window and level; otherwise our own compressor runs on it.
    /// A message prepared with [`PreparedMessage::uncompressed`] is never compressed.
    pub(crate) fn compress_prepared(&mut self, prepared: &PreparedMessage) -> Option<Bytes> {
        if !prepared.compressible() {
            return None;
        }
        #[cfg(feature = "deflate")]
        if let Some(deflate) = &self.deflate {
            if prepared.len() < deflate.params.threshold() {
                return None;
            }
            if deflate.params.shares_compressed_frames(deflate.role) {
                let compressed = prepared.compressed(&deflate.params, deflate.role);
                // As in `compress`: no gain, no compression.
                return (compressed.len() < prepared.len()).then_some(compressed);
            }
        }
        self.compress(prepared.payload())
    }
}
