//! A [hyper] 1.x HTTP/1.1 server on coro: no tokio runtime anywhere. The
//! glue is `coro::net::hyper` (feature `hyper`): hyper's `rt` traits over
//! coro's `futures_io` streams and its scheduler's timers and spawn.
//!
//! ```text
//! cargo run --release --features hyper --example hyper_server [-- --port 8082 --driver epoll|uring|auto]
//! curl http://127.0.0.1:8082/
//! curl -d 'hello' http://127.0.0.1:8082/echo
//! ```
//!
//! Routes: `GET /` answers `Hello, World!`, `POST /echo` sends the body
//! back, anything else is 404. Keep-alive is hyper's; a connection whose
//! request head does not arrive within 10 s is closed (hyper's header read
//! timeout, run on coro's timers).
//!
//! [hyper]: https://hyper.rs

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use coro::io::{DriverKind, IoScheduler, IoSchedulerOptions};
use coro::net::hyper::{CoroIo, CoroTimer};
use coro::net::tcp::TcpListener;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};

/// The largest body `POST /echo` takes (413 beyond).
const MAX_ECHO: usize = 1 << 20;

async fn handle(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let reply = |status, body: Bytes| {
        let mut r = Response::new(Full::new(body));
        *r.status_mut() = status;
        Ok(r)
    };
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/") => reply(StatusCode::OK, Bytes::from_static(b"Hello, World!")),
        // At most MAX_ECHO bytes: a client streaming without end must
        // not grow the server until it runs out of memory.
        (&Method::POST, "/echo") => {
            // A declared length above the limit is refused from the head,
            // before hyper answers an `Expect: 100-continue` and the client
            // sends a body that would only be thrown away.
            if hyper::body::Body::size_hint(req.body()).lower() > MAX_ECHO as u64 {
                return reply(StatusCode::PAYLOAD_TOO_LARGE, Bytes::new());
            }
            match http_body_util::Limited::new(req.into_body(), MAX_ECHO)
                .collect()
                .await
            {
                Ok(body) => reply(StatusCode::OK, body.to_bytes()),
                Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                    reply(StatusCode::PAYLOAD_TOO_LARGE, Bytes::new())
                }
                Err(_) => reply(StatusCode::BAD_REQUEST, Bytes::new()),
            }
        }
        _ => reply(StatusCode::NOT_FOUND, Bytes::from_static(b"not found")),
    }
}

const USAGE: &str = "hyper_server [--port 8082] [--driver epoll|uring|auto]";

fn main() {
    let mut port = 8082u16;
    let mut driver = DriverKind::Auto;
    if std::env::args().skip(1).any(|a| a == "--help" || a == "-h") {
        println!("usage: {USAGE}");
        return;
    }
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match (a.as_str(), args.next()) {
            ("--port", Some(v)) => port = v.parse().unwrap_or_else(|_| usage("bad --port")),
            ("--driver", Some(v)) => {
                driver = match v.as_str() {
                    "epoll" => DriverKind::Epoll,
                    "uring" | "io_uring" => DriverKind::IoUring,
                    "auto" => DriverKind::Auto,
                    _ => usage("bad --driver"),
                }
            }
            _ => usage(&format!("unexpected argument {a:?}")),
        }
    }
    let sched = IoScheduler::new(IoSchedulerOptions {
        driver,
        ..Default::default()
    })
    .unwrap_or_else(|e| fail(&e.to_string()));
    let listener =
        TcpListener::bind(&sched, ("127.0.0.1", port)).unwrap_or_else(|e| fail(&e.to_string()));
    let addr = listener
        .local_addr()
        .unwrap_or_else(|e| fail(&e.to_string()));
    println!(
        "hyper_server: listening on http://{addr} ({:?} driver); press Ctrl-C to stop",
        sched.driver_kind()
    );
    let s = sched.clone();
    let server = sched.spawn(async move {
        let http = {
            let mut b = hyper::server::conn::http1::Builder::new();
            b.timer(CoroTimer::new(&s))
                .header_read_timeout(Duration::from_secs(10));
            b
        };
        // (HTTP/2, with hyper's `http2` feature, would take
        // `coro::net::hyper::CoroExecutor::new(&s)` for its streams.)
        loop {
            let (stream, _peer) = match listener.accept().await {
                Ok(c) => c,
                // Only errors of the listener itself reach here (the
                // library rides out EMFILE and connection errors): a
                // retry would fail again at once, so stop serving.
                Err(e) => {
                    eprintln!("hyper_server: accept: {e}; no longer accepting");
                    break;
                }
            };
            let _ = stream.set_nodelay(true);
            let conn =
                http.serve_connection(CoroIo::new(stream), hyper::service::service_fn(handle));
            s.spawn(async move {
                if let Err(e) = conn.await {
                    // A client gone mid-request, and a connection left
                    // idle past the header timeout, are how connections
                    // end, not errors.
                    if !e.is_incomplete_message() && !e.is_timeout() {
                        eprintln!("hyper_server: connection: {e}");
                    }
                }
            })
            .detach();
        }
    });
    let _ = coro::sync_wait(server);
}

fn usage(why: &str) -> ! {
    eprintln!("hyper_server: {why}\nusage: {USAGE}");
    std::process::exit(2)
}

fn fail(why: &str) -> ! {
    eprintln!("hyper_server: {why}");
    std::process::exit(1)
}
