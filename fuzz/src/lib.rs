//! Helpers shared by the fuzz targets: input chunking, an independent wire checker and the
//! scripted connection driver.
//!
//! Nothing here reuses the crate's decoder: the checker in [`wire`] is written from RFC 6455
//! §5.2 so that it can catch the crate's encoder and decoder agreeing on the same mistake.
#![forbid(unsafe_code)]

pub mod chunks;
pub mod connection;
pub mod wire;

pub use chunks::Split;
