//! The process's signal pipe is made by the first listener. A first
//! listener that could not make it (the process at its fd limit, `EMFILE`)
//! gets a clear error, and a later one, once fds are free, makes the pipe
//! and listens: the failure is not kept for the rest of the process. Its
//! own test binary: the pipe is process-wide and made once.

use std::os::fd::AsFd;
use std::time::Duration;

use coro_core::sync_wait;
use coro_io::IoScheduler;
use coro_io::signal::{Signal, SignalKind};
use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

#[test]
fn a_signal_pipe_that_could_not_be_made_is_made_by_a_later_listener() {
    let s = IoScheduler::new(Default::default()).unwrap();
    let kind = SignalKind::user_defined1();
    let saved = getrlimit(Resource::Nofile);
    // The lowest free fd number: with the soft limit there, every fd the
    // process may have is taken, and the next one fails with `EMFILE`.
    let probe = rustix::io::dup(std::io::stdin().as_fd()).unwrap();
    let lowest = rustix::fd::AsRawFd::as_raw_fd(&probe) as u64;
    drop(probe);
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(lowest),
            maximum: saved.maximum,
        },
    )
    .unwrap();
    let first = Signal::new(&s, kind);
    setrlimit(Resource::Nofile, saved).unwrap();
    let Err(e) = first else {
        panic!("made a pipe with no fd free")
    };
    assert!(e.to_string().contains("signal pipe"), "{e}");

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
