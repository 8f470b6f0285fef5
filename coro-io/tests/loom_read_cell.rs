//! The epoll driver's read word (`src/driver/read_cell.rs`, compiled here
//! against loom's atomics): its encoding, and loom models of the read path
//! racing readable events.
//!
//! The read path is modelled as `driver/epoll.rs` runs it: load the word
//! without a lock; if the fd is marked drained at that word, sleep, which
//! means comparing the word again under the table lock and storing the
//! waker there; else "recv" (take every byte the socket holds), marking
//! the fd drained after a short read; on `EAGAIN`, sleep the same way. An
//! event is the kernel queueing bytes, then the driver's dispatch bumping
//! the word and taking the waker, both under the table lock. A lost
//! wake-up shows as a deadlock (the reader asleep while bytes wait), which
//! loom reports.

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::{Arc, Condvar, Mutex};
use loom::thread;

#[path = "../src/driver/read_cell.rs"]
#[allow(dead_code, unreachable_pub)]
mod read_cell;

/// What `read_cell.rs` is written against, here loom's.
mod sync {
    pub(crate) use loom::sync::atomic::{AtomicU64, Ordering};
}

use read_cell::ReadCell;

#[test]
fn registration_events_and_release_change_the_word() {
    loom::model(|| {
        let c = ReadCell::default();
        let w0 = c.load();
        assert!(!ReadCell::registered(w0));
        c.register();
        let w1 = c.load();
        assert!(ReadCell::registered(w1) && !ReadCell::hup(w1));
        assert_ne!(w1, 0, "a registered word is never the 'no mark' value");
        c.mark_drained(Some(w1));
        assert!(c.drained(w1));
        c.readable(false);
        let w2 = c.load();
        assert_ne!(w2, w1);
        assert_eq!(ReadCell::read_seq(w2), ReadCell::read_seq(w1) + 1);
        assert!(!c.drained(w2), "an event since the drain");
        c.mark_drained(Some(w2));
        c.readable(true);
        let w3 = c.load();
        assert!(ReadCell::hup(w3));
        c.mark_drained(Some(w3));
        assert!(!c.drained(w3), "after a hang-up reads always try");
        c.release();
        let w4 = c.load();
        assert!(!ReadCell::registered(w4) && !ReadCell::hup(w4));
        assert_eq!(ReadCell::generation(w4), ReadCell::generation(w1) + 1);
        c.mark_drained(Some(w4));
        assert!(!c.drained(w4), "an unregistered fd is never drained");
        c.register();
        let w5 = c.load();
        assert_eq!(ReadCell::generation(w5), ReadCell::generation(w1) + 2);
        assert!(!c.drained(w5), "the old registration's mark is stale");
    });
}

#[test]
fn a_drained_mark_does_not_outlive_a_wrap_of_the_read_sequence() {
    loom::model(|| {
        let c = ReadCell::default();
        c.register();
        for _ in 0..5 {
            c.readable(false);
        }
        let marked = c.load();
        assert_eq!(ReadCell::read_seq(marked), 5);
        c.mark_drained(Some(marked));
        // 2^31 events, every read of them full (the mark stays): skipped
        // up to the events that cross half-way and 0, which run here.
        let half = 1u32 << 30;
        c.skip_events_to(half - 1);
        c.readable(false);
        c.skip_events_to(2 * half - 1);
        c.readable(false);
        assert_eq!(ReadCell::read_seq(c.load()), 0, "wrapped");
        c.skip_events_to(4);
        c.readable(false);
        assert_eq!(c.load(), marked, "the word is the marked one again");
        assert!(!c.drained(marked), "bytes may wait: the read must try");
    });
}

/// One fd: its read word, the table lock's part (the waker slot), the
/// socket's queued bytes, and the task's wake flag.
struct Fd {
    cell: ReadCell,
    /// The table lock, guarding whether a reader's waker is stored.
    armed: Mutex<bool>,
    socket: AtomicUsize,
    woken: Mutex<bool>,
    wake: Condvar,
}

enum Polled {
    Ready(usize),
    Pending,
}

