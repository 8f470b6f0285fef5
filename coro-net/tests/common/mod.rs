//! Shared helpers of the coro-net integration tests.
#![allow(dead_code)] // each test binary uses a different subset

use std::future::Future;
use std::time::Duration;

use coro_io::IoScheduler;
use coro_io::testing::Config;

/// No single test may take longer than this (a hang fails instead).
pub(crate) const TEST_BOUND: Duration = Duration::from_secs(20);

/// A scheduler of configuration `cfg` (see `coro_io::driver_tests!`).
pub(crate) fn sched(cfg: Config) -> IoScheduler {
    cfg.sched()
}

/// Run `fut` as a task of `sched` and wait for it, failing after
/// [`TEST_BOUND`] (a timer of `sched`, whose message names the body) or,
/// should that scheduler's loop be stuck and never fire it, 10 s later (a
/// plain thread's bound, outside the scheduler under test).
pub(crate) fn run<F>(sched: &IoScheduler, fut: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let s = sched.clone();
    let h = sched.spawn(async move { s.timeout(TEST_BOUND, fut).await });
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(coro_core::sync_wait(h));
    });
    let done = rx
        .recv_timeout(TEST_BOUND + Duration::from_secs(10))
        .unwrap_or_else(|_| panic!("the scheduler is stuck: its {TEST_BOUND:?} timer never fired"));
    match done {
        Ok(Ok(v)) => v,
        Ok(Err(_)) => panic!("test body did not finish within {TEST_BOUND:?}"),
        Err(e) => match e.try_into_panic() {
            Ok(p) => std::panic::resume_unwind(p),
            Err(e) => panic!("test task failed: {e}"),
        },
    }
}

/// Raise the soft fd limit to at least `want` (bounded by the hard limit).
pub(crate) fn raise_nofile(want: u64) {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut l = getrlimit(Resource::Nofile);
    let cur = l.current.unwrap_or(u64::MAX);
    if cur < want {
        l.current = Some(l.maximum.map_or(want, |m| m.min(want)));
        setrlimit(Resource::Nofile, l).expect("setrlimit(RLIMIT_NOFILE)");
    }
}

/// A deterministic pattern so that misplaced bytes are caught.
pub(crate) fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1] ^ seed)
        .collect()
}

/// Poll a future made by `make` once with a new waker, `rounds` times,
/// dropping each (a combinator rebuilt per loop, or a foreign executor,
/// does that); each must wait (`what` says why). Returns how many of those
/// wakers are still alive: kept by the lists the futures registered them
/// in.
pub(crate) fn wakers_kept_by_dropped_polls<F: Future>(
    rounds: usize,
    what: &str,
    mut make: impl FnMut() -> F,
) -> usize {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Context, Wake, Waker};
    struct Live(Arc<AtomicUsize>);
    impl Wake for Live {
        fn wake(self: Arc<Self>) {}
    }
    impl Drop for Live {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
    }
    let live = Arc::new(AtomicUsize::new(0));
    for _ in 0..rounds {
        live.fetch_add(1, Ordering::SeqCst);
        let w = Waker::from(Arc::new(Live(live.clone())));
        let mut fut = std::pin::pin!(make());
        assert!(
            fut.as_mut().poll(&mut Context::from_waker(&w)).is_pending(),
            "{what}"
        );
    }
    live.load(Ordering::SeqCst)
}

/// Run `fut` in the calling task beside a task that yields at every
/// poll; returns `fut`'s output and how often that task ran meanwhile. On
/// a scheduler whose tasks run on its loop thread, that counts the loop's
/// turns (at most two runs a turn); on a pool's workers it spins freely
/// and counts nothing (see [`counts_turns`]).
pub(crate) async fn with_turns_counted<F: Future>(s: &IoScheduler, fut: F) -> (F::Output, usize) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
    let runs = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (r, st) = (runs.clone(), stop.clone());
    let yielder = s.spawn(async move {
        while !st.load(SeqCst) {
            r.fetch_add(1, SeqCst);
            coro_core::yield_now().await;
        }
    });
    let before = runs.load(SeqCst);
    let out = fut.await;
    let took = runs.load(SeqCst) - before;
    stop.store(true, SeqCst);
    let _ = yielder.await;
    (out, took)
}

/// Whether [`with_turns_counted`] counts loop turns under `cfg` (tasks
/// run by the loop, not a pool), and io_uring tries ready syscalls at
/// once (not SQPOLL, whose point is to submit without one).
pub(crate) fn counts_turns(cfg: Config) -> bool {
    !cfg.pool && !cfg.sqpoll
}

/// A connected TCP pair: ours on `s`, the peer a blocking `std` stream.
pub(crate) fn pair(s: &IoScheduler) -> (coro_net::tcp::TcpStream, std::net::TcpStream) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let s2 = s.clone();
    let ours = run(s, async move {
        coro_net::tcp::TcpStream::connect(&s2, addr).await.unwrap()
    });
    let (peer, _) = l.accept().unwrap();
    (ours, peer)
}
