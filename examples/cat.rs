//! `cat` through the I/O scheduler (like ioucontext's `iou_cat`): copy each
//! file named on the command line, or stdin when none is, to stdout.
//!
//! ```text
//! cargo run --example cat -- [--driver epoll|uring|auto] [--chunk 65536] [FILE]...
//! ```
//!
//! Files are read with positional reads ([`coro::io::fs::File::read_at`]),
//! native on io_uring and on the blocking pool with epoll. Stdin and stdout
//! may be pipes, terminals or files: regular files use positional I/O too;
//! anything else goes through `op::read`/`op::write` on io_uring, which
//! waits for readiness in the kernel whatever the fd's blocking mode, and
//! through the blocking pool on epoll (which would need `O_NONBLOCK` set on
//! an fd shared with the parent shell).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

use coro::io::fs::File;
use coro::io::{DriverKind, IoScheduler, IoSchedulerOptions, op};

/// Where bytes come from or go to.
enum End {
    /// A regular file: positional I/O at `pos`.
    File { file: File, pos: u64 },
    /// A pipe, tty or socket.
    Stream(RawFd),
}

fn is_regular(fd: BorrowedFd<'_>) -> bool {
    rustix::fs::fstat(fd).is_ok_and(|st| {
        rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::RegularFile
    })
}

/// Wrap stdin or stdout. A regular file gets its own dup (the `File` owns
/// and closes it), at the fd's current offset.
fn std_end(sched: &IoScheduler, fd: BorrowedFd<'_>) -> io::Result<End> {
    if is_regular(fd) {
        let pos = rustix::fs::seek(fd, rustix::fs::SeekFrom::Current(0)).unwrap_or(0);
        let owned = fd.try_clone_to_owned()?;
        Ok(End::File {
            file: File::from_std(sched, std::fs::File::from(owned)),
            pos,
        })
    } else {
        Ok(End::Stream(fd.as_raw_fd()))
    }
}

impl End {
    /// Leave a shared regular file's offset where this copy got to, as
    /// `cat` does: positional I/O does not move it, and the shell's later
    /// commands on the same redirection (`{ cat a; cat b; } > out`) write
    /// (or read) from there.
    fn sync_offset(&self) {
        if let End::File { file, pos } = self {
            let _ = rustix::fs::seek(file, rustix::fs::SeekFrom::Start(*pos));
        }
    }
}

/// Read up to `buf`'s capacity; `Ok(0)` at the end.
async fn read(sched: &IoScheduler, from: &mut End, buf: Vec<u8>) -> (io::Result<usize>, Vec<u8>) {
    match from {
        End::File { file, pos } => {
            let (res, buf) = file.read_at(buf, *pos).await;
            if let Ok(n) = res {
                *pos += n as u64;
            }
            (res, buf)
        }
        End::Stream(fd) if sched.driver_kind() == DriverKind::IoUring => {
            op::read(sched.driver(), *fd, buf).await
        }
        End::Stream(_) => {
            // epoll: a blocking read(2) on the blocking pool.
            let r = coro::io::spawn_blocking(move || {
                let mut buf = buf;
                buf.resize(buf.capacity(), 0);
                let r = io::Read::read(&mut io::stdin().lock(), &mut buf);
                buf.truncate(*r.as_ref().unwrap_or(&0));
                (r, buf)
            })
            .await;
            r.unwrap_or_else(|e| (Err(e.into()), Vec::new()))
        }
    }
}

/// Write all of `buf`.
async fn write_all(sched: &IoScheduler, to: &mut End, mut buf: Vec<u8>) -> io::Result<Vec<u8>> {
    let mut done = 0;
    while done < buf.len() {
        let rest = buf.split_off(done);
        let (res, rest) = match to {
            End::File { file, pos } => {
                let (res, rest) = file.write_at(rest, *pos).await;
                if let Ok(n) = res {
                    *pos += n as u64;
                }
                (res, rest)
            }
            End::Stream(fd) if sched.driver_kind() == DriverKind::IoUring => {
                op::write(sched.driver(), *fd, rest).await
            }
            End::Stream(_) => coro::io::spawn_blocking(move || {
                let mut out = io::stdout().lock();
                let r = io::Write::write(&mut out, &rest).and_then(|n| {
                    io::Write::flush(&mut out)?;
                    Ok(n)
                });
                (r, rest)
            })
            .await
            .map_err(io::Error::from)?,
        };
        buf.extend_from_slice(&rest);
        match res? {
            0 => return Err(io::ErrorKind::WriteZero.into()),
            n => done += n,
        }
    }
    buf.clear();
    Ok(buf)
}

// README-BEGIN: the code README shows (tests/readme.rs checks it)
async fn copy(sched: &IoScheduler, from: &mut End, to: &mut End, chunk: usize) -> io::Result<u64> {
    let mut total = 0;
    let mut buf = Vec::with_capacity(chunk);
    loop {
        let (res, b) = read(sched, from, buf).await;
        let n = res?;
        if n == 0 {
            return Ok(total);
        }
        total += n as u64;
        buf = write_all(sched, to, b).await?;
    }
}
// README-END

fn usage(why: &str) -> ! {
    eprintln!("cat: {why}\nusage: cat [--driver epoll|uring|auto] [--chunk BYTES] [FILE]...");
    std::process::exit(2);
}

fn main() {
    let mut driver = DriverKind::Auto;
    let mut chunk = 64 * 1024usize;
    let mut files = Vec::new();
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--driver" => {
                driver = match it.next().as_deref() {
                    Some("epoll") => DriverKind::Epoll,
                    Some("uring" | "io_uring") => DriverKind::IoUring,
                    Some("auto") => DriverKind::Auto,
                    other => usage(&format!("bad --driver {other:?}")),
                }
            }
            "--chunk" => {
                chunk = match it.next().and_then(|v| v.parse().ok()) {
                    Some(n) if n > 0 => n,
                    _ => usage("--chunk needs a positive byte count"),
                }
            }
            _ => files.push(arg),
        }
    }
    let sched = match IoScheduler::new(IoSchedulerOptions {
        driver,
        ..Default::default()
    }) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cat: {e}");
            std::process::exit(1);
        }
    };
    let s = sched.clone();
    let result = coro::sync_wait(sched.spawn(async move {
        let mut out = std_end(&s, std::os::fd::AsFd::as_fd(&io::stdout()))?;
        let copied = async {
            if files.is_empty() {
                let mut inp = std_end(&s, std::os::fd::AsFd::as_fd(&io::stdin()))?;
                let r = copy(&s, &mut inp, &mut out, chunk).await;
                inp.sync_offset();
                r?;
            }
            for name in &files {
                let f = File::open(&s, name)
                    .await
                    .map_err(|e| io::Error::new(e.kind(), format!("{name}: {e}")))?;
                copy(&s, &mut End::File { file: f, pos: 0 }, &mut out, chunk)
                    .await
                    .map_err(|e| io::Error::new(e.kind(), format!("{name}: {e}")))?;
            }
            io::Result::Ok(())
        }
        .await;
        // Also after an error: what was written stays written.
        out.sync_offset();
        copied
    }));
    sched.shutdown();
    match result {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            eprintln!("cat: {e}");
            std::process::exit(1);
        }
        Err(e) => {
            eprintln!("cat: {e}");
            std::process::exit(1);
        }
    }
}
