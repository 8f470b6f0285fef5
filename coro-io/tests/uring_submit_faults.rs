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
    for errno in [libc::EBUSY, libc::EAGAIN, libc::EINTR] {
        let s = Config::URING_PLAIN_POOL.sched();
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
            "errno {errno}"
        );
        drop(w);
        s.shutdown();
    }
}
