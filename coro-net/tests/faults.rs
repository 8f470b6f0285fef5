//! The network stack under injected faults (feature `fault-injection`),
//! on both drivers, for several seeds:
//!
//! * transient faults (`EINTR`/`EAGAIN` before ops) and short writes must
//!   be invisible: TCP and TLS round trips of hundreds of KiB come out
//!   byte-exact;
//! * hard faults (`ENOMEM`/`ECANCELED`, and `EMFILE`/`ECONNABORTED` on
//!   accept) must end only the connection they hit, with an error, never a
//!   panic or a hang: an echo server keeps serving (its accept loop backs
//!   off and goes on), and once the faults stop every client succeeds and
//!   nothing is left behind (tasks, ops, fds).
#![cfg(feature = "fault-injection")]

mod common;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use common::{pattern, run, sched};
use coro_io::fault::{self, FaultPlan};
use coro_io::testing::{Config, open_fds, open_fds_settled};
use coro_net::tcp::{TcpListener, TcpStream};
use coro_net::tls::{self, TlsAcceptor, TlsConnector};

coro_io::driver_tests!(
    transient_faults_and_short_writes_are_invisible_over_tcp,
    transient_faults_and_short_writes_are_invisible_over_tls,
    hard_faults_end_only_their_connection,
    hard_faults_end_only_their_tls_connection,
    a_short_adapter_send_reaches_the_peer_while_the_writer_reads,
    an_accept_made_anew_each_turn_of_a_select_loop_keeps_backing_off,
);

/// Faults are process-wide: one test at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Stops injecting when dropped (also when a test fails).
struct Faults;
impl Faults {
    fn on(plan: FaultPlan) -> Faults {
        fault::install(Some(plan));
        Faults
    }
}
impl Drop for Faults {
    fn drop(&mut self) {
        fault::install(None);
    }
}

fn transient(seed: u64) -> FaultPlan {
    FaultPlan {
        seed,
        transient_per_mille: 200,
        hard_per_mille: 0,
        short_write_per_mille: 300,
    }
}

fn transient_faults_and_short_writes_are_invisible_over_tcp(cfg: Config) {
    let _g = serial();
    for seed in [1, 2, 3] {
        let s = sched(cfg);
        let l = TcpListener::bind(&s, "127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let msg = pattern(300 * 1024, seed as u8);
        let f = Faults::on(transient(seed));
        let s2 = s.clone();
        let m = msg.clone();
        let got = run(&s, async move {
            let server = s2.spawn(async move {
                let (c, _) = l.accept().await.unwrap();
                let mut buf = Vec::with_capacity(16 * 1024);
                loop {
                    let (r, b) = c.read(buf).await;
                    if r.unwrap() == 0 {
                        break;
                    }
                    let (w, mut b) = c.write_all(b).await;
                    w.unwrap();
                    b.clear();
                    buf = b;
                }
            });
            let c = TcpStream::connect(&s2, addr).await.unwrap();
            let (w, _) = c.write_all(m).await;
            w.unwrap();
            c.shutdown(std::net::Shutdown::Write).unwrap();
            let mut got = Vec::new();
            let mut buf = Vec::with_capacity(64 * 1024);
            loop {
                let (r, b) = c.read(buf).await;
                let n = r.unwrap();
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&b[..n]);
                buf = b;
                buf.clear();
            }
            server.await.unwrap();
            got
        });
        let counts = fault::counts();
        drop(f);
        assert!(got == msg, "seed {seed}: bytes changed");
        assert!(
            counts.transient > 0 && counts.short_writes > 0,
            "seed {seed}: {counts:?}"
        );
        s.shutdown();
    }
}

