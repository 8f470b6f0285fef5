//! A raw file op on the blocking pool whose future is dropped before its
//! job starts, its fd closed by the caller at once and the number taken by
//! another file: the job must not write into that file. Its own binary:
//! the pause that keeps the job queued is process-wide.
#![cfg(feature = "fault-injection")]

use std::os::fd::AsRawFd;
use std::pin::pin;
use std::task::{Context, Waker};
use std::time::Duration;

use coro_io::testing::Config;
use coro_io::{fault, op};

/// The pause is process-wide: the tests take turns.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Lets the pool's jobs run however a test ends (a failed assert included).
struct Release;
impl Drop for Release {
    fn drop(&mut self) {
        fault::hold_pool_jobs(false);
    }
}

#[test]
fn a_dropped_write_at_never_writes_into_the_file_that_took_its_number() {
    let _s = serial();
    // epoll runs file ops on the blocking pool (io_uring only those its
    // kernel lacks the opcode for).
    {
        let cfg = Config::EPOLL;
        let h = cfg.handle();
        let d = std::env::temp_dir().join(format!("coro-pool-drop-{}-{cfg}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let (mine, other) = (d.join("mine"), d.join("other"));
        std::fs::write(&mine, b"____").unwrap();
        std::fs::write(&other, b"....").unwrap();
        fault::hold_pool_jobs(true);
        let release = Release;
        let f = std::fs::OpenOptions::new().write(true).open(&mine).unwrap();
        let number = f.as_raw_fd();
        {
            let mut w = pin!(op::write_at(&h, number, b"late".to_vec(), 0));
            let _ = w.as_mut().poll(&mut Context::from_waker(Waker::noop()));
        } // dropped: its job waits in the pool
        drop(f);
        let g = std::fs::OpenOptions::new()
            .write(true)
            .open(&other)
            .unwrap();
        assert_eq!(
            g.as_raw_fd(),
            number,
            "{cfg}: the number went to the other file"
        );
        drop(release);
        // The job's turn came and went (`in_flight` counts it until then).
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while h.in_flight() > 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "{cfg}: the job never ended"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        drop(g);
        assert_eq!(
            std::fs::read(&other).unwrap(),
            b"....",
            "{cfg}: the dropped write landed in the file that took its number"
        );
        assert_eq!(std::fs::read(&mine).unwrap(), b"____", "{cfg}: skipped");
        std::fs::remove_dir_all(&d).unwrap();
    }
}

/// A dropped write's job that ends with nobody to collect it frees the
/// caller's buffer on the pool thread. A buffer whose destructor panics
/// must not leave the job counted in flight: the count stayed up for good,
/// and every shutdown then waited its whole bound for it.
#[test]
fn a_dropped_writes_buffer_whose_drop_panics_is_still_counted_finished() {
    struct PanicsOnDrop(Vec<u8>);
    impl AsRef<[u8]> for PanicsOnDrop {
        fn as_ref(&self) -> &[u8] {
            &self.0
        }
    }
    impl Drop for PanicsOnDrop {
        fn drop(&mut self) {
            if !std::thread::panicking() {
                panic!("buffer destructor panics");
            }
        }
    }
    let _s = serial();
    let cfg = Config::EPOLL;
    let h = cfg.handle();
    let path = std::env::temp_dir().join(format!("coro-pool-panic-{}", std::process::id()));
    let f = std::fs::File::create(&path).unwrap();
    fault::hold_pool_jobs(true);
    let release = Release;
    {
        let buf = bytes::Bytes::from_owner(PanicsOnDrop(vec![1; 16]));
        let mut w = pin!(op::write_at(&h, f.as_raw_fd(), buf, 0));
        let _ = w.as_mut().poll(&mut Context::from_waker(Waker::noop()));
    } // dropped: its job waits in the pool
    drop(release);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while h.in_flight() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "{cfg}: the job is still counted in flight"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    drop(f);
    std::fs::remove_file(&path).unwrap();
}
