//! A signal listener whose wait on the signal pipe fails on a running
//! scheduler (an injected `ENOMEM` or `ECANCELED`) keeps listening, and
//! one whose every wait fails ends its stream instead of spinning. Its own test
//! binary: the fault plan is process-wide, and the driver configurations
//! run one after another for the same reason.
#![cfg(feature = "fault-injection")]

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use coro_core::sync_wait;
use coro_io::fault::{self, FaultPlan};
use coro_io::signal::{Signal, SignalKind};
use coro_io::testing::Config;

const ROUNDS: usize = 20;

fn raise(kind: SignalKind) {
    rustix::process::kill_process(
        rustix::process::getpid(),
        rustix::process::Signal::from_named_raw(kind.as_raw_value()).unwrap(),
    )
    .unwrap();
}

#[test]
fn a_failed_pipe_wait_is_not_the_end_of_the_stream() {
    let kind = SignalKind::user_defined2();
    for cfg in Config::DRIVERS {
        let s = cfg.sched();
        let mut sig = Signal::new(&s, kind).unwrap();
        // Half the waits on the pipe fail before they start.
        fault::install(Some(FaultPlan {
            seed: 0x5167,
            hard_per_mille: 500,
            ..FaultPlan::default()
        }));
        let (tx, rx) = mpsc::channel();
        let listener = thread::spawn(move || {
            for _ in 0..ROUNDS {
                let got = sync_wait(sig.recv());
                tx.send(got).unwrap();
                if got.is_none() {
                    return;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        for round in 0..ROUNDS {
            loop {
                // Let the listener reach its wait on the pipe first, so
                // that the delivery comes through that wait.
                thread::sleep(Duration::from_millis(20));
                raise(kind);
                match rx.recv_timeout(Duration::from_millis(200)) {
                    Ok(got) => {
                        assert_eq!(got, Some(()), "{cfg}: round {round}: the stream ended");
                        break;
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        assert!(
                            Instant::now() < deadline,
                            "{cfg}: round {round}: no delivery"
                        );
                    }
                    Err(e) => panic!("{cfg}: round {round}: {e}"),
                }
            }
        }
        let hard = fault::counts().hard;
        fault::install(None);
        listener.join().unwrap();
        assert!(hard > 0, "{cfg}: no wait failed: the test shows nothing");
        s.shutdown();
    }
    // A wait that fails every time (a driver that will not let the
    // listener wait) ends the stream after a few tries, rather than
    // spinning the listener's task for good.
    for cfg in Config::DRIVERS {
        let s = cfg.sched();
        let mut sig = Signal::new(&s, kind).unwrap();
        fault::install(Some(FaultPlan {
            seed: 0x5168,
            hard_per_mille: 1000,
            ..FaultPlan::default()
        }));
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let _ = tx.send(sync_wait(sig.recv()));
        });
        let got = rx.recv_timeout(Duration::from_secs(10));
        fault::install(None);
        assert_eq!(
            got,
            Ok(None),
            "{cfg}: the listener spun on a wait that always fails"
        );
        s.shutdown();
    }
}
