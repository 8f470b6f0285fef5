//! [`RegisteredFd`]: an fd together with the driver its ops run on, so
//! that whoever owns the fd also owns the end of its registration.

use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use super::Handle;

/// An fd that one driver runs ops on, owned with that driver: dropping it
/// drops the driver's readiness registration of the fd, then closes it.
///
/// The order matters on epoll, whose table is keyed by fd number: a
/// registration that outlived its fd would be taken for the next fd the
/// process opens with the same number. Own every fd you run ops on this
/// way; call [`Handle::release_fd`] yourself only for an fd that someone
/// else owns and closes (a C library's).
///
/// # Examples
///
/// ```
/// use coro_io::driver::{Handle, RegisteredFd};
/// use coro_io::{op, DriverKind};
///
/// let h = Handle::new(DriverKind::Epoll)?;
/// let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::NONBLOCK)?;
/// let (r, w) = (RegisteredFd::new(&h, r), RegisteredFd::new(&h, w));
/// let (res, _) = futures::executor::block_on(op::write(&h, w.raw(), b"hi".as_slice()));
/// assert_eq!(res?, 2);
/// let (res, buf) = futures::executor::block_on(op::read(&h, r.raw(), Vec::with_capacity(8)));
/// assert_eq!((res?, buf.as_slice()), (2, b"hi".as_slice()));
/// drop(r); // unregistered, then closed
/// futures::executor::block_on(w.close())?;
/// # std::io::Result::Ok(())
/// ```
pub struct RegisteredFd {
    /// `Some` until `into_fd` or `close` takes it (both consume `self`).
    fd: Option<OwnedFd>,
    driver: Handle,
}

impl fmt::Debug for RegisteredFd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegisteredFd")
            .field("fd", &self.raw())
            .field("driver", &self.driver.kind())
            .finish()
    }
}

impl RegisteredFd {
    /// Own `fd` for ops on `driver`.
    pub fn new(driver: &Handle, fd: OwnedFd) -> RegisteredFd {
        RegisteredFd {
            fd: Some(fd),
            driver: driver.clone(),
        }
    }

    /// The driver its ops run on.
    pub fn driver(&self) -> &Handle {
        &self.driver
    }

    /// The fd number, for building ops.
    pub fn raw(&self) -> RawFd {
        self.fd.as_ref().map_or(-1, |f| f.as_raw_fd())
    }

    /// Give the fd up, unregistered: the caller owns it again.
    pub fn into_fd(mut self) -> OwnedFd {
        let fd = self
            .fd
            .take()
            .expect("RegisteredFd holds its fd until consumed");
        self.driver.release_fd(fd.as_raw_fd());
        fd
    }

    /// Close it through the driver (which drops the registration first),
    /// reporting the error `close(2)` gives.
    ///
    /// # Cancel safety
    ///
    /// The fd is closed either way: dropped before it completes, the close
    /// still happens (see [`op::close`](crate::op::close)).
    pub async fn close(mut self) -> io::Result<()> {
        match self.fd.take() {
            Some(fd) => crate::op::close(&self.driver, fd).await,
            None => Ok(()),
        }
    }
}

impl AsFd for RegisteredFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd
            .as_ref()
            .expect("RegisteredFd holds its fd until consumed")
            .as_fd()
    }
}

impl AsRawFd for RegisteredFd {
    fn as_raw_fd(&self) -> RawFd {
        self.raw()
    }
}

impl Drop for RegisteredFd {
    fn drop(&mut self) {
        if let Some(fd) = self.fd.take() {
            self.driver.release_fd(fd.as_raw_fd());
            drop(fd);
        }
    }
}
