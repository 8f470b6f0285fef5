//! A loom model of the drivers' cross-thread wake-up: the flag of
//! `src/driver/wake_flag.rs` (compiled here against loom's types) around
//! an eventfd (here a counter under a lock, which the loop blocks on as
//! `epoll_wait` or io_uring's poll of it would).
//!
//! The loop waits until the eventfd is readable, empties it, lowers the
//! flag, then looks at what wakers publish before waking it (the
//! scheduler's shutdown flag: an Acquire load, as the loop's). A first
//! wake raises the flag; a second, which publishes the shutdown, may find
//! the flag still up and write nothing: the loop's look after lowering it
//! must see the shutdown anyway, or it blocks for ever (a deadlock, which
//! loom reports).

use loom::sync::atomic::{AtomicBool, Ordering};
use loom::sync::{Arc, Condvar, Mutex};
use loom::thread;

#[path = "../src/driver/wake_flag.rs"]
#[allow(dead_code)]
mod wake_flag;

/// What `wake_flag.rs` is written against, here loom's.
mod sync {
    pub(crate) use loom::sync::atomic::{AtomicBool, Ordering};
}

use wake_flag::WakeFlag;

struct Notifier {
    flag: WakeFlag,
    /// The eventfd's counter, and its readiness.
    counter: Mutex<u64>,
    readable: Condvar,
}

impl Notifier {
    fn notify(&self) {
        if self.flag.raise() {
            *self.counter.lock().unwrap() += 1;
            self.readable.notify_all();
        }
    }

    /// The loop's wait: until readable, then empty it and lower the flag.
    fn wait_and_clear(&self) {
        let mut c = self.counter.lock().unwrap();
        while *c == 0 {
            c = self.readable.wait(c).unwrap();
        }
        *c = 0;
        drop(c);
        self.flag.lower();
    }
}

#[test]
fn a_wake_that_finds_the_flag_up_is_still_seen() {
    loom::model(|| {
        let n = Arc::new(Notifier {
            flag: WakeFlag::new(),
            counter: Mutex::new(0),
            readable: Condvar::new(),
        });
        let shutdown = Arc::new(AtomicBool::new(false));
        let first = {
            let n = n.clone();
            thread::spawn(move || n.notify())
        };
        let second = {
            let (n, shutdown) = (n.clone(), shutdown.clone());
            thread::spawn(move || {
                shutdown.store(true, Ordering::Release);
                n.notify();
            })
        };
        // The loop: wait, clear, look; until it sees the shutdown.
        loop {
            n.wait_and_clear();
            if shutdown.load(Ordering::Acquire) {
                break;
            }
        }
        first.join().unwrap();
        second.join().unwrap();
    });
}
