//! An accept that runs out of fds (`EMFILE`) pauses and tries again. After
//! its scheduler shut down, its pauses end at once: awaited from outside
//! the scheduler (a plain thread's `sync_wait`), it must end with an
//! error, not retry in a spin until an fd frees up. Its own test binary:
//! the fd limit is process-wide (the configurations run one after another).

use std::time::Duration;

use coro_io::testing::Config;

#[test]
fn an_accept_out_of_fds_after_shutdown_ends() {
    for cfg in Config::ALL {
        let s = cfg.sched();
        let l = coro_net::tcp::TcpListener::bind(&s, "127.0.0.1:0").unwrap();
        // A connection waits in the backlog.
        let _client = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        s.shutdown();
        // Accept fails with EMFILE from here on.
        let full = coro_io::testing::no_free_fds();
        let (tx, rx) = std::sync::mpsc::channel();
        let acceptor = std::thread::spawn(move || {
            let r = coro_core::sync_wait(l.accept());
            let _ = tx.send(r.map(drop));
        });
        let ended = rx.recv_timeout(Duration::from_secs(5));
        // Fds again, so that a spinning accept ends too.
        drop(full);
        acceptor.join().unwrap();
        let r = ended.unwrap_or_else(|_| panic!("{cfg}: the accept went on after shutdown"));
        // (An io_uring driver refuses the op itself, with its shut-down
        // error; either way an error.)
        assert!(r.is_err(), "{cfg}: {r:?}");
    }
}
