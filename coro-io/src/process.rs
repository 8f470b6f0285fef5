//! Child processes: [`Command`] spawns one, [`Child::wait`] waits for it
//! without a thread, and its piped standard streams are `futures_io`
//! streams through the driver.
//!
//! Waiting uses a pidfd (Linux 5.3+): the driver waits for it to become
//! readable, as for a socket (a poll op on io_uring, epoll otherwise), then
//! the child is reaped with `waitpid(WNOHANG)`. Without pidfds the wait
//! looks at the child on a timer (1 ms doubling to 100 ms). No `SIGCHLD`
//! handler is installed, so coro does not fight other code over that
//! signal. A child dropped while it runs is reaped when it exits by one
//! thread for the whole process.
//!
//! Processes use `std::process` underneath: [`Command`] wraps
//! `std::process::Command` (all its settings, [`std::process::Stdio`]) and
//! adds `kill_on_drop`.
//!
//! # Examples
//!
//! ```
//! use coro_io::process::Command;
//! use futures::io::{AsyncReadExt, AsyncWriteExt};
//! use std::process::Stdio;
//!
//! let sched = coro_io::IoScheduler::new(Default::default())?;
//! let out = coro_core::sync_wait(sched.spawn(async {
//!     let mut child = Command::new("tr")
//!         .args(["a-z", "A-Z"])
//!         .stdin(Stdio::piped())
//!         .stdout(Stdio::piped())
//!         .spawn()?;
//!     let mut stdin = child.stdin.take().unwrap();
//!     stdin.write_all(b"hello").await?;
//!     stdin.close().await?; // end of input for `tr`
//!     let mut out = String::new();
//!     child.stdout.take().unwrap().read_to_string(&mut out).await?;
//!     assert!(child.wait().await?.success());
//!     std::io::Result::Ok(out)
//! }))??;
//! assert_eq!(out, "HELLO");
//! # std::io::Result::Ok(())
//! ```

use std::ffi::OsStr;
use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::Path;
use std::pin::Pin;
use std::process::{ExitStatus, Output, Stdio};
use std::task::{Context, Poll, ready};

use futures_io::{AsyncRead, AsyncWrite};

use crate::driver::RegisteredFd;
use crate::op::{self, OpFuture};
use crate::{IoScheduler, PollOp};

/// A process builder: `std::process::Command` plus [`kill_on_drop`], whose
/// [`spawn`](Command::spawn) returns a [`Child`] to await.
///
/// [`kill_on_drop`]: Command::kill_on_drop
#[derive(Debug)]
pub struct Command {
    std: std::process::Command,
    kill_on_drop: bool,
    /// Which of stdin, stdout, stderr the caller set: `output` supplies
    /// its defaults only for the others, and only for that run.
    set: [bool; 3],
}

impl Command {
    /// A command running `program` (looked up in `PATH` if it has no `/`).
    pub fn new(program: impl AsRef<OsStr>) -> Command {
        Command::from(std::process::Command::new(program))
    }

    /// Add an argument.
    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Command {
        self.std.arg(arg);
        self
    }

