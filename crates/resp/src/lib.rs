//! RESP (REdis Serialization Protocol) for ferrokv: an incremental request
//! parser and a reply encoder.
//!
//! This crate owns the wire format and nothing else: no sockets, no tokio, no
//! knowledge of commands. Every byte it parses is untrusted, so parsing never
//! panics, never allocates more than the input justifies, and reports errors
//! with the exact texts Redis 7.0 sends before it closes a connection.

mod parser;
mod reply;

pub use parser::{split_args, Limits, ProtocolError, RequestParser};
pub use reply::{format_double, Deferred, DeferredKind, Protocol, Reply};
