//! Tests of the shared HTTP framing (`examples/common/http.rs`).

use crate::http::{
    Frame, HEAD_CLOSE, HEAD_KEEP_ALIVE, HEAD_OK, MAX_HEAD, OK, OK_CLOSE, OK_KEEP_ALIVE, Reject,
    parse, respond, single,
};

#[test]
fn simple_get_keeps_alive() {
    let r = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_eq!(
        parse(r),
        Frame::Request {
            len: r.len(),
            close: false,
            answer: OK
        }
    );
}

#[test]
fn every_split_point_is_partial_until_whole() {
    let r = b"GET /plaintext HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n\r\n";
    for cut in 0..r.len() {
        assert_eq!(parse(&r[..cut]), Frame::Partial, "cut at {cut}");
    }
    assert!(matches!(parse(r), Frame::Request { .. }));
}

#[test]
fn connection_close_and_http10() {
    let r = b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n";
    assert_eq!(
        parse(r),
        Frame::Request {
            len: r.len(),
            close: true,
            answer: OK_CLOSE
        }
    );
    let r = b"GET / HTTP/1.0\r\n\r\n";
    assert_eq!(
        parse(r),
        Frame::Request {
            len: r.len(),
            close: true,
            answer: OK_CLOSE
        }
    );
    let r = b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n";
    assert_eq!(
        parse(r),
        Frame::Request {
            len: r.len(),
            close: false,
            // A 1.0 client keeps the connection only when told so
            // (ApacheBench's `-k` waited 10-20 s per request for the close).
            answer: OK_KEEP_ALIVE
        }
    );
}

/// `close` wins over a `keep-alive` in the same request (RFC 9112 9.6); it
/// used to be undone by a later token.
#[test]
fn close_wins_over_keep_alive() {
    for r in [
        &b"GET / HTTP/1.1\r\nConnection: close, keep-alive\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nConnection: close\r\nConnection: keep-alive\r\n\r\n",
        b"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n",
    ] {
        assert_eq!(
            parse(r),
            Frame::Request {
                len: r.len(),
                close: true,
                answer: OK_CLOSE
            },
            "{}",
            String::from_utf8_lossy(r)
        );
    }
}

/// `HEAD` gets the head without the body (it used to get the 13 body
/// bytes, which a keep-alive client read as the next response's start).
#[test]
fn head_gets_no_body() {
    let r = b"HEAD / HTTP/1.1\r\n\r\nHEAD / HTTP/1.1\r\nConnection: close\r\n\r\n";
    let mut out = Vec::new();
    assert_eq!(respond(r, &mut out), (r.len(), true));
    assert_eq!(out, [HEAD_OK, HEAD_CLOSE].concat());
    assert!(!out.windows(5).any(|w| w == b"Hello"));
    let r = b"HEAD / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
    assert_eq!(single(r), Some((HEAD_KEEP_ALIVE, false)));
}

#[test]
fn body_is_consumed_by_content_length() {
    let r = b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET";
    assert_eq!(
        parse(r),
        Frame::Request {
            len: r.len() - 3,
            close: false,
            answer: OK
        }
    );
    assert_eq!(parse(&r[..r.len() - 4]), Frame::Partial);
}

#[test]
fn garbage_is_400() {
    assert_eq!(
        parse(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n"),
        Frame::Reject(Reject::BadRequest)
    );
    assert_eq!(
        parse(b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n"),
        Frame::Reject(Reject::BadRequest)
    );
    assert_eq!(
        parse(b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
        Frame::Reject(Reject::BadRequest)
    );
}

/// RFC 9112 6.3: a length that is not plain digits is invalid (400),
/// where Rust's integer parsing takes a sign and `trim` takes Unicode
/// spaces; a proxy in front that reads it differently would see another
/// request boundary than ours.
#[test]
fn content_length_is_ascii_digits_only() {
    for bad in [
        &b"+5"[..],
        b"-0",
        b"5\xc2\xa0",
        b"\xc2\xa05",
        b"5 5",
        b"0x5",
        b"",
        b"99999999999999999999999999",
    ] {
        let mut r = b"POST / HTTP/1.1\r\nContent-Length: ".to_vec();
        r.extend_from_slice(bad);
        r.extend_from_slice(b"\r\n\r\nhello");
        assert_eq!(
            parse(&r),
            Frame::Reject(Reject::BadRequest),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
    // Optional whitespace around the value is allowed (RFC 9110 5.5).
    let r = b"POST / HTTP/1.1\r\nContent-Length: \t5 \r\n\r\nhello";
    assert!(matches!(parse(r), Frame::Request { len, .. } if len == r.len()));
}

#[test]
fn oversized_head_is_431() {
    let mut r = b"GET / HTTP/1.1\r\nX-Big: ".to_vec();
    r.resize(MAX_HEAD + 100, b'a');
    assert_eq!(parse(&r), Frame::Reject(Reject::HeadersTooLarge));
    r.extend_from_slice(b"\r\n\r\n");
    assert_eq!(parse(&r), Frame::Reject(Reject::HeadersTooLarge));
}

#[test]
fn chunked_is_501() {
    let r = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    assert_eq!(parse(r), Frame::Reject(Reject::NotImplemented));
}

#[test]
fn pipelined_requests_get_one_batch() {
    let one = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut input = one.repeat(3);
    input.extend_from_slice(b"GET / HT"); // a fourth, partial
    let mut out = Vec::new();
    let (used, close) = respond(&input, &mut out);
    assert_eq!(used, one.len() * 3);
    assert!(!close);
    assert_eq!(out, OK.repeat(3));
}

#[test]
fn close_stops_the_batch() {
    let input =
        b"GET / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\n\r\n";
    let mut out = Vec::new();
    let (_, close) = respond(input, &mut out);
    assert!(close);
    assert_eq!(out, [OK, OK_CLOSE].concat());
}

#[test]
fn single_request_takes_the_fast_path_only_when_alone() {
    let one = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_eq!(single(one), Some((OK, false)));
    assert_eq!(single(&one.repeat(2)), None);
    assert_eq!(single(&one[..10]), None);
    assert_eq!(
        single(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n"),
        Some((OK_CLOSE, true))
    );
    assert_eq!(
        single(b"\x00\x01garbage\r\n\r\n"),
        Some((Reject::BadRequest.response(), true))
    );
}