    /// Add arguments.
    pub fn args<I, S>(&mut self, args: I) -> &mut Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.std.args(args);
        self
    }

    /// Set an environment variable of the child.
    pub fn env(&mut self, key: impl AsRef<OsStr>, val: impl AsRef<OsStr>) -> &mut Command {
        self.std.env(key, val);
        self
    }

    /// Remove an environment variable from the child's environment.
    pub fn env_remove(&mut self, key: impl AsRef<OsStr>) -> &mut Command {
        self.std.env_remove(key);
        self
    }

    /// Start the child with an empty environment (then add with `env`).
    pub fn env_clear(&mut self) -> &mut Command {
        self.std.env_clear();
        self
    }

    /// The child's working directory.
    pub fn current_dir(&mut self, dir: impl AsRef<Path>) -> &mut Command {
        self.std.current_dir(dir);
        self
    }

    /// The child's standard input: `Stdio::piped()` makes
    /// [`Child::stdin`] an async stream. Default: inherited for `spawn`
    /// and `status`, null for `output`.
    pub fn stdin(&mut self, cfg: impl Into<Stdio>) -> &mut Command {
        self.std.stdin(cfg);
        self.set[0] = true;
        self
    }

    /// The child's standard output (see [`stdin`](Command::stdin)).
    pub fn stdout(&mut self, cfg: impl Into<Stdio>) -> &mut Command {
        self.std.stdout(cfg);
        self.set[1] = true;
        self
    }

    /// The child's standard error (see [`stdin`](Command::stdin)).
    pub fn stderr(&mut self, cfg: impl Into<Stdio>) -> &mut Command {
        self.std.stderr(cfg);
        self.set[2] = true;
        self
    }

    /// Kill (`SIGKILL`) and reap the child if its [`Child`] is dropped
    /// before the child was waited for. Default `false`: a dropped child
    /// runs on, and is reaped when it exits by a thread of the process's
    /// (whether or not its scheduler still runs).
    pub fn kill_on_drop(&mut self, kill: bool) -> &mut Command {
        self.kill_on_drop = kill;
        self
    }

    /// The `std::process::Command` inside, for settings this type does not
    /// forward (`CommandExt::uid`, `process_group`, `pre_exec`, ...). Set
    /// the streams with [`stdin`](Command::stdin) etc., not here:
    /// [`output`](Command::output) cannot see streams set here, pipes
    /// stdout and stderr over them, and leaves them `inherit` after.
    pub fn as_std_mut(&mut self) -> &mut std::process::Command {
        &mut self.std
    }

    /// Start the child on the current scheduler.
    ///
    /// # Errors
    ///
    /// From `fork`/`exec` (`NotFound` for a missing program, naming it,
    /// and the working directory if one was set: a missing one fails the
    /// same way), or from setting up its pipes.
    ///
    /// # Panics
    ///
    /// Outside a task of an [`IoScheduler`]; use
    /// [`spawn_on`](Command::spawn_on) there.
    pub fn spawn(&mut self) -> io::Result<Child> {
        let sched = crate::ambient::current_or(
            "coro::process::Command::spawn",
            "use Command::spawn_on with an IoScheduler handle instead",
        );
        self.spawn_on(&sched)
    }

    /// [`spawn`](Command::spawn) on `sched`, from any thread.
    ///
    /// # Errors
    ///
    /// As [`spawn`](Command::spawn).
    pub fn spawn_on(&mut self, sched: &IoScheduler) -> io::Result<Child> {
        let program = self.std.get_program().to_owned();
        let mut child = self.std.spawn().map_err(|e| {
            // The kernel says ENOENT for a missing directory as for a
            // missing program: name both.
            let dir = match self.std.get_current_dir() {
                Some(d) => format!(" in {}", d.display()),
                None => String::new(),
            };
            io::Error::new(
                e.kind(),
                format!("spawn {}{dir}: {e}", Path::new(&program).display()),
            )
        })?;
        // Without a pidfd (a kernel before 5.3, or a sandbox that refuses
        // the call) waits look at the child on a timer.
        let pid = rustix::process::Pid::from_child(&child);
        let pidfd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).ok();
        #[cfg(feature = "fault-injection")]
        let pidfd = pidfd.filter(|_| !crate::fault::pidfds_refused());
        let stdin = child.stdin.take().map(|p| Pipe::new(sched, p.into()));
        let stdout = child.stdout.take().map(|p| Pipe::new(sched, p.into()));
        let stderr = child.stderr.take().map(|p| Pipe::new(sched, p.into()));
        let pipes = (|| {
            Ok::<_, io::Error>((stdin.transpose()?, stdout.transpose()?, stderr.transpose()?))
        })();
        let (stdin, stdout, stderr) = match pipes {
            Ok(p) => p,
            Err(e) => {
                // The child runs already: do not leave it behind.
                let _ = child.kill();
                let _ = child.wait();
                return Err(e);
            }
        };
        Ok(Child {
            stdin: stdin.map(ChildStdin),
            stdout: stdout.map(ChildStdout),
            stderr: stderr.map(ChildStderr),
            inner: Some(child),
            pidfd,
            sched: sched.clone(),
            status: None,
            kill_on_drop: self.kill_on_drop,
            blocking_wait: None,
        })
    }

    /// Run the child to its end (stdio inherited unless set) and return
    /// its exit status.
    ///
    /// # Errors
    ///
    /// As [`spawn`](Command::spawn), or from waiting.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future drops the [`Child`]: see
    /// [`kill_on_drop`](Command::kill_on_drop).
    ///
    /// # Panics
    ///
    /// Outside a task of an [`IoScheduler`].
    pub async fn status(&mut self) -> io::Result<ExitStatus> {
        let mut child = self.spawn()?;
        // Our end of any pipe goes away, as std's `status` does.
        drop((child.stdin.take(), child.stdout.take(), child.stderr.take()));
        child.wait().await
    }

    /// Run the child to its end with stdout and stderr captured and return
    /// everything. As std's `output`: streams left unset default to null
    /// (stdin) and piped (stdout, stderr) for this run only; one set with
    /// [`stdin`](Command::stdin) etc. is kept.
    ///
    /// Streams set on the `std::process::Command` this was made from, or
    /// through [`as_std_mut`](Command::as_std_mut), are not seen (std has no
    /// way to read them back): `output` replaces them as unset ones (as
    /// tokio's does), and later runs inherit them. Set them here instead.
    ///
    /// # Errors
    ///
    /// As [`spawn`](Command::spawn), or from reading or waiting.
    ///
    /// # Cancel safety
    ///
    /// As [`status`](Command::status); captured output is lost.
    ///
    /// # Panics
    ///
    /// Outside a task of an [`IoScheduler`].
    pub async fn output(&mut self) -> io::Result<Output> {
        let [stdin, stdout, stderr] = self.set;
        if !stdin {
            self.std.stdin(Stdio::null());
        }
        if !stdout {
            self.std.stdout(Stdio::piped());
        }
        if !stderr {
            self.std.stderr(Stdio::piped());
        }
        let child = self.spawn();
        // Back to `spawn`'s defaults (inherit) for the next run.
        if !stdin {
            self.std.stdin(Stdio::inherit());
        }
        if !stdout {
            self.std.stdout(Stdio::inherit());
        }
        if !stderr {
            self.std.stderr(Stdio::inherit());
        }
        child?.wait_with_output().await
    }
}

