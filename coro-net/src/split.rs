//! Owned read and write halves of a stream ([`TcpStream::into_split`],
//! [`UnixStream::into_split`]), for a reader task and a writer task.
//!
//! Both halves share the stream. The read half implements
//! `futures_io::AsyncRead`, the write half `futures_io::AsyncWrite`; neither
//! has owned-buffer methods of its own, so `AsyncReadExt::read` and
//! `AsyncWriteExt::write_all` are the `read` and `write_all` a tokio user
//! writes (on the whole stream the owned-buffer methods of the same names
//! come first). [`as_ref`](OwnedReadHalf::as_ref) gives the stream for its
//! owned-buffer I/O, and the halves take part in
//! [`coro_io::copy::copy`] as the stream does (a proxy copying between
//! the halves of two streams, one task per direction; `copy_bidirectional`
//! takes the whole streams). Dropping the write half shuts the write side down, so
//! the peer reads the end of the stream, after the bytes written through
//! it (see [`OwnedWriteHalf`]);
//! [`reunite`](OwnedReadHalf::reunite) puts the two back together.
//!
//! Tasks can also share `&TcpStream`: it implements the same traits.
//!
//! [`TcpStream::into_split`]: crate::tcp::TcpStream::into_split
//! [`UnixStream::into_split`]: crate::unix::UnixStream::into_split

use std::fmt;
use std::io;
use std::net::Shutdown;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_io::{AsyncRead, AsyncWrite};

/// A stream that can be split (TCP, Unix).
pub trait Splittable: Sized + Send + Sync + 'static {
    /// Shut down one or both directions.
    ///
    /// # Errors
    ///
    /// As `shutdown(2)`.
    fn shutdown(&self, how: Shutdown) -> io::Result<()>;

    /// The write half was dropped while bytes its `AsyncWrite` accepted
    /// are still being sent: send them, then shut the write side down, in
    /// the background. `false` if that cannot be done (the default): the
    /// write side then stays open until the stream goes.
    #[doc(hidden)]
    fn shutdown_write_later(self: Arc<Self>) -> bool {
        false
    }
}

/// Split `stream` (what the streams' `into_split` call).
pub(crate) fn split<S: Splittable>(stream: S) -> (OwnedReadHalf<S>, OwnedWriteHalf<S>) {
    let s = Arc::new(stream);
    (
        OwnedReadHalf { stream: s.clone() },
        OwnedWriteHalf {
            stream: s,
            shutdown_on_drop: true,
        },
    )
}

/// The read half of a stream, from `into_split`.
pub struct OwnedReadHalf<S> {
    stream: Arc<S>,
}

/// The write half of a stream, from `into_split`. Dropping it shuts the
/// write side down (the peer then reads the end of the stream). Bytes the
/// `AsyncWrite` adapter accepted and is still sending (it writes behind
/// on io_uring; on epoll it keeps none in flight) go first: a background task of the stream's scheduler finishes their
/// send, then shuts the write side down (giving up after 10 s of a peer
/// that does not read, or when the scheduler shuts down). `close()` it to
/// learn whether they were sent.
pub struct OwnedWriteHalf<S: Splittable> {
    stream: Arc<S>,
    shutdown_on_drop: bool,
}

impl<S> fmt::Debug for OwnedReadHalf<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OwnedReadHalf(..)")
    }
}

impl<S: Splittable> fmt::Debug for OwnedWriteHalf<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OwnedWriteHalf(..)")
    }
}

/// The halves given to [`OwnedReadHalf::reunite`] came from different
/// streams; they are handed back.
pub struct ReuniteError<S: Splittable>(pub OwnedReadHalf<S>, pub OwnedWriteHalf<S>);

impl<S: Splittable> fmt::Debug for ReuniteError<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReuniteError(..)")
    }
}

impl<S: Splittable> fmt::Display for ReuniteError<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("tried to reunite halves of different streams")
    }
}

impl<S: Splittable> std::error::Error for ReuniteError<S> {}

impl<S: Splittable> OwnedReadHalf<S> {
    /// Put the two halves of one stream back together.
    ///
    /// # Errors
    ///
    /// [`ReuniteError`] (holding both) if they are halves of different
    /// streams.
    pub fn reunite(self, other: OwnedWriteHalf<S>) -> Result<S, ReuniteError<S>> {
        if !Arc::ptr_eq(&self.stream, &other.stream) {
            return Err(ReuniteError(self, other));
        }
        let mut w = other;
        w.shutdown_on_drop = false;
        drop(w);
        Ok(Arc::into_inner(self.stream).expect("the two halves held the only references"))
    }
}

impl<S> AsRef<S> for OwnedReadHalf<S> {
    /// The stream, for its owned-buffer reads. They may follow this half's
    /// `AsyncRead` reads: bytes its buffer holds (or its receive in flight
    /// got) come first, so nothing is lost or reordered.
    fn as_ref(&self) -> &S {
        &self.stream
    }
}

impl<S: Splittable> AsRef<S> for OwnedWriteHalf<S> {
    /// The stream, for its owned-buffer writes.
    fn as_ref(&self) -> &S {
        &self.stream
    }
}

impl<S: Splittable> OwnedWriteHalf<S> {
    /// Put the halves back together (see [`OwnedReadHalf::reunite`]).
    ///
    /// # Errors
    ///
    /// As [`OwnedReadHalf::reunite`].
    pub fn reunite(self, other: OwnedReadHalf<S>) -> Result<S, ReuniteError<S>> {
        other.reunite(self)
    }
}

impl<S: Splittable> Drop for OwnedWriteHalf<S> {
    fn drop(&mut self) {
        if self.shutdown_on_drop {
            // The peer reads the end of the stream; `NotConnected` (it is
            // gone already) is fine. A send still in flight goes first.
            if let Err(e) = self.stream.shutdown(Shutdown::Write) {
                if e.kind() == io::ErrorKind::WouldBlock {
                    self.stream.clone().shutdown_write_later();
                }
            }
        }
    }
}

impl<S> AsyncRead for OwnedReadHalf<S>
where
    for<'a> &'a S: AsyncRead,
{
    /// See the stream's `AsyncRead`.
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut &*self.stream).poll_read(cx, buf)
    }
}

impl<S: Splittable> AsyncWrite for OwnedWriteHalf<S>
where
    for<'a> &'a S: AsyncWrite,
{
    /// See the stream's `AsyncWrite`.
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut &*self.stream).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut &*self.stream).poll_flush(cx)
    }
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut &*self.stream).poll_close(cx)
    }
}

impl<S: Splittable + coro_io::copy::ReadOwned> coro_io::copy::ReadOwned for OwnedReadHalf<S> {
    /// The stream's owned-buffer read.
    fn read_owned<B: coro_io::buf::IoBufMut>(
        &self,
        buf: B,
    ) -> impl std::future::Future<Output = coro_io::buf::BufResult<usize, B>> + Send {
        self.stream.read_owned(buf)
    }
}

impl<S: Splittable + coro_io::copy::WriteOwned> coro_io::copy::WriteOwned for OwnedWriteHalf<S> {
    /// The stream's owned-buffer `write_all` (after the bytes this half's
    /// `AsyncWrite` accepted).
    fn write_all_owned<B: coro_io::buf::IoBuf>(
        &self,
        buf: B,
    ) -> impl std::future::Future<Output = coro_io::buf::BufResult<(), B>> + Send {
        self.stream.write_all_owned(buf)
    }

    /// The stream's write-side shutdown.
    fn shutdown_write(&self) -> impl std::future::Future<Output = io::Result<()>> + Send {
        self.stream.shutdown_write()
    }
}
