//! Unix-domain datagram sockets on every driver configuration: addresses,
//! boundaries and truncation, connected and unconnected back-pressure,
//! errors that name the path, and a send dropped while the peer is full.

mod common;

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use common::{pattern, run, sched};
use coro_io::testing::Config;
use coro_io::{PollOp, PollStatus};
use coro_net::unix::UnixDatagram;

coro_io::driver_tests!(
    dgram_send_to_recv_from_keeps_boundaries,
    dgram_truncates_to_the_buffer,
    dgram_pair_and_connect,
    dgram_errors_name_the_path,
    dgram_connected_backpressure_loses_nothing,
    dgram_unconnected_backpressure_loses_nothing,
    dgram_dropped_send_sent_nothing,
    dgram_sends_count_against_the_budget,
    dgram_a_reply_reaches_an_abstract_peer_whose_name_holds_a_nul,
    dgram_a_read_shutdown_ends_pending_and_later_receives,
    dgram_receives_with_a_timeout_lose_nothing,
    dgram_a_zero_timeout_takes_a_queued_datagram,
    dgram_a_send_to_a_full_peer_after_shutdown_ends,
    dgram_a_lingering_send_to_a_full_peer_waits_for_room,
);

/// A fresh directory for one test's socket files (removed by the caller).
fn dir(tag: &str, cfg: Config) -> PathBuf {
    let d = std::env::temp_dir().join(format!("coro-dgram-{tag}-{}-{cfg}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn dgram_send_to_recv_from_keeps_boundaries(cfg: Config) {
    let s = sched(cfg);
    let d = dir("boundaries", cfg);
    let (pa, pb) = (d.join("a"), d.join("b"));
    let a = UnixDatagram::bind(&s, &pa).unwrap();
    let b = UnixDatagram::bind(&s, &pb).unwrap();
    assert_eq!(a.local_addr().unwrap().as_pathname(), Some(pa.as_path()));
    let u = UnixDatagram::unbound(&s).unwrap();
    assert!(u.local_addr().unwrap().is_unnamed());
    run(&s, async move {
        for (i, len) in [0usize, 1, 100, 4096, 60_000].into_iter().enumerate() {
            let msg = pattern(len, i as u8);
            let (n, _) = a.send_to(msg.clone(), &pb).await;
            assert_eq!(n.unwrap(), len);
            let (r, buf) = b.recv_from(Vec::with_capacity(65_536)).await;
            let (n, from) = r.unwrap();
            assert_eq!(n, len);
            assert_eq!(from.as_pathname(), Some(pa.as_path()));
            assert!(buf == msg, "datagram of {len} bytes changed");
        }
        // An unbound sender is reported as unnamed.
        u.send_to(b"anon".as_slice(), &pb).await.0.unwrap();
        let (r, buf) = b.recv_from(Vec::with_capacity(16)).await;
        let (n, from) = r.unwrap();
        assert_eq!((n, &buf[..]), (4, &b"anon"[..]));
        assert!(from.is_unnamed());
        // And the reply path works the other way.
        b.send_to(b"back".as_slice(), &pa).await.0.unwrap();
        let (r, buf) = a.recv(Vec::with_capacity(16)).await;
        assert_eq!((r.unwrap(), &buf[..]), (4, &b"back"[..]));
    });
    std::fs::remove_dir_all(&d).unwrap();
    s.shutdown();
}

fn dgram_truncates_to_the_buffer(cfg: Config) {
    let s = sched(cfg);
    let (a, b) = UnixDatagram::pair(&s).unwrap();
    run(&s, async move {
        a.send(pattern(1000, 1)).await.0.unwrap();
        a.send(b"next".as_slice()).await.0.unwrap();
        let (n, buf) = b.recv(Vec::with_capacity(10)).await;
        assert_eq!(n.unwrap(), 10);
        assert_eq!(buf, pattern(1000, 1)[..10]);
        // The tail of the first datagram is gone; the next one is whole.
        let (n, buf) = b.recv(Vec::with_capacity(64)).await;
        assert_eq!((n.unwrap(), &buf[..]), (4, &b"next"[..]));
    });
    s.shutdown();
}

fn dgram_pair_and_connect(cfg: Config) {
    let s = sched(cfg);
    let d = dir("connect", cfg);
    let ps = d.join("server");
    let server = UnixDatagram::bind(&s, &ps).unwrap();
    let client = UnixDatagram::unbound(&s).unwrap();
    // Not connected yet: a clear error, not a hang.
    assert_eq!(
        client.peer_addr().unwrap_err().kind(),
        io::ErrorKind::NotConnected
    );
    client.connect(&ps).unwrap();
    assert_eq!(
        client.peer_addr().unwrap().as_pathname(),
        Some(ps.as_path())
    );
    let (x, y) = UnixDatagram::pair(&s).unwrap();
    run(&s, async move {
        let (r, _) = server.send(b"nobody".as_slice()).await;
        assert_eq!(r.unwrap_err().kind(), io::ErrorKind::NotConnected);
        client.send(b"hello".as_slice()).await.0.unwrap();
        let (r, buf) = server.recv(Vec::with_capacity(16)).await;
        assert_eq!((r.unwrap(), &buf[..]), (5, &b"hello"[..]));
        x.send(b"p".as_slice()).await.0.unwrap();
        y.send(b"q".as_slice()).await.0.unwrap();
        assert_eq!(&y.recv(Vec::with_capacity(4)).await.1[..], b"p");
        assert_eq!(&x.recv(Vec::with_capacity(4)).await.1[..], b"q");
        // The peer of a pair is gone: its partner's send says so.
        drop(y);
        let (r, _) = x.send(b"gone".as_slice()).await;
        let e = r.unwrap_err();
        assert!(
            matches!(
                e.kind(),
                io::ErrorKind::ConnectionRefused | io::ErrorKind::BrokenPipe
            ),
            "{e:?}"
        );
        server.close().await.unwrap();
        client.close().await.unwrap();
    });
    std::fs::remove_dir_all(&d).unwrap();
    s.shutdown();
}

fn dgram_errors_name_the_path(cfg: Config) {
    let s = sched(cfg);
    let d = dir("errors", cfg);
    let (missing, stale, taken) = (d.join("missing"), d.join("stale"), d.join("taken"));
    drop(UnixDatagram::bind(&s, &stale).unwrap());
    let _keep = UnixDatagram::bind(&s, &taken).unwrap();
    let e = UnixDatagram::bind(&s, &taken).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
    assert!(e.to_string().contains(&taken.display().to_string()), "{e}");
    let long = d.join("x".repeat(200));
    let e = UnixDatagram::bind(&s, &long).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
    let u = UnixDatagram::unbound(&s).unwrap();
    let e = u.connect(&missing).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::NotFound);
    assert!(
        e.to_string().contains(&missing.display().to_string()),
        "{e}"
    );
    let e = u.connect(&stale).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused, "{e}");
    let mut nul = d.join("cut").into_os_string();
    nul.push("\0tail");
    let e = UnixDatagram::bind(&s, &nul).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
    assert!(!d.join("cut").exists(), "bound the path up to the NUL");
    run(&s, async move {
        let (r, buf) = u.send_to(b"x".as_slice(), &missing).await;
        assert_eq!(r.unwrap_err().kind(), io::ErrorKind::NotFound);
        assert_eq!(buf, b"x", "the buffer comes back with the error");
        let (r, _) = u.send_to(b"x".as_slice(), &stale).await;
        assert_eq!(r.unwrap_err().kind(), io::ErrorKind::ConnectionRefused);
        let (r, _) = u.send_to(b"x".as_slice(), &long).await;
        let e = r.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(e.to_string().contains("xxxx"), "{e}");
        // A NUL byte is refused, not cut off (the kernel would read the
        // path up to it: "taken", a live socket, gets the datagram).
        let mut nul = taken.clone().into_os_string();
        nul.push("\0tail");
        let (r, _) = u.send_to(b"x".as_slice(), &nul).await;
        assert_eq!(r.unwrap_err().kind(), io::ErrorKind::InvalidInput);
        assert_eq!(
            u.connect(&nul).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
    });
    std::fs::remove_dir_all(&d).unwrap();
    s.shutdown();
}

/// More datagrams than the receiver's queue holds, sent while nobody reads:
/// the sender waits and every datagram arrives, in order.
fn backpressure(cfg: Config, connected: bool) {
    const N: u32 = 3000;
    let s = sched(cfg);
    let d = dir(if connected { "bp-conn" } else { "bp-unconn" }, cfg);
    let (pr, pt) = (d.join("rx"), d.join("tx"));
    let rx = UnixDatagram::bind(&s, &pr).unwrap();
    let tx = UnixDatagram::bind(&s, &pt).unwrap();
    if connected {
        tx.connect(&pr).unwrap();
    }
    let s2 = s.clone();
    run(&s, async move {
        let pr2 = pr.clone();
        let sender = s2.spawn(async move {
            for i in 0..N {
                let msg = i.to_le_bytes().to_vec();
                let (r, _) = if connected {
                    tx.send(msg).await
                } else {
                    tx.send_to(msg, &pr2).await
                };
                assert_eq!(r.unwrap(), 4);
            }
        });
        // Let the sender fill the queue and block before anyone reads.
        s2.sleep(Duration::from_millis(50)).await;
        for i in 0..N {
            let (r, buf) = rx.recv(Vec::with_capacity(8)).await;
            assert_eq!(r.unwrap(), 4);
            assert_eq!(u32::from_le_bytes(buf[..4].try_into().unwrap()), i);
        }
        sender.await.unwrap();
    });
    std::fs::remove_dir_all(&d).unwrap();
    s.shutdown();
}

fn dgram_connected_backpressure_loses_nothing(cfg: Config) {
    backpressure(cfg, true);
}

fn dgram_unconnected_backpressure_loses_nothing(cfg: Config) {
    backpressure(cfg, false);
}

/// A send that waits on a full peer and is dropped (it lost a race with a
/// timeout) sent nothing: the receiver gets exactly the datagrams whose
/// sends completed, in order, and no empty one. (On io_uring a send op on
/// a full Unix datagram socket used to deliver an empty datagram.)
fn dgram_dropped_send_sent_nothing(cfg: Config) {
    let s = sched(cfg);
    let (tx, rx) = UnixDatagram::pair(&s).unwrap();
    let s2 = s.clone();
    run(&s, async move {
        let mut sent = 0u32;
        let dropped = loop {
            let msg = sent.to_le_bytes().to_vec();
            match s2.timeout(Duration::from_millis(20), tx.send(msg)).await {
                Ok((r, _)) => {
                    assert_eq!(r.unwrap(), 4);
                    sent += 1;
                    assert!(sent < 100_000, "the peer's queue never filled");
                }
                Err(_) => break sent,
            }
        };
        for i in 0..dropped {
            let (r, buf) = rx.recv(Vec::with_capacity(8)).await;
            assert_eq!(r.unwrap(), 4, "datagram {i}");
            assert_eq!(u32::from_le_bytes(buf[..4].try_into().unwrap()), i);
        }
        // Nothing more is queued (a readiness wait: a dropped receive on
        // io_uring could take a datagram with it).
        let late = rx.poll(PollOp::Read, Some(Duration::from_millis(50))).await;
        assert_eq!(late, PollStatus::Timeout, "the dropped send delivered");
        // The socket still works both ways after the drop.
        tx.send(b"after".as_slice()).await.0.unwrap();
        let (r, buf) = rx.recv(Vec::with_capacity(8)).await;
        assert_eq!((r.unwrap(), &buf[..]), (5, &b"after"[..]));
    });
    s.shutdown();
}

/// A send the kernel takes at once is an op for the task's budget: a loop
/// of them yields after 128 in one task poll, the yielding one sending
/// nothing.
fn dgram_sends_count_against_the_budget(cfg: Config) {
    use std::future::Future;
    use std::task::{Context, Waker};
    let s = sched(cfg);
    let (tx, rx) = UnixDatagram::pair(&s).unwrap();
    let mut cx = Context::from_waker(Waker::noop());
    let sent = coro_io::coop::budgeted(|| {
        let mut n = 0;
        while n < 512
            && std::pin::pin!(tx.send(b"x".as_slice()))
                .poll(&mut cx)
                .is_ready()
        {
            n += 1;
        }
        n
    });
    assert_eq!(sent, usize::from(coro_io::coop::BUDGET));
    let late = coro_core::sync_wait(async {
        let mut got = 0;
        while rx.poll(PollOp::Read, Some(Duration::from_millis(50))).await == PollStatus::Event {
            let (r, _) = rx.recv(Vec::with_capacity(8)).await;
            r.unwrap();
            got += 1;
        }
        got
    });
    assert_eq!(late, sent, "the yielding send sent something");
    s.shutdown();
}

/// An abstract name is bytes of a given length, NULs included: a peer
/// `recv_from` reports under such a name can be answered.
fn dgram_a_reply_reaches_an_abstract_peer_whose_name_holds_a_nul(cfg: Config) {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::ffi::OsStrExt;
    let s = sched(cfg);
    let tag = format!("coro-nul-{}-{cfg}", std::process::id());
    let name = [tag.as_bytes(), b"\0v2"].concat();
    let std_sock = std::os::unix::net::UnixDatagram::bind_addr(
        &std::os::unix::net::SocketAddr::from_abstract_name(&name).unwrap(),
    )
    .unwrap();
    let client = UnixDatagram::from_std(&s, std_sock).unwrap();
    let server = UnixDatagram::unbound(&s).unwrap();
    let server_name = [format!("{tag}-server").as_bytes(), b"\0x"].concat();
    let server_path = std::path::PathBuf::from(std::ffi::OsStr::from_bytes(
        &[&[0u8][..], &server_name].concat(),
    ));
    drop(server);
    let server = UnixDatagram::bind(&s, &server_path).expect("bind to an abstract name with a NUL");
    assert_eq!(
        server.local_addr().unwrap().as_abstract_name(),
        Some(&server_name[..])
    );
    run(&s, async move {
        client
            .send_to(b"hi".as_slice(), &server_path)
            .await
            .0
            .unwrap();
        let (r, _) = server.recv_from(Vec::with_capacity(8)).await;
        let (_, from) = r.unwrap();
        assert_eq!(from.as_abstract_name(), Some(&name[..]));
        let back = std::path::PathBuf::from(std::ffi::OsStr::from_bytes(
            &[&[0u8][..], from.as_abstract_name().unwrap()].concat(),
        ));
        server
            .send_to(b"reply".as_slice(), &back)
            .await
            .0
            .expect("a reply to that peer");
        let (r, buf) = client.recv(Vec::with_capacity(8)).await;
        assert_eq!((r.unwrap(), &buf[..]), (5, &b"reply"[..]));
    });
    s.shutdown();
}

/// After `shutdown(Read)` a datagram socket has no end of stream: the
/// kernel answers a non-blocking receive with `EAGAIN` for ever and a poll
/// with "readable" for ever. A receive that waits then, or starts later,
/// ends with `Ok(0)` as a blocking std socket's does; datagrams queued
/// before the shutdown are still received first.
fn dgram_a_read_shutdown_ends_pending_and_later_receives(cfg: Config) {
    use std::net::Shutdown;
    use std::sync::Arc;
    let s = sched(cfg);
    let (a, b) = UnixDatagram::pair(&s).unwrap();
    let b = Arc::new(b);
    let (tx, rx) = std::sync::mpsc::channel();
    let s2 = s.clone();
    std::thread::spawn(move || {
        let s3 = s2.clone();
        run(&s2, async move {
            let b2 = b.clone();
            let waiting = s3.spawn(async move {
                let (r, _) = b2.recv_from(Vec::with_capacity(16)).await;
                r.map(|(n, _)| n)
            });
            s3.sleep(Duration::from_millis(20)).await;
            b.shutdown(Shutdown::Read).unwrap();
            let pending = waiting.await.unwrap();
            let (later, _) = b.recv(Vec::with_capacity(16)).await;
            let (later_from, _) = b.recv_from(Vec::with_capacity(16)).await;
            // Queued before the shutdown: received after it, then the end.
            let (c, d) = UnixDatagram::pair(&s3).unwrap();
            c.send(b"queued".as_slice()).await.0.unwrap();
            d.shutdown(Shutdown::Read).unwrap();
            let (first, buf) = d.recv(Vec::with_capacity(16)).await;
            assert_eq!((first.unwrap(), &buf[..]), (6, &b"queued"[..]));
            let (then, _) = d.recv(Vec::with_capacity(16)).await;
            let _ = tx.send((
                pending.ok(),
                later.ok(),
                later_from.ok().map(|(n, _)| n),
                then.ok(),
            ));
            drop(a);
        });
    });
    let got = rx
        .recv_timeout(Duration::from_secs(10))
        .unwrap_or_else(|_| panic!("{cfg}: a receive after a read shutdown still waits"));
    assert_eq!(got, (Some(0), Some(0), Some(0), Some(0)), "{cfg}");
    s.shutdown();
}

/// Receives that time out over and over while datagrams keep arriving:
/// every datagram reaches the receiver once, in order (a receive given up
/// at its deadline returns what the kernel delivered meanwhile).
fn dgram_receives_with_a_timeout_lose_nothing(cfg: Config) {
    const N: u32 = 3000;
    let s = sched(cfg);
    let (a, b) = UnixDatagram::pair(&s).unwrap();
    let s2 = s.clone();
    let got = run(&s, async move {
        let sender = s2.spawn(async move {
            for i in 0..N {
                a.send(i.to_le_bytes().to_vec()).await.0.unwrap();
                if i % 7 == 0 {
                    coro_core::yield_now().await;
                }
            }
            a
        });
        let mut got = Vec::with_capacity(N as usize);
        let mut timeouts = 0u32;
        let mut buf = Vec::with_capacity(8);
        while got.len() < N as usize {
            let use_from = got.len() % 2 == 0;
            let r;
            (r, buf) = if use_from {
                let (r, b2) = b.recv_from_timeout(buf, Duration::from_micros(20)).await;
                (r.map(|(n, _)| n), b2)
            } else {
                b.recv_timeout(buf, Duration::from_micros(20)).await
            };
            match r {
                Ok(4) => got.push(u32::from_le_bytes(buf[..4].try_into().unwrap())),
                Err(e) if e.kind() == io::ErrorKind::TimedOut => timeouts += 1,
                other => panic!("unexpected receive: {other:?}"),
            }
            buf.clear();
        }
        drop(sender.await);
        (got, timeouts)
    });
    let (got, timeouts) = got;
    let want: Vec<u32> = (0..N).collect();
    assert!(
        got == want,
        "{cfg}: datagrams lost or reordered ({timeouts} timeouts)"
    );
}

/// A receive whose deadline is due at once still takes a datagram that is
/// queued (on io_uring its op is taken back before it ran: one try without
/// waiting does it), and times out only when nothing is.
fn dgram_a_zero_timeout_takes_a_queued_datagram(cfg: Config) {
    let s = sched(cfg);
    let (a, b) = UnixDatagram::pair(&s).unwrap();
    run(&s, async move {
        let (r, _) = b.recv_timeout(Vec::with_capacity(8), Duration::ZERO).await;
        assert_eq!(r.unwrap_err().kind(), io::ErrorKind::TimedOut);
        a.send(b"one".as_slice()).await.0.unwrap();
        a.send(b"two".as_slice()).await.0.unwrap();
        let (r, buf) = b.recv_timeout(Vec::with_capacity(8), Duration::ZERO).await;
        assert_eq!((r.unwrap(), &buf[..]), (3, &b"one"[..]));
        let (r, buf) = b
            .recv_from_timeout(Vec::with_capacity(8), Duration::ZERO)
            .await;
        let (n, from) = r.unwrap();
        assert_eq!((n, &buf[..]), (3, &b"two"[..]));
        assert!(from.is_unnamed(), "{from:?}");
        let (r, _) = b
            .recv_from_timeout(Vec::with_capacity(8), Duration::ZERO)
            .await;
        assert_eq!(r.unwrap_err().kind(), io::ErrorKind::TimedOut);
    });
    s.shutdown();
}

/// A send to a full receiver waits for room, pausing between tries. Once
/// its scheduler shut down, its pauses and waits end at once: awaited from
/// outside the scheduler (a plain thread's `sync_wait`), the send must end
/// with an error, not try again in a spin until the peer reads.
fn dgram_a_send_to_a_full_peer_after_shutdown_ends(cfg: Config) {
    let s = sched(cfg);
    let d = dir("full-after-shutdown", cfg);
    let (pr, pt) = (d.join("rx"), d.join("tx"));
    let rx = std::os::unix::net::UnixDatagram::bind(&pr).unwrap();
    let tx = UnixDatagram::bind(&s, &pt).unwrap();
    fill_the_queue_of(&pr);
    s.shutdown();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let sender = std::thread::spawn(move || {
        let (r, _) = coro_core::sync_wait(tx.send_to(b"late".to_vec(), &pr));
        let _ = done_tx.send(r);
    });
    let ended = done_rx.recv_timeout(Duration::from_secs(5));
    // Room at last, so that a spinning send ends too.
    drop(rx);
    sender.join().unwrap();
    std::fs::remove_dir_all(&d).unwrap();
    let r = ended.unwrap_or_else(|_| panic!("{cfg}: the send went on after shutdown"));
    assert!(r.is_err(), "{cfg}: {r:?}");
}

/// While a shutdown lingers (`spawn_lingering`: clean-up that must not be
/// cut short), pauses still work: a last datagram to a receiver that is
/// full for a moment waits for room and is sent, not refused because the
/// shutdown has begun.
fn dgram_a_lingering_send_to_a_full_peer_waits_for_room(cfg: Config) {
    let s = sched(cfg);
    let d = dir("lingering", cfg);
    let (pr, pt) = (d.join("rx"), d.join("tx"));
    let rx = std::os::unix::net::UnixDatagram::bind(&pr).unwrap();
    let tx = UnixDatagram::bind(&s, &pt).unwrap();
    let queued = fill_the_queue_of(&pr);
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    assert!(s.spawn_lingering(async move {
        let (r, _) = tx.send_to(b"last".to_vec(), &pr).await;
        let _ = done_tx.send(r);
    }));
    // The send waits for room in its retry loop; room comes during the
    // shutdown's linger.
    std::thread::sleep(Duration::from_millis(20));
    let reader = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        let mut buf = [0u8; 16];
        for _ in 0..queued {
            rx.recv(&mut buf).unwrap();
        }
        rx.recv(&mut buf).map(|n| buf[..n].to_vec())
    });
    s.shutdown();
    let r = done_rx
        .recv_timeout(Duration::from_secs(5))
        .unwrap_or_else(|_| panic!("{cfg}: the lingering send never ended"));
    assert_eq!(r.unwrap_or_else(|e| panic!("{cfg}: {e}")), 4, "{cfg}");
    assert_eq!(reader.join().unwrap().unwrap(), b"last", "{cfg}");
    std::fs::remove_dir_all(&d).unwrap();
}

/// Fill the receive queue of the datagram socket bound at `path` (4-byte
/// datagrams from an unbound sender); how many it took.
fn fill_the_queue_of(path: &std::path::Path) -> usize {
    let filler = std::os::unix::net::UnixDatagram::unbound().unwrap();
    filler.set_nonblocking(true).unwrap();
    let mut queued = 0;
    while filler.send_to(b"fill", path).is_ok() {
        queued += 1;
        assert!(queued < 100_000, "the receiver's queue never filled");
    }
    queued
}