impl From<std::process::Command> for Command {
    fn from(std: std::process::Command) -> Command {
        Command {
            std,
            kill_on_drop: false,
            set: [false; 3],
        }
    }
}

/// A spawned child process. Its piped streams are the public fields, to
/// `take()` into tasks.
pub struct Child {
    /// The child's stdin, if it was `Stdio::piped()`.
    pub stdin: Option<ChildStdin>,
    /// The child's stdout, if it was `Stdio::piped()`.
    pub stdout: Option<ChildStdout>,
    /// The child's stderr, if it was `Stdio::piped()`.
    pub stderr: Option<ChildStderr>,
    /// `None` once moved into a background reaper.
    inner: Option<std::process::Child>,
    pidfd: Option<OwnedFd>,
    sched: IoScheduler,
    status: Option<ExitStatus>,
    kill_on_drop: bool,
    /// The blocking-pool wait of a `wait()` whose scheduler can no longer
    /// wait (see [`wait_child`]), kept across calls: a dropped `wait()`
    /// leaves it running, and the next one awaits it instead of starting
    /// another (one pool thread per child at most, not one per call).
    blocking_wait: Option<BlockingWait>,
}

/// A `waitid(WNOWAIT)` on the blocking pool: ends when the child exited.
type BlockingWait =
    crate::task::JoinHandle<rustix::io::Result<Option<rustix::process::WaitIdStatus>>>;

impl fmt::Debug for Child {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Child")
            .field("pid", &self.id())
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

impl Child {
    /// The child's process id. Unlike tokio's (`None` then), it is still
    /// returned after [`wait`](Child::wait) or `try_wait` reaped the child,
    /// when the id may already belong to another process: do not signal
    /// it then (use [`start_kill`](Child::start_kill), which knows).
    pub fn id(&self) -> u32 {
        self.inner.as_ref().map_or(0, |c| c.id())
    }

    /// Wait for the child to exit and return its status (again and again
    /// once it has). First closes a piped [`stdin`](Child::stdin) still
    /// held (as std's and tokio's `wait` do), so that a child reading its
    /// input to the end sees the end instead of waiting for ever; bytes
    /// written to it before are still delivered (see [`ChildStdin`]).
    ///
    /// # Errors
    ///
    /// From `waitpid`.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: nothing is reaped until the status is returned. The
    /// first poll closes the piped stdin (see above), whether or not the
    /// wait is then dropped.
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        drop(self.stdin.take());
        if let Some(status) = self.status {
            return Ok(status);
        }
        let Some(child) = self.inner.as_mut() else {
            return Err(io::Error::other("child already handed to a reaper"));
        };
        let status = wait_child(
            child,
            self.pidfd.as_ref(),
            &self.sched,
            &mut self.blocking_wait,
        )
        .await?;
        self.status = Some(status);
        Ok(status)
    }

