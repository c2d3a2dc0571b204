//! The syncwarden binary (the command line comes with the server).
fn main() {}
