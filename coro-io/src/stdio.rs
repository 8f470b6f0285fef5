//! The process's standard streams as `futures_io` streams: [`stdin`],
//! [`stdout`], [`stderr`].
//!
//! Each read or write runs `std::io`'s blocking call on the blocking pool
//! (as [`spawn_blocking`](crate::blocking::spawn_blocking) does, with no
//! scheduler held: a read waiting at an idle terminal does not keep the
//! caller's scheduler alive after its shutdown), as tokio's do: a standard
//! stream may be a terminal, a pipe or a regular file, and neither epoll
//! (regular files) nor a non-blocking flag (it would change the stream for
//! every process sharing it) serves all three. So they work from any
//! executor, on a scheduler or not.
//!
//! Writes are write-behind: `poll_write` hands the bytes to the pool and
//! returns; `flush` waits for them and reports their outcome. Writes of
//! one `Stdout` (or `Stderr`) keep their order; two handles, or a handle
//! and `println!`, interleave as two threads' writes would. That holds for
//! handles one after the other too: a handle dropped right after a write
//! leaves that write queued, and the next handle's may go out first
//! (flush before dropping where order matters; tokio's behave alike).
//!
//! # Cancel safety
//!
//! A read future dropped between polls loses nothing: the `Stdin` keeps
//! the read going and hands its bytes to the next read. A read asks for no
//! more than the caller's buffer holds, so a `Stdin` dropped after reads
//! that completed holds nothing (a new one, as `coro_io::stdin().read(..)`
//! per call makes, reads on where it ended); after a dropped read future,
//! it holds what that read got beyond the next reads' buffers until they
//! take it. A blocking read cannot be interrupted,
//! though: dropping the `Stdin` itself with a read in flight loses what
//! that read gets. Unbuffered small reads cost a trip to the pool each:
//! wrap it in a `BufReader` (whose buffer is then what a drop loses). Dropping a `Stdout` with writes in
//! flight lets them finish in the background, unreported, unless the
//! process exits first: flush before returning from `main`.
//!
//! # Examples
//!
//! ```no_run
//! use futures::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
//!
//! # fn main() -> std::io::Result<()> {
//! futures::executor::block_on(async {
//!     // `cat`, one line at a time.
//!     let mut lines = BufReader::new(coro_io::stdin()).lines();
//!     let mut out = coro_io::stdout();
//!     while let Some(line) = futures::StreamExt::next(&mut lines).await {
//!         out.write_all(line?.as_bytes()).await?;
//!         out.write_all(b"\n").await?;
//!     }
//!     out.flush().await
//! })
//! # }
//! ```

use std::fmt;
use std::io::{self, Read, Write};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures_io::{AsyncRead, AsyncWrite};

use crate::blocking::spawn_blocking_unscoped;
use crate::task::JoinHandle;

/// The most one blocking read asks for.
const READ_MAX: usize = 1 << 20;
/// The most one `poll_write` takes.
const WRITE_MAX: usize = 1 << 20;

/// The process's standard input ([`stdin`]); implements [`AsyncRead`].
pub struct Stdin {
    /// `buf[head..]` is read but not yet handed out.
    buf: Vec<u8>,
    head: usize,
    busy: Option<JoinHandle<(io::Result<usize>, Vec<u8>)>>,
}

/// The process's standard input, read on the blocking pool.
///
/// Buffer it (`futures::io::BufReader`) for line-by-line reading. Use one
/// `Stdin` at a time: two reading at once split the input between them.
pub fn stdin() -> Stdin {
    Stdin {
        buf: Vec::new(),
        head: 0,
        busy: None,
    }
}

impl fmt::Debug for Stdin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stdin")
            .field("buffered", &(self.buf.len() - self.head))
            .field("reading", &self.busy.is_some())
            .finish()
    }
}