    /// The exit status if the child has exited (reaping it), else `None`.
    ///
    /// # Errors
    ///
    /// From `waitpid`.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        if let Some(status) = self.status {
            return Ok(Some(status));
        }
        let Some(child) = self.inner.as_mut() else {
            return Err(io::Error::other("child already handed to a reaper"));
        };
        let status = child.try_wait()?;
        self.status = status;
        Ok(status)
    }

    /// Send `SIGKILL` (a child that already exited is not an error); then
    /// [`wait`](Child::wait) to reap it.
    ///
    /// # Errors
    ///
    /// From `kill(2)`.
    pub fn start_kill(&mut self) -> io::Result<()> {
        if self.status.is_some() {
            return Ok(());
        }
        match self.inner.as_mut() {
            Some(child) => child.kill(),
            None => Ok(()),
        }
    }

    /// Kill the child and wait for it to exit.
    ///
    /// # Errors
    ///
    /// From `kill` or `waitpid`.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe (the signal is sent at the first poll).
    pub async fn kill(&mut self) -> io::Result<()> {
        self.start_kill()?;
        self.wait().await.map(drop)
    }

    /// Read stdout and stderr (if piped) to their ends while waiting for
    /// the child, and return all three. A piped stdin is closed first.
    ///
    /// # Errors
    ///
    /// From reading or waiting.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future drops the child (see
    /// [`Command::kill_on_drop`]) and what was captured.
    pub async fn wait_with_output(mut self) -> io::Result<Output> {
        use futures_util::future::try_join3;
        drop(self.stdin.take());
        async fn read_all<R: AsyncRead + Unpin>(r: Option<R>) -> io::Result<Vec<u8>> {
            let mut out = Vec::new();
            if let Some(mut r) = r {
                let mut chunk = vec![0u8; 16 * 1024];
                loop {
                    let n = std::future::poll_fn(|cx| Pin::new(&mut r).poll_read(cx, &mut chunk))
                        .await?;
                    if n == 0 {
                        break;
                    }
                    out.extend_from_slice(&chunk[..n]);
                }
            }
            Ok(out)
        }
        let (stdout, stderr) = (self.stdout.take(), self.stderr.take());
        let (status, stdout, stderr) =
            try_join3(self.wait(), read_all(stdout), read_all(stderr)).await?;
        Ok(Output {
            status,
            stdout,
            stderr,
        })
    }
}

/// Wait for `child` to exit and reap it: through its pidfd, which becomes
/// readable when it exits, or without one by looking at it on the
/// scheduler's timers; on the blocking pool once the scheduler can no
/// longer wait (shut down, or its loop ended), where its polls and timers
/// would return at once.
async fn wait_child(
    child: &mut std::process::Child,
    pidfd: Option<&OwnedFd>,
    sched: &IoScheduler,
    blocking_wait: &mut Option<BlockingWait>,
) -> io::Result<ExitStatus> {
    let mut no_pidfd_pause = std::time::Duration::from_millis(1);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if let Some(fd) = pidfd {
            // Readable once the child exited. Anything else (the scheduler
            // shut down, an error) falls through to the timed look below,
            // so this loop never spins on a poll that returns at once.
            if sched.poll(fd, PollOp::Read, None).await == crate::PollStatus::Event {
                if let Some(status) = child.try_wait()? {
                    return Ok(status);
                }
            }
        }
        if !sched.is_shutdown() {
            // No pidfd: look again after a pause on the scheduler's timers
            // (a blocking wait would hold a pool thread for the child's
            // life, also after this future is dropped).
            // On the scheduler's clock (which a test may pause and move).
            let asked = sched.now();
            sched.sleep(no_pidfd_pause).await;
            // A sleep that ended early: the scheduler's timers are closed
            // (shut down, or its loop ended with a panic), and every later
            // one would end at once too.
            let slept = sched.now().saturating_duration_since(asked) >= no_pidfd_pause;
            no_pidfd_pause = (no_pidfd_pause * 2).min(std::time::Duration::from_millis(100));
            if slept && !sched.is_shutdown() {
                continue;
            }
        }
        // The scheduler cannot wait any more (its polls and timers return
        // at once): wait on the blocking pool instead of spinning.
        // One such wait per child, kept when this future is dropped (the
        // thread stays blocked until the child exits anyway).
        let job = blocking_wait.get_or_insert_with(|| {
            let pid = rustix::process::Pid::from_child(child);
            // Wait without reaping (WNOWAIT): `try_wait` reaps, so the
            // status is not lost if this future is dropped meanwhile.
            let options =
                rustix::process::WaitIdOptions::EXITED | rustix::process::WaitIdOptions::NOWAIT;
            crate::blocking::spawn_blocking_unscoped(move || {
                loop {
                    match rustix::process::waitid(rustix::process::WaitId::Pid(pid), options) {
                        Err(rustix::io::Errno::INTR) => continue,
                        r => return r,
                    }
                }
            })
        });
        let done = job.await;
        *blocking_wait = None;
        done.map_err(io::Error::from)??;
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if self.status.is_some() {
            return;
        }
        let Some(mut child) = self.inner.take() else {
            return;
        };
        if self.kill_on_drop {
            let _ = child.kill();
        }
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        // Reap it when it exits, so that it does not stay a zombie.
        reaper::adopt(child, self.pidfd.take());
    }
}