fn tls_pair() -> (TlsAcceptor, TlsConnector) {
    let c = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let key = tls::rustls::pki_types::PrivatePkcs8KeyDer::from(c.key_pair.serialize_der()).into();
    let server = tls::server_config(vec![c.cert.der().clone()], key).unwrap();
    let client = tls::client_config([c.cert.der().clone()]).unwrap();
    (
        TlsAcceptor::new(Arc::new(server)),
        TlsConnector::new(Arc::new(client)),
    )
}

fn transient_faults_and_short_writes_are_invisible_over_tls(cfg: Config) {
    let _g = serial();
    let (acceptor, connector) = tls_pair();
    for seed in [11, 12] {
        let s = sched(cfg);
        let l = TcpListener::bind(&s, "127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let msg = pattern(200 * 1024, seed as u8);
        let f = Faults::on(transient(seed));
        let (s2, a, cn, m) = (s.clone(), acceptor.clone(), connector.clone(), msg.clone());
        let got = run(&s, async move {
            let server = s2.spawn(async move {
                let (tcp, _) = l.accept().await.unwrap();
                let t = a.accept(tcp).await.unwrap();
                let mut buf = Vec::with_capacity(16 * 1024);
                loop {
                    let (r, b) = t.read(buf).await;
                    if r.unwrap() == 0 {
                        break;
                    }
                    let (w, mut b) = t.write_all(b).await;
                    w.unwrap();
                    b.clear();
                    buf = b;
                }
                t.shutdown().await.unwrap();
            });
            let tcp = TcpStream::connect(&s2, addr).await.unwrap();
            let t = Arc::new(cn.connect("localhost", tcp).await.unwrap());
            let writer = {
                let t = t.clone();
                s2.spawn(async move {
                    let (w, _) = t.write_all(m).await;
                    w.unwrap();
                    t.shutdown().await.unwrap();
                })
            };
            let mut got = Vec::new();
            let mut buf = Vec::with_capacity(64 * 1024);
            loop {
                let (r, b) = t.read(buf).await;
                let n = r.unwrap();
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&b[..n]);
                buf = b;
                buf.clear();
            }
            writer.await.unwrap();
            server.await.unwrap();
            got
        });
        let counts = fault::counts();
        drop(f);
        assert!(got == msg, "seed {seed}: TLS bytes changed");
        assert!(
            counts.transient > 0 && counts.short_writes > 0,
            "seed {seed}: {counts:?}"
        );
        s.shutdown();
    }
}

/// A connection of the hard-fault tests: TCP, or TLS over it.
enum Conn {
    Tcp(TcpStream),
    Tls(Box<tls::TlsStream>),
}

impl Conn {
    async fn read(&self, buf: Vec<u8>) -> (std::io::Result<usize>, Vec<u8>) {
        match self {
            Conn::Tcp(c) => c.read(buf).await,
            Conn::Tls(t) => t.read(buf).await,
        }
    }

    async fn write_all(&self, buf: Vec<u8>) -> (std::io::Result<()>, Vec<u8>) {
        match self {
            Conn::Tcp(c) => c.write_all(buf).await,
            Conn::Tls(t) => t.write_all(buf).await,
        }
    }
}

fn hard_faults_end_only_their_connection(cfg: Config) {
    hard_faults(cfg, None);
}

/// The same over TLS: a fault in a handshake or in the middle of a
/// record's send or receive ends that connection with an error (its TLS
/// state is lost with the bytes), never a hang or a panic; the others go
/// on.
fn hard_faults_end_only_their_tls_connection(cfg: Config) {
    hard_faults(cfg, Some(tls_pair()));
}

