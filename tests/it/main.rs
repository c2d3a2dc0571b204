//! The integration test binary.

mod scenarios;