/// Children dropped while still running, reaped when they exit by one
/// thread for the whole process (started with the first such child). Not
/// a task, which would keep a scheduler alive or stop with it; and not a
/// blocking-pool thread per child, which would stay blocked for the
/// child's whole life: a supervisor that drops a few hundred long-lived
/// children would hold every pool thread, and every file op and
/// `spawn_blocking` on epoll would wait behind them. A thread that cannot
/// start (`EAGAIN` at a thread limit) is tried again with the next child;
/// meanwhile short blocking-pool jobs reap, one at a time (a traced child
/// whose tracer has not reaped it is looked at every 100 ms, not in a
/// spin).
mod reaper {
    use std::os::fd::OwnedFd;
    use std::sync::{Arc, Mutex, OnceLock};
    use std::time::Duration;

    /// How often children without a pidfd are looked at.
    const NO_PIDFD_PERIOD: Duration = Duration::from_millis(100);

    /// Pidfds the reaper keeps open at most: each is an fd of the
    /// process's, and a service that drops many long-lived children must
    /// not run out of fds for them (tokio's reaper keeps none). Children
    /// adopted past it are looked at every [`NO_PIDFD_PERIOD`].
    const MAX_PIDFDS: usize = 64;

    struct Reaper {
        children: Mutex<Vec<(std::process::Child, Option<Arc<OwnedFd>>)>>,
        /// Who reaps (changed under this lock).
        reapers: Mutex<Reapers>,
        /// Written to when a child is adopted, so the thread looks again.
        /// Made with the thread; if it could not be, the thread looks
        /// every [`NO_PIDFD_PERIOD`] instead.
        wake: OnceLock<(OwnedFd, OwnedFd)>,
    }

    struct Reapers {
        /// The reaping thread runs (for good, once started).
        thread: bool,
        /// Blocking-pool jobs reap while the thread could not start
        /// (`EAGAIN` at a thread limit): one at a time for all the
        /// children, not one each, and they try to start the thread as
        /// they go.
        stand_in: bool,
    }

    static REAPER: Reaper = Reaper {
        children: Mutex::new(Vec::new()),
        reapers: Mutex::new(Reapers {
            thread: false,
            stand_in: false,
        }),
        wake: OnceLock::new(),
    };

    /// Reap `child` when it exits (`pidfd`: readable then).
    pub(super) fn adopt(child: std::process::Child, pidfd: Option<OwnedFd>) {
        let r = &REAPER;
        let mut children = crate::lock(&r.children);
        let held = children.iter().filter(|(_, fd)| fd.is_some()).count();
        let pidfd = pidfd.filter(|_| held < MAX_PIDFDS);
        children.push((child, pidfd.map(Arc::new)));
        drop(children);
        if let Some((_, wr)) = r.wake.get() {
            let _ = rustix::io::write(wr, &[1]);
        }
        r.ensure_reaping();
    }

    impl Reaper {
        /// Start the thread if it does not run; if it cannot start now,
        /// a stand-in job reaps until it can. A failure is not kept: the
        /// next adopted child (or the stand-in) tries again.
        fn ensure_reaping(&'static self) {
            if self.start_thread() {
                return;
            }
            let mut reapers = crate::lock(&self.reapers);
            if reapers.thread || reapers.stand_in {
                return;
            }
            reapers.stand_in = true;
            drop(reapers);
            // A pool that cannot start a thread either, and has none,
            // drops the job unrun: its guard then lets the next adopted
            // child try again (the children stay listed meanwhile).
            let guard = StandIn(self);
            drop(crate::blocking::spawn_blocking_unscoped(move || {
                guard.run()
            }));
        }

