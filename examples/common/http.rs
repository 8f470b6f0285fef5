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
/// The answer to an HTTP/1.0 request that asked to keep the connection
/// open: a 1.0 client (ApacheBench's `-k`) keeps it only when the
/// response says so, and waits for the close otherwise.
pub const OK_KEEP_ALIVE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\nConnection: keep-alive\r\n\r\nHello, World!";
/// [`OK`] to a `HEAD` request: the same head, no body (RFC 9110 9.3.2).
pub const HEAD_OK: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\r\n";
/// [`OK_CLOSE`] to a `HEAD` request.
pub const HEAD_CLOSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n";
/// [`OK_KEEP_ALIVE`] to a `HEAD` request.
pub const HEAD_KEEP_ALIVE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\nConnection: keep-alive\r\n\r\n";

/// What the bytes at the front of a connection's buffer hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// Not a whole request yet: read more.
    Partial,
    /// One whole request of `len` bytes; answer it with `answer` (and
    /// close, when `close`).
    Request {
        /// Bytes the request occupies at the front of the buffer.
        len: usize,
        /// The client asked to close (or spoke HTTP/1.0 without keep-alive).
        close: bool,
        /// [`OK`], or the variant for `Connection: close`, HTTP/1.0
        /// keep-alive or `HEAD` ([`OK_CLOSE`], [`OK_KEEP_ALIVE`],
        /// [`HEAD_OK`], ...).
        answer: &'static [u8],
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
    // Only what may be a head: a byte past the limit must not turn a 431
    // into a 400, or the answer would depend on how the bytes were split
    // across reads (the fuzz target checks that it does not).
    let head_len = match req.parse(&buf[..buf.len().min(MAX_HEAD)]) {
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
    // httparse only completes with a version; 1.0 closes unless asked not
    // to. A `close` token wins over any `keep-alive` (RFC 9112 9.6).
    let http10 = req.version != Some(1);
    let (mut asked_close, mut asked_keep) = (false, false);
    let mut body = 0usize;
    let mut seen_length = false;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("connection") {
            for token in h.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    asked_close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    asked_keep = true;
                }
            }
        } else if h.name.eq_ignore_ascii_case("content-length") {
            // Digits only (RFC 9112 6.3): `parse` would take a sign, and
            // `str::trim` Unicode spaces, which a proxy in front may read
            // as another length. Around it, spaces and tabs (RFC 9110 5.5).
            let v = trim_ows(h.value);
            let Some(n) = Some(v)
                .filter(|v| !v.is_empty() && v.iter().all(u8::is_ascii_digit))
                .and_then(|v| std::str::from_utf8(v).ok()?.parse::<usize>().ok())
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
    let close = asked_close || (http10 && !asked_keep);
    // A 1.0 client keeps the connection only if the response says so.
    let confirm = http10 && !close;
    let head = req.method == Some("HEAD");
    let answer = match (head, close, confirm) {
        (false, false, false) => OK,
        (false, true, _) => OK_CLOSE,
        (false, false, true) => OK_KEEP_ALIVE,
        (true, false, false) => HEAD_OK,
        (true, true, _) => HEAD_CLOSE,
        (true, false, true) => HEAD_KEEP_ALIVE,
    };
    Frame::Request { len, close, answer }
}

/// The fast path of a connection without pipelining: when `input` is
/// exactly one whole request (or a refused one), its fixed response and
/// whether to close after it; `None` when [`respond`] must batch.
pub fn single(input: &[u8]) -> Option<(&'static [u8], bool)> {
    match parse(input) {
        Frame::Request { len, close, answer } if len == input.len() => Some((answer, close)),
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
            Frame::Request { len, close, answer } => {
                at += len;
                out.extend_from_slice(answer);
                if close {
                    return (at, true);
                }
            }
            Frame::Reject(r) => {
                out.extend_from_slice(r.response());
                return (input.len(), true);
            }
        }
    }
}

/// `v` without the spaces and tabs around it (HTTP's optional whitespace).
fn trim_ows(v: &[u8]) -> &[u8] {
    let ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = v.iter().position(|b| !ows(b)).unwrap_or(v.len());
    let end = v.iter().rposition(|b| !ows(b)).map_or(start, |i| i + 1);
    &v[start..end]
}
