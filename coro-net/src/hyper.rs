//! [hyper] 1.x on coro (feature `hyper`): the `hyper::rt` glue that
//! hyper-util provides for tokio, for coro's streams and scheduler.
//!
//! - [`CoroIo`] adapts any `futures_io` stream (a [`TcpStream`](crate::tcp::TcpStream),
//!   a [`UnixStream`](crate::unix::UnixStream), a TLS stream, their `&`
//!   forms) to `hyper::rt::{Read, Write}`;
//! - [`CoroTimer`] runs hyper's timeouts on the scheduler's timers;
//! - [`CoroExecutor`] spawns hyper's background tasks (HTTP/2, upgrades)
//!   on the scheduler.
//!
//! No tokio runtime is involved anywhere.
//!
//! # Examples
//!
//! An HTTP/1.1 server answering every request with `hello`:
//!
//! ```no_run
//! use std::convert::Infallible;
//! use std::time::Duration;
//!
//! use coro_io::IoScheduler;
//! use coro_net::hyper::{CoroIo, CoroTimer};
//! use coro_net::tcp::TcpListener;
//!
//! # fn main() -> std::io::Result<()> {
//! let sched = IoScheduler::new(Default::default())?;
//! let listener = TcpListener::bind(&sched, "127.0.0.1:8080")?;
//! let s = sched.clone();
//! coro_core::sync_wait(sched.spawn(async move {
//!     let mut http = hyper::server::conn::http1::Builder::new();
//!     http.timer(CoroTimer::new(&s))
//!         .header_read_timeout(Duration::from_secs(10));
//!     loop {
//!         // `accept` fails only for the listener itself (closed, not
//!         // listening): retrying would spin, so stop.
//!         let Ok((stream, _)) = listener.accept().await else { break };
//!         let service = hyper::service::service_fn(|_req| async {
//!             Ok::<_, Infallible>(hyper::Response::new(String::from("hello")))
//!         });
//!         let conn = http.serve_connection(CoroIo::new(stream), service);
//!         s.spawn(async move { let _ = conn.await; }).detach();
//!     }
//! }))
//! .unwrap();
//! # Ok(())
//! # }
//! ```
//!
//! [hyper]: https://hyper.rs

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use coro_io::IoScheduler;
use futures_io::{AsyncRead, AsyncWrite};

/// A `futures_io` stream as hyper's I/O (`hyper::rt::Read` and `Write`).
///
/// Reads copy through a small stack buffer: coro's streams hand out bytes
/// they already received into their own buffer, and `futures_io` needs an
/// initialised destination, which hyper's read buffer is not.
#[derive(Debug)]
pub struct CoroIo<S> {
    inner: S,
}

impl<S> CoroIo<S> {
    /// Wrap `inner`.
    pub fn new(inner: S) -> CoroIo<S> {
        CoroIo { inner }
    }

    /// The stream inside.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The stream inside, mutably.
    pub fn inner_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The stream inside (e.g. after an HTTP upgrade).
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: AsyncRead + Unpin> hyper::rt::Read for CoroIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let mut chunk = [0u8; 8 * 1024];
        let want = buf.remaining().min(chunk.len());
        let n = ready!(Pin::new(&mut self.get_mut().inner).poll_read(cx, &mut chunk[..want]))?;
        buf.put_slice(&chunk[..n]);
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> hyper::rt::Write for CoroIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_close(cx)
    }
}

/// hyper's timer (`hyper::rt::Timer`) on a scheduler's timers: header read
/// timeouts, keep-alive timers.
#[derive(Debug, Clone)]
pub struct CoroTimer {
    sched: IoScheduler,
}

impl CoroTimer {
    /// Timers of `sched`.
    pub fn new(sched: &IoScheduler) -> CoroTimer {
        CoroTimer {
            sched: sched.clone(),
        }
    }
}

/// One of hyper's sleeps.
struct Sleep(coro_io::time::Sleep);

impl Future for Sleep {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.0).poll(cx)
    }
}

impl hyper::rt::Sleep for Sleep {}

impl hyper::rt::Timer for CoroTimer {
    /// The scheduler's clock: hyper adds its timeouts to this, and the
    /// deadlines go back to the scheduler (`sleep_until`), whose clock may
    /// be paused or advanced by hand (tests), not the wall clock.
    fn now(&self) -> Instant {
        self.sched.now()
    }

    fn sleep(&self, d: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(Sleep(self.sched.sleep(d)))
    }

    fn sleep_until(&self, at: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(Sleep(self.sched.sleep_until(at)))
    }
}

/// hyper's executor (`hyper::rt::Executor`) on a scheduler: the tasks
/// hyper spawns (an HTTP/2 server's streams, an HTTP/2 client's
/// connection) run there, detached. HTTP/1 needs none (an upgraded
/// connection's future is the caller's to spawn).
#[derive(Debug, Clone)]
pub struct CoroExecutor {
    sched: IoScheduler,
}

impl CoroExecutor {
    /// Spawn onto `sched`.
    pub fn new(sched: &IoScheduler) -> CoroExecutor {
        CoroExecutor {
            sched: sched.clone(),
        }
    }
}

impl<F> hyper::rt::Executor<F> for CoroExecutor
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, fut: F) {
        self.sched.spawn(fut).detach();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use coro_io::{IoScheduler, IoSchedulerOptions, ThreadStrategy};
    use hyper::rt::Timer as _;

    use super::CoroTimer;

    /// hyper computes its deadlines as `timer.now() + timeout` and hands
    /// them back to `sleep_until`: both must be on the scheduler's clock,
    /// or a paused and advanced clock puts every header-read timeout in
    /// the past (or out of the test's reach).
    #[test]
    fn the_timer_tells_the_schedulers_time() {
        let sched = IoScheduler::new(IoSchedulerOptions {
            thread_strategy: ThreadStrategy::Manual,
            start_paused: true,
            ..Default::default()
        })
        .unwrap();
        sched.advance(Duration::from_secs(3600));
        let timer = CoroTimer::new(&sched);
        assert_eq!(timer.now(), sched.now());
        let mut sleep = timer.sleep_until(timer.now() + Duration::from_secs(10));
        let waker = futures::task::noop_waker();
        let mut cx = std::task::Context::from_waker(&waker);
        assert!(sleep.as_mut().poll(&mut cx).is_pending(), "fired early");
        sched.advance(Duration::from_secs(10));
        assert!(sleep.as_mut().poll(&mut cx).is_ready(), "not fired on time");
    }

    /// What hyper hands the executor runs on the scheduler, to the end,
    /// without anyone awaiting it.
    #[test]
    fn the_executor_runs_what_hyper_spawns_on_the_scheduler() {
        use hyper::rt::Executor as _;
        let sched = IoScheduler::new(Default::default()).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let s = sched.clone();
        super::CoroExecutor::new(&sched).execute(async move {
            s.sleep(Duration::from_millis(5)).await;
            let _ = tx.send(IoScheduler::current().is_some());
        });
        let on_it = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the spawned future never ran");
        assert!(on_it, "it ran outside the scheduler");
        sched.shutdown();
    }
}