        /// Whether the reaping thread runs (started now if need be).
        fn start_thread(&'static self) -> bool {
            let mut reapers = crate::lock(&self.reapers);
            if reapers.thread {
                return true;
            }
            if self.wake.get().is_none() {
                if let Ok(pipe) = rustix::pipe::pipe_with(
                    rustix::pipe::PipeFlags::CLOEXEC | rustix::pipe::PipeFlags::NONBLOCK,
                ) {
                    let _ = self.wake.set(pipe);
                }
            }
            reapers.thread = crate::spawn_thread(
                std::thread::Builder::new().name("coro-reaper".into()),
                move || self.run(),
            )
            .is_ok();
            reapers.thread
        }

        /// Reap the children that exited; how many are left.
        fn reap(&self) -> usize {
            let mut children = crate::lock(&self.children);
            children.retain_mut(|(c, _)| matches!(c.try_wait(), Ok(None)));
            children.len()
        }

        fn run(&self) {
            let mut buf = [0u8; 64];
            let mut pidfd_ready = false;
            loop {
                // Reap who exited; keep the pidfds of the others to wait on
                // (shared, so that the list stays free to take new
                // children while this thread waits).
                let (fds, timeout, reaped) = {
                    let mut children = crate::lock(&self.children);
                    let before = children.len();
                    children.retain_mut(|(c, _)| matches!(c.try_wait(), Ok(None)));
                    let fds: Vec<Arc<OwnedFd>> =
                        children.iter().filter_map(|(_, fd)| fd.clone()).collect();
                    let timeout = if fds.len() < children.len() || self.wake.get().is_none() {
                        Some(NO_PIDFD_PERIOD)
                    } else {
                        None
                    };
                    (fds, timeout, before - children.len())
                };
                if pidfd_ready && reaped == 0 {
                    // A pidfd said its child exited, and the child cannot
                    // be reaped yet: it is traced, and its tracer has not
                    // waited for it. The pidfd stays readable until then:
                    // look again later rather than spin.
                    std::thread::sleep(NO_PIDFD_PERIOD);
                }
                let wake = self.wake.get().map(|(rd, _)| rd);
                let mut polls: Vec<rustix::event::PollFd<'_>> = wake
                    .into_iter()
                    .chain(fds.iter().map(|fd| &**fd))
                    .map(|fd| rustix::event::PollFd::new(fd, rustix::event::PollFlags::IN))
                    .collect();
                let timeout = timeout.map(|d| rustix::time::Timespec {
                    tv_sec: 0,
                    tv_nsec: d.as_nanos() as i64,
                });
                // EINTR: look again. Another error (`EINVAL`: more fds than
                // `RLIMIT_NOFILE` allows now) would come back at once: look
                // again after a pause instead of spinning.
                match rustix::event::poll(&mut polls, timeout.as_ref()) {
                    Ok(_) | Err(rustix::io::Errno::INTR) => {}
                    Err(_) => std::thread::sleep(NO_PIDFD_PERIOD),
                }
                pidfd_ready = polls[usize::from(wake.is_some())..]
                    .iter()
                    .any(|p| !p.revents().is_empty());
                if let Some(rd) = wake {
                    while matches!(rustix::io::read(rd, &mut buf), Ok(n) if n > 0) {}
                }
            }
        }
    }