impl Fd {
    /// Sleep unless the word moved from `seen` (under the table lock).
    fn arm(&self, seen: u64) -> bool {
        let mut armed = self.armed.lock().unwrap();
        if self.cell.load() != seen {
            return false;
        }
        *armed = true;
        true
    }

    /// One poll of a stream read of at most `max` bytes, as
    /// `EpollDriver::poll_op` makes it.
    fn poll_read(&self, max: usize) -> Polled {
        let mut first = true;
        loop {
            let mut word = self.cell.load();
            if std::mem::take(&mut first) && self.cell.drained(word) {
                if self.arm(word) {
                    return Polled::Pending;
                }
                word = self.cell.load();
            }
            let had = self
                .socket
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| Some(n - n.min(max)))
                .unwrap();
            let n = had.min(max);
            if n > 0 {
                // A short read (it took all there was) drained the fd; a
                // full one left bytes, and clears the mark.
                self.cell
                    .mark_drained(if n == had { Some(word) } else { None });
                return Polled::Ready(n);
            }
            if self.arm(word) {
                return Polled::Pending;
            }
        }
    }

    /// `bytes` arrive; the driver's dispatch sees the edge.
    fn event(&self, bytes: usize) {
        self.socket.fetch_add(bytes, Ordering::SeqCst);
        let wake = {
            let mut armed = self.armed.lock().unwrap();
            self.cell.readable(false);
            std::mem::take(&mut *armed)
        };
        if wake {
            *self.woken.lock().unwrap() = true;
            self.wake.notify_one();
        }
    }

    /// The task: read until `want` bytes arrived, at most `max` per read,
    /// sleeping when pending.
    fn read_all(&self, want: usize, max: usize) {
        let mut got = 0;
        while got < want {
            match self.poll_read(max) {
                Polled::Ready(n) => got += n,
                Polled::Pending => {
                    let mut woken = self.woken.lock().unwrap();
                    while !*woken {
                        woken = self.wake.wait(woken).unwrap();
                    }
                    *woken = false;
                }
            }
        }
    }
}

fn fd() -> Arc<Fd> {
    let fd = Fd {
        cell: ReadCell::default(),
        armed: Mutex::new(false),
        socket: AtomicUsize::new(0),
        woken: Mutex::new(false),
        wake: Condvar::new(),
    };
    fd.cell.register();
    Arc::new(fd)
}

#[test]
fn a_reader_never_sleeps_through_an_event() {
    loom::model(|| {
        let fd = fd();
        let peer = fd.clone();
        let t = thread::spawn(move || {
            peer.event(1);
            peer.event(1);
        });
        fd.read_all(2, usize::MAX);
        t.join().unwrap();
    });
}

#[test]
fn a_drained_mark_does_not_hide_bytes_that_came_after_it() {
    loom::model(|| {
        let fd = fd();
        // The first read drains the fd (it takes the byte already there).
        fd.event(1);
        fd.read_all(1, usize::MAX);
        let peer = fd.clone();
        let t = thread::spawn(move || peer.event(1));
        fd.read_all(1, usize::MAX);
        t.join().unwrap();
    });
}

#[test]
fn reads_smaller_than_what_arrived_come_back_for_the_rest() {
    loom::model(|| {
        let fd = fd();
        let peer = fd.clone();
        // One edge for two bytes: the reader takes one per read, so the
        // first read is full (no drained mark) and the second must still
        // try the socket, with no event in between.
        let t = thread::spawn(move || {
            peer.event(2);
            peer.event(1);
        });
        fd.read_all(3, 1);
        t.join().unwrap();
    });
}

#[test]
fn a_task_that_moves_between_threads_sees_its_own_mark() {
    loom::model(|| {
        // The pool's workers poll one task in turn: the drained mark is
        // written on one thread and read on another (the run queue's
        // hand-over orders the two, as the join does here).
        let fd = fd();
        fd.event(1);
        let first = fd.clone();
        thread::spawn(move || first.read_all(1, usize::MAX))
            .join()
            .unwrap();
        let peer = fd.clone();
        let t = thread::spawn(move || peer.event(1));
        fd.read_all(1, usize::MAX);
        t.join().unwrap();
    });
}
