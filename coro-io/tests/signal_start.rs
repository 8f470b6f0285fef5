//! The process's signal pipe is made by the first listener. A first
//! listener that could not make it (the process at its fd limit, `EMFILE`)
//! gets a clear error, and a later one, once fds are free, makes the pipe
//! and listens: the failure is not kept for the rest of the process. Its
//! own test binary: the pipe is process-wide and made once.

use std::time::Duration;

use coro_core::sync_wait;
use coro_io::IoScheduler;
use coro_io::signal::{Signal, SignalKind};

#[test]
fn a_signal_pipe_that_could_not_be_made_is_made_by_a_later_listener() {
    let s = IoScheduler::new(Default::default()).unwrap();
    let kind = SignalKind::user_defined1();
    let full = coro_io::testing::no_free_fds();
    let first = Signal::new(&s, kind);
    drop(full);
    let Err(e) = first else {
        panic!("made a pipe with no fd free")
    };
    assert_eq!(e.raw_os_error(), Some(libc::EMFILE), "{e}");

    let mut sig = Signal::new(&s, kind).expect("the pipe's first failure was kept");
    let raiser = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        rustix::process::kill_process(
            rustix::process::getpid(),
            rustix::process::Signal::from_named_raw(kind.as_raw_value()).unwrap(),
        )
        .unwrap();
    });
    let got = sync_wait(s.timeout(Duration::from_secs(10), sig.recv()));
    raiser.join().unwrap();
    assert!(matches!(got, Ok(Some(()))), "the delivery did not arrive");
    s.shutdown();
}
