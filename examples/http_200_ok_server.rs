//! libcoro's `http_200_ok_server`: answer every HTTP/1.1 request with
//! `200 OK`, as fast as the machine allows.
//!
//! ```text
//! cargo run --release --example http_200_ok_server [-- --threads N --port 8080 --driver epoll|uring|auto --idle-ms 10000]
//! wrk -t1 -c64 -d10s http://127.0.0.1:8080/
//! ```
//!
//! Thread-per-core: one inline `IoScheduler` per core, each with its own
//! `SO_REUSEPORT` listener. Per connection: keep-alive; pipelined requests
//! are answered with one write for the whole batch; requests split across
//! reads are reassembled; `Connection: close` (and HTTP/1.0 without
//! keep-alive) is honoured; malformed requests get `400`, heads over 8 KiB
//! `431`, and the connection is closed after those (lingering: the write
//! side is shut first and what the client still sends is read for up to a
//! second, so the answer is not lost to a reset). A connection that
//! completes no request and takes no response for `--idle-ms` (up to twice
//! that: the timer is re-armed lazily) is closed: an idle one, a peer that
//! stops reading its responses, one whose request (head and body) takes
//! longer than that to arrive (slowloris: a byte at a time). Buffers grown
//! for a burst shrink back afterwards.
//! The framing lives in `examples/common/http.rs`, shared with the tokio
//! twin in `bench/` so that both do the same work per request.

#[path = "common/args.rs"]
#[allow(dead_code, unreachable_pub)]
mod args;
#[path = "common/http.rs"]
#[allow(dead_code, unreachable_pub)]
mod http;
#[path = "common/per_core.rs"]
#[allow(dead_code, unreachable_pub)]
mod per_core;

use std::future::{Future, poll_fn};
use std::net::Shutdown;
use std::pin::{Pin, pin};
use std::task::Poll;
use std::time::Duration;

use coro::io::IoScheduler;
use coro::net::tcp::TcpStream;

/// First read buffer: one request fits. A read that fills the buffer
/// doubles it (pipelining, long heads), up to `READ_BUF_MAX`; an idle
/// connection so holds one small buffer.
const READ_BUF: usize = 1024;
const READ_BUF_MAX: usize = 16 * 1024;

fn main() {
    const USAGE: &str = "http_200_ok_server [--threads N] [--port 8080] [--host 127.0.0.1] \
         [--driver epoll|uring|auto] [--idle-ms 10000] [--drain-ms 2000] [--stats-file PATH] \
         [--recv-queue on|off] [--recv-buffers N]";
    let a = args::Args::from_env(USAGE);
    let server = per_core::ServerArgs::from(&a, 8080);
    let idle = Duration::from_millis(a.get_in("idle-ms", 10_000u64, 1..=u64::from(u32::MAX)));
    a.reject_unknown(USAGE, &[]);
    per_core::run(
        "http_200_ok_server",
        "http://",
        &server,
        move |sched, listener| {
            per_core::accept_loop(sched, listener, move |s, stream| conn(s, stream, idle))
        },
    )
}

/// The idle timer of one connection, re-armed lazily: it is registered
/// once per `idle` period, not once per request (polling an armed sleep
/// with the same waker is one atomic load).
struct IdleTimer {
    sleep: coro::io::time::Sleep,
    /// Progress since the sleep was made: a whole request read, a response
    /// sent.
    active: bool,
    idle: Duration,
}

impl IdleTimer {
    fn new(sched: &IoScheduler, idle: Duration) -> IdleTimer {
        IdleTimer {
            sleep: sched.sleep(idle),
            active: false,
            idle,
        }
    }

    /// `Ready` once the connection was idle for `idle` to `2 * idle`.
    fn poll_expired(&mut self, sched: &IoScheduler, cx: &mut std::task::Context<'_>) -> Poll<()> {
        loop {
            match Pin::new(&mut self.sleep).poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(()) if self.active => {
                    self.active = false;
                    self.sleep = sched.sleep(self.idle);
                }
                Poll::Ready(()) => return Poll::Ready(()),
            }
        }
    }
}

