//! Support code for the macro benchmarks in `bench/`: the tokio twins of coro's
//! example servers share their protocol code with the examples, so both sides
//! do the same work per request.
#![forbid(unsafe_code)]

#[path = "../../examples/common/http.rs"]
pub mod http;

#[path = "../../examples/common/args.rs"]
pub mod args;

#[cfg(test)]
mod http_tests;
