//! An accept that runs out of fds (`EMFILE`) pauses and tries again. After
//! its scheduler shut down, its pauses end at once: awaited from outside
//! the scheduler (a plain thread's `sync_wait`), it must end with an
//! error, not retry in a spin until an fd frees up. Its own test binary:
//! the fd limit is process-wide (the configurations run one after another).

use std::time::Duration;

use coro_io::testing::Config;
use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

#[test]
fn an_accept_out_of_fds_after_shutdown_ends() {
    for cfg in Config::ALL {
        let s = cfg.sched();
        let l = coro_net::tcp::TcpListener::bind(&s, "127.0.0.1:0").unwrap();
        // A connection waits in the backlog.
        let _client = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        s.shutdown();
        let saved = getrlimit(Resource::Nofile);
        // The lowest free fd number: with the soft limit there, accept
        // fails with EMFILE.
        let probe = rustix::io::dup(std::io::stdin()).unwrap();
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
        let (tx, rx) = std::sync::mpsc::channel();
        let acceptor = std::thread::spawn(move || {
            let r = coro_core::sync_wait(l.accept());
            let _ = tx.send(r.map(drop));
        });
        let ended = rx.recv_timeout(Duration::from_secs(5));
        // Fds again, so that a spinning accept ends too.
        setrlimit(Resource::Nofile, saved).unwrap();
        acceptor.join().unwrap();
        let r = ended.unwrap_or_else(|_| panic!("{cfg}: the accept went on after shutdown"));
        // (An io_uring driver refuses the op itself, with its shut-down
        // error; either way an error.)
        assert!(r.is_err(), "{cfg}: {r:?}");
    }
}