fn hard_faults(cfg: Config, tls: Option<(TlsAcceptor, TlsConnector)>) {
    let _g = serial();
    let (acceptor, connector) = tls.unzip();
    for seed in [21, 22, 23] {
        let fds_before = open_fds();
        let s = sched(cfg);
        let l = TcpListener::bind(&s, "127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        // The server: one task per connection, echoing until EOF or error.
        let s2 = s.clone();
        let seed_acceptor = acceptor.clone();
        let accept_loop = s.spawn(async move {
            loop {
                let Ok((c, _)) = l.accept().await else {
                    continue; // an injected accept error: go on
                };
                let acceptor = seed_acceptor.clone();
                s2.spawn(async move {
                    let c = match acceptor {
                        None => Conn::Tcp(c),
                        Some(a) => match a.accept(c).await {
                            Ok(t) => Conn::Tls(Box::new(t)),
                            Err(_) => return,
                        },
                    };
                    let mut buf = Vec::with_capacity(4096);
                    loop {
                        let (r, b) = c.read(buf).await;
                        match r {
                            Ok(0) | Err(_) => return,
                            Ok(_) => {}
                        }
                        let (w, mut b) = c.write_all(b).await;
                        if w.is_err() {
                            return;
                        }
                        b.clear();
                        buf = b;
                    }
                })
                .detach();
            }
        });
        // One client round: connect, 8 messages, close. Ok(true) when every
        // echo came back, Ok(false) on a clean error.
        let client = move |s: coro_io::IoScheduler, i: u8, tls: Option<TlsConnector>| async move {
            let timeout = Duration::from_secs(5);
            let body = async {
                let c = TcpStream::connect(&s, addr).await?;
                let c = match tls {
                    None => Conn::Tcp(c),
                    Some(cn) => Conn::Tls(Box::new(cn.connect("localhost", c).await?)),
                };
                for j in 0..8u8 {
                    let (w, _) = c.write_all(vec![i ^ j; 100]).await;
                    w?;
                    let mut got = 0;
                    let mut buf = Vec::with_capacity(100);
                    while got < 100 {
                        buf.clear();
                        let (r, b) = c.read(buf).await;
                        let n = r?;
                        if n == 0 {
                            return Err(std::io::ErrorKind::UnexpectedEof.into());
                        }
                        assert!(b[..n].iter().all(|&x| x == i ^ j), "wrong bytes");
                        got += n;
                        buf = b;
                    }
                }
                std::io::Result::Ok(())
            };
            match s.timeout(timeout, body).await {
                Ok(Ok(())) => true,
                Ok(Err(_)) => false,
                // A hang is a bug, not a clean error.
                Err(_) => panic!("client {i} hung under faults"),
            }
        };
        let f = Faults::on(FaultPlan {
            seed,
            transient_per_mille: 50,
            hard_per_mille: 30,
            short_write_per_mille: 100,
        });
        let s3 = s.clone();
        let cn = connector.clone();
        let (ok, failed) = run(&s, async move {
            let hs: Vec<_> = (0..100u8)
                .map(|i| s3.spawn(client(s3.clone(), i, cn.clone())))
                .collect();
            let (mut ok, mut failed) = (0, 0);
            for h in hs {
                if h.await.unwrap() {
                    ok += 1;
                } else {
                    failed += 1;
                }
            }
            (ok, failed)
        });
        let counts = fault::counts();
        drop(f);
        assert!(
            counts.hard > 0,
            "seed {seed}: no hard fault injected: {counts:?}"
        );
        assert!(
            failed > 0 && ok > 0,
            "seed {seed}: {ok} ok, {failed} failed"
        );
        // Faults off: the server still serves everyone.
        let s4 = s.clone();
        let cn = connector.clone();
        let all = run(&s, async move {
            let hs: Vec<_> = (0..20u8)
                .map(|i| s4.spawn(client(s4.clone(), i, cn.clone())))
                .collect();
            let mut all = true;
            for h in hs {
                all &= h.await.unwrap();
            }
            all
        });
        assert!(all, "seed {seed}: the server did not recover");
        // Nothing left behind but the accept loop.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let m = s.metrics();
            if m.live_tasks == 1 && m.pending_ops.iter().all(|&(_, n)| n <= 1) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "seed {seed}: left behind: {m:?}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        s.shutdown();
        assert!(
            coro_core::sync_wait(accept_loop)
                .unwrap_err()
                .is_cancelled()
        );
        drop(s); // the driver's own fds go with the last handle
        assert_eq!(
            open_fds_settled(fds_before),
            fds_before,
            "seed {seed}: fds leaked"
        );
    }
}

/// A request written through the `AsyncWrite` adapter whose sends all end
/// short (as on io_uring before Linux 5.18, where the kernel does not
/// finish a send whole), then the reply read through the adapter with no
/// flush: the rest of the last send must still go out. It waited for the
/// writer's next write, flush or close, which never came.
fn a_short_adapter_send_reaches_the_peer_while_the_writer_reads(cfg: Config) {
    use futures::io::{AsyncReadExt, AsyncWriteExt};
    let _serial = serial();
    let s = sched(cfg);
    let l = TcpListener::bind(&s, "127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let s2 = s.clone();
    let _faults = Faults::on(FaultPlan {
        seed: 1,
        short_write_per_mille: 1000,
        ..Default::default()
    });
    run(&s, async move {
        let c = TcpStream::connect(&s2, addr).await.unwrap();
        let (srv, _) = l.accept().await.unwrap();
        let request = pattern(100_000, 7);
        let want = request.len();
        let server = s2.spawn(async move {
            let mut got = 0;
            while got < want {
                let (n, _) = srv.read(Vec::with_capacity(64 * 1024)).await;
                let n = n.unwrap();
                assert!(n > 0, "early end");
                got += n;
            }
            let (r, _) = srv.write_all(b"ok".to_vec()).await;
            r.unwrap();
            srv
        });
        let mut w = &c;
        AsyncWriteExt::write_all(&mut w, &request).await.unwrap();
        let mut reply = [0u8; 2];
        let mut r = &c;
        s2.timeout(
            Duration::from_secs(10),
            AsyncReadExt::read_exact(&mut r, &mut reply),
        )
        .await
        .expect("the rest of a short send never went out")
        .unwrap();
        assert_eq!(&reply, b"ok", "{cfg}");
        drop(server.await.unwrap());
    });
    s.shutdown();
}

/// A listener whose every accept fails, accepted from a `select!` loop
/// whose other branch (a 1 ms tick) wins each turn: each turn drops its
/// accept and makes a new one. The back-off (5 ms doubling to 200 ms) goes
/// on across them. It lived in each accept's future, so each new one tried
/// at once and began at the shortest pause: a failing listener was retried
/// at the loop's rate (hundreds of tries in 300 ms; a few dozen now).
fn an_accept_made_anew_each_turn_of_a_select_loop_keeps_backing_off(cfg: Config) {
    use futures::future::{Either, select};
    let _g = serial();
    let s = sched(cfg);
    let l = TcpListener::bind(&s, "127.0.0.1:0").unwrap();
    let f = Faults::on(FaultPlan {
        seed: 7,
        transient_per_mille: 0,
        hard_per_mille: 1000,
        short_write_per_mille: 0,
    });
    let s2 = s.clone();
    let turns = run(&s, async move {
        let t0 = std::time::Instant::now();
        let mut turns = 0;
        while t0.elapsed() < Duration::from_millis(300) {
            let accept = std::pin::pin!(l.accept());
            let tick = std::pin::pin!(s2.sleep(Duration::from_millis(1)));
            match select(accept, tick).await {
                Either::Left((r, _)) => panic!("an accept returned: {:?}", r.map(|_| ())),
                Either::Right(_) => turns += 1,
            }
        }
        turns
    });
    let tries = fault::counts().hard;
    drop(f);
    assert!(turns > 20, "{cfg}: only {turns} turns of the loop");
    // 300 ms of pauses from 5 ms doubling: 6 of them, and 16 connection
    // errors in a row before the first of those pauses at worst.
    assert!(
        tries <= 40,
        "{cfg}: {tries} accepts tried in {turns} turns of 300 ms"
    );
}
