//! A submit from a pool worker (a ring every thread may enter) that fails
//! with `EBUSY`, `EAGAIN` or `EINTR` leaves its entry in the submission
//! queue, and the loop, blocked in its wait with no timer armed, does not
//! look at the queue again: it must be woken to submit it. Its own binary:
//! the fault is process-wide.
#![cfg(feature = "fault-injection")]

use std::time::Duration;

use coro_io::fault;
use coro_io::testing::Config;
use coro_io::{PollOp, PollStatus};

#[test]
fn a_pool_workers_failed_submit_still_reaches_the_kernel() {
    // Every ring whose pool workers submit for themselves (not a
    // single-issuer ring: there they only wake the loop).
    let pools = [
        Config::URING_PLAIN_POOL,
        Config::URING_COOP_POOL,
        Config::URING_SQPOLL_POOL,
        Config::URING_MANUAL_POOL,
    ];
    for (cfg, errno) in pools
        .into_iter()
        .flat_map(|c| [libc::EBUSY, libc::EAGAIN, libc::EINTR].map(|e| (c, e)))
    {
        let s = cfg.sched();
        let s2 = s.clone();
        // Readable at once: the poll completes as soon as the kernel has
        // its entry.
        let (r, w) = std::os::unix::net::UnixStream::pair().unwrap();
        std::io::Write::write_all(&mut &w, b"x").unwrap();
        fault::fail_foreign_submits(1, errno);
        let h = s.spawn(async move { s2.poll(&r, PollOp::Read, None).await });
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(coro_core::sync_wait(h));
        });
        let got = rx.recv_timeout(Duration::from_secs(5));
        fault::fail_foreign_submits(0, 0);
        assert_eq!(
            got.expect("the poll's entry was never submitted").unwrap(),
            PollStatus::Event,
            "{cfg}: errno {errno}"
        );
        drop(w);
        s.shutdown();
    }
}
