//! Signals of different kinds share one pipe, and listeners of one signal
//! may live on different schedulers: a delivery reaches every listener of
//! its kind (on every scheduler) and ends no wait of another kind; a
//! listener made after a delivery does not see it. Its own test binary,
//! with real-time signals no other test raises, one configuration after
//! another (a signal is process-wide: two configurations at once would
//! see each other's deliveries).

use std::time::Duration;

use coro_core::sync_wait;
use coro_io::signal::{Signal, SignalKind};
use coro_io::testing::Config;
use coro_io::{DriverKind, IoScheduler, IoSchedulerOptions};

const BOUND: Duration = Duration::from_secs(10);

fn rt(n: i32) -> SignalKind {
    SignalKind::from_raw(libc::SIGRTMIN() + n)
}

fn raise(kind: SignalKind) {
    // (`kill(1)`: rustix names no real-time signal, and this needs no
    // unsafe code.)
    let status = std::process::Command::new("kill")
        .arg(format!("-{}", kind.as_raw_value()))
        .arg(std::process::id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

fn raise_later(kind: SignalKind, after: Duration) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        std::thread::sleep(after);
        raise(kind);
    })
}

#[test]
fn kinds_and_schedulers_share_the_pipe_without_mixing_up_deliveries() {
    let (a_kind, b_kind) = (rt(3), rt(4));
    // Listeners on another scheduler than each configuration's: the
    // delivery must reach them too (one drains the pipe, the other is
    // told through the shared event).
    let other = IoScheduler::new(IoSchedulerOptions {
        driver: DriverKind::Epoll,
        ..Default::default()
    })
    .unwrap();
    for cfg in Config::ALL {
        let s = cfg.sched();
        let mut a = Signal::new(&s, a_kind).unwrap();
        let mut b = Signal::new(&s, b_kind).unwrap();
        let mut a_elsewhere = Signal::new(&other, a_kind).unwrap();
        let s2 = s.clone();
        let h = s.spawn(async move {
            // A delivery of b's kind ends b's wait, not a's.
            let t = raise_later(b_kind, Duration::from_millis(20));
            assert_eq!(s2.timeout(BOUND, b.recv()).await, Ok(Some(())), "{cfg}");
            t.join().unwrap();
            assert!(
                s2.timeout(Duration::from_millis(100), a.recv())
                    .await
                    .is_err(),
                "{cfg}: a delivery of another kind ended the wait"
            );
            // One of a's kind reaches both of its listeners.
            let t = raise_later(a_kind, Duration::from_millis(20));
            assert_eq!(s2.timeout(BOUND, a.recv()).await, Ok(Some(())), "{cfg}");
            t.join().unwrap();
            // A listener made after that delivery does not see it.
            let mut late = Signal::new(&s2, a_kind).unwrap();
            assert!(
                s2.timeout(Duration::from_millis(100), late.recv())
                    .await
                    .is_err(),
                "{cfg}: a listener saw a delivery made before it"
            );
        });
        sync_wait(h).unwrap();
        let got = sync_wait(other.timeout(BOUND, a_elsewhere.recv()));
        assert_eq!(
            got,
            Ok(Some(())),
            "{cfg}: the other scheduler's listener missed it"
        );
        s.shutdown();
    }
    other.shutdown();
}
