//! The cross-thread wake-up both drivers share: an eventfd that the
//! driver's wait watches (epoll registers it; io_uring keeps a poll of it
//! in the ring), and a flag that makes a burst of wakes write it once.
//!
//! The protocol: [`notify`](Notifier::notify) sets the flag and writes the
//! eventfd only if the flag was clear; the waiting side, once it saw the
//! eventfd readable, calls [`clear`](Notifier::clear), which empties the
//! counter *before* clearing the flag. A wake that races `clear` either
//! finds the flag still set (its write is not needed: the wait already
//! returned) or sets it afresh and writes, so the next wait returns too.
//! No wake is lost, and an idle loop costs no syscall per wake.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::event::{EventfdFlags, eventfd};

use super::wake_flag::WakeFlag;

#[derive(Debug)]
pub(crate) struct Notifier {
    fd: OwnedFd,
    notified: WakeFlag,
}

impl Notifier {
    pub(crate) fn new() -> io::Result<Notifier> {
        let fd = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?;
        Ok(Notifier {
            fd,
            notified: WakeFlag::new(),
        })
    }

    /// Make the driver's current or next wait return. Any thread.
    pub(crate) fn notify(&self) {
        if self.notified.raise() {
            // EAGAIN (counter full) still leaves the eventfd readable: fine.
            let _ = rustix::io::write(&self.fd, &1u64.to_ne_bytes());
        }
    }

    /// The wait saw the eventfd readable: re-arm for the next wake.
    pub(crate) fn clear(&self) {
        let mut buf = [0u8; 8];
        let _ = rustix::io::read(&self.fd, &mut buf);
        self.notified.lower();
    }
}

impl AsFd for Notifier {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::event::{PollFd, PollFlags, poll};

    fn readable(n: &Notifier) -> bool {
        let mut fds = [PollFd::new(n, PollFlags::IN)];
        poll(&mut fds, Some(&rustix::time::Timespec::default())).unwrap() == 1
    }

    #[test]
    fn a_burst_of_wakes_writes_once_and_clear_rearms() {
        let n = Notifier::new().unwrap();
        assert!(!readable(&n));
        n.notify();
        n.notify();
        assert!(readable(&n));
        n.clear();
        assert!(!readable(&n));
        // After `clear`, a wake writes again.
        n.notify();
        assert!(readable(&n));
    }
}