impl AsyncRead for Stdin {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if out.is_empty() {
            return Poll::Ready(Ok(0));
        }
        loop {
            let ready = &this.buf[this.head..];
            if !ready.is_empty() {
                let n = ready.len().min(out.len());
                out[..n].copy_from_slice(&ready[..n]);
                this.head += n;
                return Poll::Ready(Ok(n));
            }
            if let Some(read) = &mut this.busy {
                let done = ready!(Pin::new(read).poll(cx));
                this.busy = None;
                let (res, buf) = done.map_err(io::Error::from)?;
                this.buf = buf;
                this.head = 0;
                if res? == 0 {
                    return Poll::Ready(Ok(0));
                }
                continue;
            }
            let mut buf = std::mem::take(&mut this.buf);
            this.head = 0;
            // No more than asked for: what this `Stdin` holds is lost with
            // it, where what it did not read stays for the next handle (in
            // std's own buffer of the process's stdin, or in the pipe).
            buf.resize(out.len().min(READ_MAX), 0);
            this.busy = Some(spawn_blocking_unscoped(move || {
                let res = loop {
                    // A signal handler installed without `SA_RESTART`:
                    // retried, as std's `read_exact` and tokio's stdin do
                    // (futures' `read_line` and `copy` pass it on).
                    match io::stdin().lock().read(&mut buf) {
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        r => break r,
                    }
                };
                buf.truncate(*res.as_ref().unwrap_or(&0));
                (res, buf)
            }));
        }
    }
}

/// Which standard output stream a [`Writer`] writes to.
#[derive(Debug, Clone, Copy)]
enum Sink {
    Out,
    Err,
}

/// A write-behind writer to a standard stream on the blocking pool.
struct Writer {
    sink: Sink,
    /// The write in flight: its outcome and its buffer, for reuse.
    busy: Option<JoinHandle<(io::Result<()>, Vec<u8>)>>,
    spare: Vec<u8>,
}

impl Writer {
    fn new(sink: Sink) -> Writer {
        Writer {
            sink,
            busy: None,
            spare: Vec::new(),
        }
    }

    /// Wait for the write in flight and report it.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(write) = &mut self.busy {
            let done = ready!(Pin::new(write).poll(cx));
            self.busy = None;
            let (res, buf) = done.map_err(io::Error::from)?;
            self.spare = buf;
            res?;
        }
        Poll::Ready(Ok(()))
    }

    fn poll_write(&mut self, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        ready!(self.poll_idle(cx))?;
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let n = data.len().min(WRITE_MAX);
        let mut buf = std::mem::take(&mut self.spare);
        buf.clear();
        buf.extend_from_slice(&data[..n]);
        let sink = self.sink;
        self.busy = Some(spawn_blocking_unscoped(move || {
            let res = match sink {
                Sink::Out => {
                    let mut out = io::stdout().lock();
                    out.write_all(&buf).and_then(|()| out.flush())
                }
                Sink::Err => io::stderr().lock().write_all(&buf),
            };
            (res, buf)
        }));
        Poll::Ready(Ok(n))
    }
}

macro_rules! writer {
    ($(#[$doc:meta])* $name:ident, $ctor:ident, $sink:expr, $what:literal) => {
        $(#[$doc])*
        pub struct $name(Writer);

        #[doc = concat!("The process's standard ", $what, ", written on the blocking pool.")]
        ///
        /// Write-behind: `flush` (or `close`) waits for what was written and
        /// reports a failure, e.g. a closed pipe (`BrokenPipe`).
        pub fn $ctor() -> $name {
            $name(Writer::new($sink))
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("writing", &self.0.busy.is_some())
                    .finish()
            }
        }

        impl AsyncWrite for $name {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                data: &[u8],
            ) -> Poll<io::Result<usize>> {
                self.get_mut().0.poll_write(cx, data)
            }
            fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                self.get_mut().0.poll_idle(cx)
            }
            fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                self.get_mut().0.poll_idle(cx)
            }
        }
    };
}

writer!(
    /// The process's standard output ([`stdout`]); implements [`AsyncWrite`].
    Stdout,
    stdout,
    Sink::Out,
    "output"
);
writer!(
    /// The process's standard error ([`stderr`]); implements [`AsyncWrite`].
    Stderr,
    stderr,
    Sink::Err,
    "error"
);
