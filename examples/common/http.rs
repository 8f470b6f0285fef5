//! HTTP/1.1 request framing shared by the "200 OK" servers: coro's
//! `http_200_ok_server` example and its tokio twin in `bench/`, so that both do
//! exactly the same protocol work per request.
//!
//! Parsing is `httparse`'s; this module adds framing (where one request ends,
//! whether the connection stays open) and the fixed responses.

/// Largest request head (request line plus headers) accepted; beyond it the
/// server answers 431 and closes.
pub const MAX_HEAD: usize = 8 * 1024;
/// Largest request body accepted (it is read and ignored); beyond it 413.
pub const MAX_BODY: usize = 64 * 1024;
/// Most headers a request may carry.
pub const MAX_HEADERS: usize = 64;

/// The answer to every well-formed request.
pub const OK: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\r\nHello, World!";
/// The answer to a well-formed request that asked to close the connection.
pub const OK_CLOSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nHello, World!";

/// What the bytes at the front of a connection's buffer hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// Not a whole request yet: read more.
    Partial,
    /// One whole request of `len` bytes; answer it with [`OK`] (or [`OK_CLOSE`]
    /// and close, when `close`).
    Request {
        /// Bytes the request occupies at the front of the buffer.
        len: usize,
        /// The client asked to close (or spoke HTTP/1.0 without keep-alive).
        close: bool,
    },
    /// A request that is refused: send [`Reject::response`] and close.
    Reject(Reject),
}

/// Why a request is refused; each maps to one status line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    /// 400: not HTTP/1.x, or malformed.
    BadRequest,
    /// 413: body larger than [`MAX_BODY`].
    PayloadTooLarge,
    /// 431: head larger than [`MAX_HEAD`] or more than [`MAX_HEADERS`] headers.
    HeadersTooLarge,
    /// 501: a transfer coding this server does not decode (chunked bodies).
    NotImplemented,
}

impl Reject {
    /// The full response, including `Connection: close`.
    pub fn response(self) -> &'static [u8] {
        match self {
            Reject::BadRequest => {
                b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            }
            Reject::PayloadTooLarge => {
                b"HTTP/1.1 413 Content Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            }
            Reject::HeadersTooLarge => {
                b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            }
            Reject::NotImplemented => {
                b"HTTP/1.1 501 Not Implemented\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            }
        }
    }
}

/// Frames the first request in `buf`.
///
/// Never panics, whatever the input (the fuzz target checks this).
pub fn parse(buf: &[u8]) -> Frame {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            return if buf.len() > MAX_HEAD {
                Frame::Reject(Reject::HeadersTooLarge)
            } else {
                Frame::Partial
            };
        }
        Err(httparse::Error::TooManyHeaders) => return Frame::Reject(Reject::HeadersTooLarge),
        Err(_) => return Frame::Reject(Reject::BadRequest),
    };
    if head_len > MAX_HEAD {
        return Frame::Reject(Reject::HeadersTooLarge);
    }
    // httparse only completes with a version; 1.0 closes unless asked not to.
    let mut close = req.version != Some(1);
    let mut body = 0usize;
    let mut seen_length = false;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("connection") {
            for token in h.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    close = false;
                }
            }
        } else if h.name.eq_ignore_ascii_case("content-length") {
            let Some(n) = std::str::from_utf8(h.value)
                .ok()
                .and_then(|s| s.trim().parse::<usize>().ok())
            else {
                return Frame::Reject(Reject::BadRequest);
            };
            // Two different lengths are a request-smuggling vector (RFC 9112 6.3).
            if seen_length && n != body {
                return Frame::Reject(Reject::BadRequest);
            }
            seen_length = true;
            body = n;
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Frame::Reject(Reject::NotImplemented);
        }
    }
    if body > MAX_BODY {
        return Frame::Reject(Reject::PayloadTooLarge);
    }
    let len = head_len + body;
    if buf.len() < len {
        return Frame::Partial;
    }
    Frame::Request { len, close }
}

/// The fast path of a connection without pipelining: when `input` is
/// exactly one whole request (or a refused one), its fixed response and
/// whether to close after it; `None` when [`respond`] must batch.
pub fn single(input: &[u8]) -> Option<(&'static [u8], bool)> {
    match parse(input) {
        Frame::Request { len, close } if len == input.len() => {
            Some((if close { OK_CLOSE } else { OK }, close))
        }
        Frame::Reject(r) => Some((r.response(), true)),
        _ => None,
    }
}

/// Answers every whole request at the front of `input`, appending the
/// responses to `out` (pipelined requests get one batched write).
///
/// Returns how many bytes of `input` were consumed and whether the connection
/// must be closed once `out` is written.
pub fn respond(input: &[u8], out: &mut Vec<u8>) -> (usize, bool) {
    let mut at = 0;
    loop {
        match parse(&input[at..]) {
            Frame::Partial => return (at, false),
            Frame::Request { len, close } => {
                at += len;
                if close {
                    out.extend_from_slice(OK_CLOSE);
                    return (at, true);
                }
                out.extend_from_slice(OK);
            }
            Frame::Reject(r) => {
                out.extend_from_slice(r.response());
                return (input.len(), true);
            }
        }
    }
}
