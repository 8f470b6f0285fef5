//! [`File`]: positional file I/O through the scheduler's driver.
//!
//! io_uring runs these natively; the epoll driver runs them on the blocking
//! pool (regular files are always "ready" for epoll, so readiness cannot
//! help).

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::Path;
use std::sync::Arc;

use crate::buf::{BufResult, IoBuf, IoBufMut};
use crate::driver::Handle;
use crate::op;
use crate::scheduler::IoScheduler;

/// An open file whose reads and writes go through an [`IoScheduler`].
///
/// # Examples
///
/// ```
/// use coro_io::{IoScheduler, fs::File};
///
/// let sched = IoScheduler::new(Default::default())?;
/// let path = std::env::temp_dir().join(format!("coro-io-doc-{}", std::process::id()));
/// let s = sched.clone();
/// let p = path.clone();
/// let got = coro_core::sync_wait(sched.spawn(async move {
///     let f = File::create(&s, &p).await?;
///     let (res, _) = f.write_at(b"hello world".as_slice(), 0).await;
///     res?;
///     f.sync_all().await?;
///     let (res, buf) = f.read_at(Vec::with_capacity(5), 6).await;
///     res?;
///     std::io::Result::Ok(buf)
/// })).unwrap()?;
/// assert_eq!(got, b"world");
/// std::fs::remove_file(path)?;
/// # std::io::Result::Ok(())
/// ```
#[derive(Debug)]
pub struct File {
    fd: Arc<OwnedFd>,
    driver: Handle,
}

impl File {
    /// Open an existing file read-only (the `open` syscall runs on the
    /// blocking pool).
    ///
    /// # Errors
    ///
    /// Whatever `open(2)` reports.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: if dropped, the file opened in the background is closed.
    pub async fn open(sched: &IoScheduler, path: impl AsRef<Path>) -> io::Result<File> {
        let path = path.as_ref().to_owned();
        File::with_options(sched, move || std::fs::File::open(path)).await
    }

    /// Create (or truncate) a file for reading and writing.
    ///
    /// # Errors
    ///
    /// Whatever `open(2)` reports.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: if dropped, the file is still created, then closed.
    pub async fn create(sched: &IoScheduler, path: impl AsRef<Path>) -> io::Result<File> {
        let path = path.as_ref().to_owned();
        File::with_options(sched, move || {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(path)
        })
        .await
    }

    async fn with_options<F>(sched: &IoScheduler, open: F) -> io::Result<File>
    where
        F: FnOnce() -> io::Result<std::fs::File> + Send + 'static,
    {
        let f = crate::blocking::spawn_blocking(open)
            .await
            .map_err(io::Error::from)??;
        Ok(File::from_std(sched, f))
    }

    /// Wrap an already open std file.
    pub fn from_std(sched: &IoScheduler, f: std::fs::File) -> File {
        File {
            fd: Arc::new(OwnedFd::from(f)),
            driver: sched.driver().clone(),
        }
    }

    /// Read into `buf` (from its start, up to its capacity) at `offset`.
    /// `Ok(0)` at end of file.
    ///
    /// # Cancel safety
    ///
    /// A dropped read finishes in the background (the file stays open until
    /// it did); the data is discarded.
    pub async fn read_at<B: IoBufMut>(&self, buf: B, offset: u64) -> BufResult<usize, B> {
        op::read_at(&self.driver, self.fd.as_raw_fd(), buf, offset)
            .keep_alive(self.fd.clone())
            .await
    }

    /// Write the initialised bytes of `buf` at `offset`; may write fewer.
    ///
    /// # Cancel safety
    ///
    /// A dropped write still completes in the background.
    pub async fn write_at<B: IoBuf>(&self, buf: B, offset: u64) -> BufResult<usize, B> {
        op::write_at(&self.driver, self.fd.as_raw_fd(), buf, offset)
            .keep_alive(self.fd.clone())
            .await
    }

    /// Flush data and metadata to the device.
    ///
    /// # Errors
    ///
    /// Whatever `fsync(2)` reports.
    ///
    /// # Cancel safety
    ///
    /// A dropped sync still completes in the background.
    pub async fn sync_all(&self) -> io::Result<()> {
        op::fsync(&self.driver, self.fd.as_raw_fd())
            .keep_alive(self.fd.clone())
            .await
    }
}

impl AsRawFd for File {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl AsFd for File {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
