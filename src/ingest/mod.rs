//! Ingest: untrusted input in, validated runs out.
//!
//! [`validate`] is the only door from JSON to [`crate::model::Run`];
//! [`adapters`] map each vendor's payloads onto the canonical record (and
//! check webhook signatures) without any I/O, so they are tested on fixtures
//! alone; [`classes`] groups a run's record errors into error classes for
//! notices and the API; [`sources`] types the `[sources.*]` configuration
//! the webhooks and pollers read.

pub mod adapters;
pub mod classes;
pub mod sources;
pub mod validate;

pub use classes::{ErrorClass, classify, signature};
pub use validate::{FieldError, parse_body, parse_value};