    /// The stand-in's job; dropped (run or not), it lets another start.
    struct StandIn(&'static Reaper);

    impl StandIn {
        /// One look at the children; then, if some still run, another
        /// look later as a new job, behind the jobs queued meanwhile, so
        /// that the pool's thread is not held for the children's life.
        fn run(self) {
            let r = self.0;
            let left = r.reap();
            if r.start_thread() {
                return;
            }
            if left == 0 {
                // Ended under the lock that `ensure_reaping` checks, and
                // after a look at the list: a child adopted after that look
                // finds no stand-in and starts one.
                let mut reapers = crate::lock(&r.reapers);
                if crate::lock(&r.children).is_empty() {
                    reapers.stand_in = false;
                    drop(reapers);
                    std::mem::forget(self);
                    return;
                }
            }
            std::thread::sleep(NO_PIDFD_PERIOD);
            drop(crate::blocking::spawn_blocking_unscoped(move || self.run()));
        }
    }

    impl Drop for StandIn {
        fn drop(&mut self) {
            crate::lock(&self.0.reapers).stand_in = false;
        }
    }
}

/// A pipe end registered with the driver, with the `futures_io` adapter.
struct Pipe {
    // Declared first: in-flight ops are dropped before the fd closes.
    read: ReadState,
    /// A write that found the pipe full waits for room here.
    room: Option<Pin<Box<OpFuture<op::PollFd>>>>,
    fd: Option<RegisteredFd>,
    sched: IoScheduler,
}

enum ReadState {
    /// `buf[pos..]` is read and not yet handed out.
    Idle {
        buf: Vec<u8>,
        pos: usize,
    },
    Busy(Pin<Box<OpFuture<op::Read<Vec<u8>>>>>),
}

impl Pipe {
    fn new(sched: &IoScheduler, fd: OwnedFd) -> io::Result<Pipe> {
        // Non-blocking for the readiness driver; io_uring waits either way.
        rustix::fs::fcntl_setfl(&fd, rustix::fs::OFlags::NONBLOCK)?;
        Ok(Pipe {
            read: ReadState::Idle {
                buf: Vec::new(),
                pos: 0,
            },
            room: None,
            fd: Some(RegisteredFd::new(sched.driver(), fd)),
            sched: sched.clone(),
        })
    }

    fn raw(&self) -> RawFd {
        self.fd.as_ref().map_or(-1, RegisteredFd::raw)
    }

    fn poll_read(&mut self, cx: &mut Context<'_>, out: &mut [u8]) -> Poll<io::Result<usize>> {
        if out.is_empty() || self.fd.is_none() {
            // Closed, or handed on (`take_owned_fd`): ended, for this
            // side (`wait_with_output` on a child whose stdout went to
            // another command reads nothing from it).
            return Poll::Ready(Ok(0));
        }
        loop {
            match &mut self.read {
                ReadState::Idle { buf, pos } if *pos < buf.len() => {
                    let n = (buf.len() - *pos).min(out.len());
                    out[..n].copy_from_slice(&buf[*pos..*pos + n]);
                    *pos += n;
                    return Poll::Ready(Ok(n));
                }
                ReadState::Idle { buf, .. } => {
                    let mut buf = std::mem::take(buf);
                    buf.clear();
                    buf.reserve(out.len().clamp(4 * 1024, 64 * 1024));
                    let op = op::read(self.sched.driver(), self.raw(), buf);
                    self.read = ReadState::Busy(Box::pin(op));
                }
                ReadState::Busy(op) => {
                    let (res, buf) = ready!(op.as_mut().poll(cx));
                    self.read = ReadState::Idle { buf, pos: 0 };
                    if res? == 0 {
                        return Poll::Ready(Ok(0));
                    }
                }
            }
        }
    }

    /// Write what the pipe takes now, or wait for room (nothing taken
    /// then, as tokio's and std's). Not behind, as a stream's adapter on
    /// io_uring: a pipe's write there ends short or with `EAGAIN` when the
    /// pipe is full, and going on would need the op polled again, which
    /// nothing does while the caller waits for the child's answer.
    fn poll_write(&mut self, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let Some(fd) = &self.fd else {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the child's stdin is closed",
            )));
        };
        loop {
            if let Some(room) = &mut self.room {
                let ready = ready!(room.as_mut().poll(cx));
                self.room = None;
                ready?;
            }
            ready!(crate::coop::poll_proceed(cx));
            match rustix::io::write(fd, &data[..data.len().min(64 * 1024)]) {
                Ok(n) => {
                    crate::coop::consume();
                    return Poll::Ready(Ok(n));
                }
                Err(rustix::io::Errno::INTR) => {}
                Err(rustix::io::Errno::AGAIN) => {
                    let wait = op::poll_fd(
                        self.sched.driver(),
                        fd.raw(),
                        crate::driver::Interest::Write,
                    );
                    self.room = Some(Box::pin(wait));
                }
                Err(e) => return Poll::Ready(Err(e.into())),
            }
        }
    }

    /// Flush, then close the pipe (the reader sees end of file).
    fn poll_close(&mut self) -> Poll<io::Result<()>> {
        self.room = None;
        self.close_fd();
        Poll::Ready(Ok(()))
    }

    fn close_fd(&mut self) {
        // Unregistered, then closed.
        self.fd = None;
    }

    /// The fd, unregistered and blocking again (to hand to another
    /// process), unless that would lose bytes: some read ahead and not
    /// handed out, a read in flight. Then the pipe is left as
    /// it was; after, it is closed.
    fn take_owned_fd(&mut self, what: &str) -> io::Result<OwnedFd> {
        let busy = match &self.read {
            ReadState::Busy(_) => Some("a read is in flight"),
            ReadState::Idle { buf, pos } if *pos < buf.len() => {
                Some("it holds bytes read and not handed out")
            }
            _ => None,
        };
        if let Some(why) = busy {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                format!("{what} cannot be handed on: {why}"),
            ));
        }
        // A wait for room first: an entry still staged for the loop would
        // be armed on whatever file takes the number after the new owner
        // closes it (ops first, as at drop).
        self.room = None;
        let fd = self
            .fd
            .take()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, format!("{what} closed")))?
            .into_fd();
        // The flag belongs to the open file, shared with the next owner:
        // a child reading a non-blocking stdin gets `EAGAIN` and fails.
        let flags = rustix::fs::fcntl_getfl(&fd)?;
        rustix::fs::fcntl_setfl(&fd, flags - rustix::fs::OFlags::NONBLOCK)?;
        Ok(fd)
    }
}

