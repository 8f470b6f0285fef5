//! The HTTP/1.1 framing of the example servers (`examples/common/http.rs`):
//! never panics, and where the bytes are split across reads does not change
//! what the server answers (a differential property: one read vs two).
#![no_main]

#[path = "../../examples/common/http.rs"]
#[allow(dead_code, unreachable_pub)]
mod http;

use libfuzzer_sys::fuzz_target;

/// What a connection answers to `chunks` arriving one read at a time, as the
/// example server's loop does: the responses, and whether it closed.
fn serve(chunks: &[&[u8]]) -> (Vec<u8>, bool) {
    let mut input = Vec::new();
    let mut out = Vec::new();
    for c in chunks {
        input.extend_from_slice(c);
        let (used, close) = http::respond(&input, &mut out);
        assert!(used <= input.len(), "consumed more than it was given");
        input.drain(..used);
        if close {
            return (out, true);
        }
    }
    (out, false)
}

fuzz_target!(|data: &[u8]| {
    let _ = http::parse(data);
    let _ = http::single(data);
    let [a, b, rest @ ..] = data else {
        return;
    };
    // The first two bytes pick a split point of the rest (past the 8 KiB
    // head limit too, with a `-max_len` above it).
    let k = usize::from(u16::from_le_bytes([*a, *b])).min(rest.len());
    let whole = serve(&[rest]);
    let split = serve(&[&rest[..k], &rest[k..]]);
    assert_eq!(whole, split, "answer depends on the split at {k}");
    // The fast path agrees with the general one.
    if let Some((resp, close)) = http::single(rest) {
        let mut out = Vec::new();
        let (used, c) = http::respond(rest, &mut out);
        assert_eq!((out.as_slice(), c), (resp, close));
        assert_eq!(used, rest.len());
    }
});