/// The future `make` makes (a read or a write of the connection), or
/// `None` once the connection made no progress for too long. The timer is
/// looked at only while that future waits. (It is made in here, not passed
/// in: a future moved into this one is a copy of all its state per call.)
async fn or_idle<F: Future>(
    sched: &IoScheduler,
    make: impl FnOnce() -> F,
    timer: &mut IdleTimer,
) -> Option<F::Output> {
    let mut fut = pin!(make());
    poll_fn(|cx| {
        if let Poll::Ready(r) = fut.as_mut().poll(cx) {
            return Poll::Ready(Some(r));
        }
        timer.poll_expired(sched, cx).map(|()| None)
    })
    .await
}

/// Send `buf`, or `false` if the send failed or the peer stopped reading
/// for too long (a write that waits is bounded by the idle timer too).
async fn send<B: coro::io::buf::IoBuf>(
    sched: &IoScheduler,
    stream: &TcpStream,
    buf: B,
    timer: &mut IdleTimer,
) -> (bool, Option<B>) {
    match or_idle(sched, || stream.write_all(buf), timer).await {
        Some((Ok(()), buf)) => {
            timer.active = true; // the peer reads: progress
            (true, Some(buf))
        }
        Some((Err(_), buf)) => (false, Some(buf)),
        None => (false, None),
    }
}

async fn conn(sched: IoScheduler, stream: TcpStream, idle: Duration) {
    let _ = stream.set_nodelay(true);
    let mut rbuf = Vec::with_capacity(READ_BUF);
    // Bytes of a request that is not whole yet (empty almost always).
    let mut input: Vec<u8> = Vec::new();
    // Responses of a pipelined batch (allocated only when pipelining).
    let mut out: Vec<u8> = Vec::new();
    let mut timer = IdleTimer::new(&sched, idle);
    loop {
        let Some((res, buf)) = or_idle(&sched, || stream.read(rbuf), &mut timer).await else {
            return; // idle too long
        };
        let n = match res {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let close = if input.is_empty() {
            if let Some((response, close)) = http::single(&buf[..n]) {
                // The common case: one request, one static response, no copy.
                if !send(&sched, &stream, response, &mut timer).await.0 {
                    return;
                }
                close
            } else {
                let (used, close) = http::respond(&buf[..n], &mut out);
                if !close {
                    input.extend_from_slice(&buf[used..n]);
                }
                close
            }
        } else {
            input.extend_from_slice(&buf[..n]);
            let (used, close) = http::respond(&input, &mut out);
            input.drain(..used);
            close
        };
        if !out.is_empty() {
            // One write for every response of the batch.
            let (ok, o) = send(&sched, &stream, out, &mut timer).await;
            match o {
                Some(o) if ok => out = o,
                _ => return,
            }
            out.clear();
        }
        if close {
            linger_close(&sched, stream).await;
            return;
        }
        // Only a whole request counts as activity: a peer that sends a
        // request a byte at a time (slowloris) is closed as idle.
        if input.is_empty() {
            timer.active = true;
        }
        // Buffers a burst grew go back to their small size, so that an idle
        // connection holds little: what pipelining or a long request needed
        // is not kept for the connection's life.
        if out.capacity() > READ_BUF_MAX {
            out = Vec::new();
        }
        if input.is_empty() && input.capacity() > READ_BUF_MAX {
            input = Vec::new();
        }
        rbuf = buf;
        rbuf.clear();
        if n == rbuf.capacity() && n < READ_BUF_MAX {
            rbuf = Vec::with_capacity(n * 2);
        } else if n < rbuf.capacity() / 4 && rbuf.capacity() > READ_BUF {
            rbuf = Vec::with_capacity(rbuf.capacity() / 2);
        }
    }
}

/// Close after a final response without a reset eating it: shut the write
/// side, then read (and drop) what the client still sends, until it closes,
/// for at most a second or 64 KiB.
async fn linger_close(sched: &IoScheduler, stream: TcpStream) {
    let _ = stream.shutdown(Shutdown::Write);
    let drain = async {
        let mut buf = Vec::with_capacity(4096);
        let mut total = 0;
        while total < 64 * 1024 {
            let (r, mut b) = stream.read(buf).await;
            match r {
                Ok(0) | Err(_) => return,
                Ok(n) => total += n,
            }
            b.clear();
            buf = b;
        }
    };
    let _ = sched.timeout(Duration::from_secs(1), drain).await;
}