impl Drop for Pipe {
    fn drop(&mut self) {
        // Ops first (the driver makes sure the kernel has taken a dropped
        // op's entry before it returns), then the registration, then the fd.
        self.read = ReadState::Idle {
            buf: Vec::new(),
            pos: 0,
        };
        self.room = None;
        self.close_fd();
    }
}

macro_rules! pipe_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        pub struct $name(Pipe);

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_tuple(stringify!($name)).field(&self.0.raw()).finish()
            }
        }

        impl AsFd for $name {
            /// # Panics
            ///
            /// After `close`.
            fn as_fd(&self) -> BorrowedFd<'_> {
                self.0.fd.as_ref().expect("pipe closed").as_fd()
            }
        }

        impl AsRawFd for $name {
            fn as_raw_fd(&self) -> RawFd {
                self.0.raw()
            }
        }

        impl $name {
            /// Take the pipe's fd, blocking again and no longer watched
            /// by the driver: to hand to another process (see the
            /// `TryFrom` for [`Stdio`]). The pipe is closed after: reads
            /// find the end, writes fail, `as_fd` panics.
            ///
            /// # Errors
            ///
            /// `WouldBlock` when that would lose bytes: some were read
            /// ahead and not handed out (read them first), or a read is
            /// in flight; the pipe is left as it was. `NotConnected` once
            /// closed.
            pub fn take_owned_fd(&mut self) -> io::Result<OwnedFd> {
                self.0.take_owned_fd(stringify!($name))
            }
        }

        /// A pipe of one child as another's stdin, stdout or stderr (a
        /// pipeline), as tokio's `TryInto<Stdio>`. Fails as
        /// `take_owned_fd`, and then the pipe is dropped with what it read
        /// ahead: where that may be, use `take_owned_fd`, which keeps it.
        impl TryFrom<$name> for Stdio {
            type Error = io::Error;
            fn try_from(mut pipe: $name) -> io::Result<Stdio> {
                pipe.take_owned_fd().map(Stdio::from)
            }
        }
    };
}

pipe_type!(
    /// The write end of a child's stdin: [`AsyncWrite`]. A write returns
    /// once the pipe took the bytes (it waits for room; nothing taken
    /// while it waits, so a dropped write loses nothing); `close` (or
    /// drop) ends the child's input, after what was written.
    ChildStdin
);
pipe_type!(
    /// The read end of a child's stdout: [`AsyncRead`]. A dropped read
    /// loses nothing (bytes read stay in the adapter).
    ChildStdout
);
pipe_type!(
    /// The read end of a child's stderr: [`AsyncRead`], as
    /// [`ChildStdout`].
    ChildStderr
);

impl AsyncWrite for ChildStdin {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().0.poll_write(cx, data)
    }
    /// Nothing is kept back: written bytes are in the pipe.
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().0.poll_close()
    }
}

impl AsyncRead for ChildStdout {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().0.poll_read(cx, out)
    }
}

impl AsyncRead for ChildStderr {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().0.poll_read(cx, out)
    }
}
