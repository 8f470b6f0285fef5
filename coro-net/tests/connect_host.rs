//! `TcpStream::connect_host` on both drivers: by name, by literal, and
//! the errors (every address listed, no port, refused).

mod common;

use std::io;

use common::{run, sched};
use coro_io::testing::Config;
use coro_net::tcp::{TcpListener, TcpStream};

coro_io::driver_tests!(by_name_and_literal, errors_say_what_failed);

fn by_name_and_literal(cfg: Config) {
    let s = sched(cfg);
    let l = TcpListener::bind(&s, "127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let s2 = s.clone();
    run(&s, async move {
        for host in [format!("localhost:{port}"), format!("127.0.0.1:{port}")] {
            let c = TcpStream::connect_host(&s2, &host).await.unwrap();
            let (a, peer) = l.accept().await.unwrap();
            assert_eq!(peer, c.local_addr().unwrap(), "{host}");
            drop(a);
        }
    });
    s.shutdown();
}

fn errors_say_what_failed(cfg: Config) {
    let s = sched(cfg);
    let s2 = s.clone();
    run(&s, async move {
        let e = TcpStream::connect_host(&s2, "localhost:1")
            .await
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused, "{e}");
        let m = e.to_string();
        assert!(m.starts_with("connect to localhost:1: "), "{m}");
        assert!(m.contains(":1: "), "names the address: {m}");
        for bad in ["localhost", "localhost:http"] {
            let e = TcpStream::connect_host(&s2, bad).await.unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{bad}: {e}");
            assert!(e.to_string().contains(bad), "{e}");
        }
    });
    s.shutdown();
}
