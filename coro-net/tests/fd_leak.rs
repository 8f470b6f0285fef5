//! Accepts that are cancelled while the kernel may already
//! have accepted for them (io_uring) must not leak the fd. `/proc/self/fd`
//! is process-wide, so the two drivers' tests take a lock and run one at a
//! time, alone in this binary.

mod common;

use std::time::Duration;

use coro_io::testing::{Config, open_fds, open_fds_settled};
use coro_net::tcp::TcpListener;

static ALONE: std::sync::Mutex<()> = std::sync::Mutex::new(());

coro_io::driver_tests!(cancelled_accepts_leak_nothing);

fn cancelled_accepts_leak_nothing(cfg: Config) {
    let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
    let before = open_fds();
    let s = common::sched(cfg);
    let l = TcpListener::bind(&s, "127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    // Connections waiting in the backlog, so a cancelled accept may race a
    // completed one.
    let clients: Vec<_> = (0..50)
        .map(|_| std::net::TcpStream::connect(addr).unwrap())
        .collect();
    let s2 = s.clone();
    let accepted = common::run(&s, async move {
        let mut accepted = 0;
        for _ in 0..200 {
            // Err: the deadline passed first and the accept was cancelled.
            if let Ok(r) = s2.timeout(Duration::ZERO, l.accept()).await {
                drop(r.unwrap());
                accepted += 1;
            }
        }
        accepted
    });
    s.shutdown();
    drop(s);
    // Every accepted-and-dropped and every orphaned fd is closed: what is
    // left open is exactly the 50 client sockets (the scheduler's own fds
    // are gone with it).
    assert_eq!(
        open_fds_settled(before + clients.len()),
        before + clients.len(),
        "{cfg}: fds leaked ({accepted} accepts completed)"
    );
}
