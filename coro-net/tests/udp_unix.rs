//! UDP (send/recv, truncation, connected sockets, IPv6) and Unix-domain
//! streams, on both drivers.

mod common;

use std::io;
use std::net::Shutdown;
use std::path::PathBuf;

use common::{pattern, run, sched};
use coro_core::sync_wait;
use coro_io::IoScheduler;
use coro_io::testing::Config;
use coro_net::udp::UdpSocket;
use coro_net::unix::{UnixListener, UnixStream};

coro_io::driver_tests!(
    udp_queued_datagrams_are_taken_in_a_few_loop_turns,
    unix_a_backlog_of_clients_is_accepted_in_a_few_loop_turns,
    udp_send_to_and_recv_from,
    udp_truncation_is_reported,
    udp_connected_send_recv,
    udp_ipv6,
    unix_listener_echo_and_addresses,
    unix_pair_half_close,
    unix_a_read_stopped_at_passed_fds_is_not_taken_for_drained,
    unix_connect_errors_name_the_path,
    a_peer_at_a_full_length_path_is_accepted_and_heard,
    more_staged_reads_than_a_flush_moves_do_not_stall_the_loop,
    byte_literals_strings_and_address_strings_are_accepted,
    udp_receives_with_a_timeout_lose_nothing,
    udp_a_zero_timeout_takes_a_queued_datagram,
    unix_connect_to_a_full_backlog_after_shutdown_ends,
);

/// 32 datagrams already queued are received within a few turns of the
/// event loop, by `recv_from` and by a connected socket's `recv`. Through
/// the ring alone, io_uring took one per turn, and a busy loop let the
/// socket's buffer overflow.
fn udp_queued_datagrams_are_taken_in_a_few_loop_turns(cfg: Config) {
    let s = sched(cfg);
    let a = UdpSocket::bind(&s, "127.0.0.1:0").unwrap();
    let b = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let (a_addr, b_addr) = (a.local_addr().unwrap(), b.local_addr().unwrap());
    // (64 small datagrams: well within a default receive buffer.)
    for i in 0..64u8 {
        b.send_to(&[i], a_addr).unwrap();
    }
    let s2 = s.clone();
    let turns = run(&s, async move {
        let from = async {
            for i in 0..32u8 {
                let (r, buf) = a.recv_from(Vec::with_capacity(8)).await;
                assert_eq!(r.unwrap(), (1, b_addr));
                assert_eq!(buf, [i]);
            }
        };
        let t1 = common::with_turns_counted(&s2, from).await.1;
        a.connect(b_addr).await.unwrap();
        let connected = async {
            for i in 32..64u8 {
                let (r, buf) = a.recv(Vec::with_capacity(8)).await;
                assert_eq!(r.unwrap(), 1);
                assert_eq!(buf, [i]);
            }
        };
        let t2 = common::with_turns_counted(&s2, connected).await.1;
        (t1, t2)
    });
    if common::counts_turns(cfg) {
        assert!(
            turns.0 <= 16 && turns.1 <= 16,
            "32 queued datagrams took {turns:?} loop turns (recv_from, recv)"
        );
    }
}

/// 32 clients waiting in a Unix listener's backlog are accepted within a
/// few turns of the event loop (the kernel flags no Unix accept as having
/// more behind it: io_uring tries each one first).
fn unix_a_backlog_of_clients_is_accepted_in_a_few_loop_turns(cfg: Config) {
    let s = sched(cfg);
    let path = sock_path("backlog", cfg);
    let l = UnixListener::bind(&s, &path).unwrap();
    let clients: Vec<std::os::unix::net::UnixStream> = (0..32)
        .map(|_| std::os::unix::net::UnixStream::connect(&path).unwrap())
        .collect();
    let s2 = s.clone();
    let turns = run(&s, async move {
        let accept_all = async {
            for _ in 0..32 {
                l.accept().await.unwrap();
            }
        };
        common::with_turns_counted(&s2, accept_all).await.1
    });
    drop(clients);
    let _ = std::fs::remove_file(&path);
    if common::counts_turns(cfg) {
        assert!(turns <= 16, "32 waiting clients took {turns} loop turns");
    }
}

/// What a tokio user writes first: `send_to(b"..", "127.0.0.1:port")`,
/// `write_all(String)`. A byte literal and a `String` are buffers, and
/// `send_to` takes the addresses `bind` and `connect` take (a name is
/// looked up; a bad one is an error that hands the buffer back).
fn byte_literals_strings_and_address_strings_are_accepted(cfg: Config) {
    let s = sched(cfg);
    let a = UdpSocket::bind(&s, "127.0.0.1:0").unwrap();
    let b = UdpSocket::bind(&s, "127.0.0.1:0").unwrap();
    let to = format!("127.0.0.1:{}", b.local_addr().unwrap().port());
    let s2 = s.clone();
    run(&s, async move {
        let (n, _) = a.send_to(b"literal", to.as_str()).await;
        assert_eq!(n.unwrap(), 7);
        let (n, _) = a.send_to(String::from("owned"), &to).await;
        assert_eq!(n.unwrap(), 5);
        let (n, _) = a
            .send_to(b"named", ("localhost", b.local_addr().unwrap().port()))
            .await;
        assert_eq!(n.unwrap(), 5);
        let mut got = Vec::new();
        for _ in 0..3 {
            let (r, buf) = b.recv_from(Vec::with_capacity(64)).await;
            let (n, _) = r.unwrap();
            got.push(String::from_utf8(buf[..n].to_vec()).unwrap());
        }
        got.sort();
        assert_eq!(got, ["literal", "named", "owned"]);
        let (r, buf) = a.send_to(b"x", "no-port-here").await;
        assert!(r.is_err(), "a bad address is an error");
        assert_eq!(buf, b"x", "the buffer comes back");
        let l = coro_net::tcp::TcpListener::bind(&s2, "127.0.0.1:0").unwrap();
        let c = coro_net::tcp::TcpStream::connect(&s2, l.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = l.accept().await.unwrap();
        c.write_all(String::from("hello ")).await.0.unwrap();
        c.write_all(b"world").await.0.unwrap();
        drop(c);
        let mut all = Vec::new();
        loop {
            let (r, buf) = server.read(Vec::with_capacity(64)).await;
            match r.unwrap() {
                0 => break,
                n => all.extend_from_slice(&buf[..n]),
            }
        }
        assert_eq!(all, b"hello world");
    });
    s.shutdown();
}

/// A tiny submission queue (2 entries): 300 reads armed in one turn are
/// more than one flush moves into the kernel (64 rounds of a full SQ). The
/// loop must not block with the rest staged: the read whose bytes arrive
/// may be one of them, and no completion would come to wake it. Bounded
/// by a plain thread, not a scheduler timer (a due timer wakes the loop
/// and hides the bug as a delay).
fn more_staged_reads_than_a_flush_moves_do_not_stall_the_loop(cfg: Config) {
    use std::io::Write;
    let s = cfg.sched_with(coro_io::IoSchedulerOptions {
        uring: coro_io::UringOptions {
            entries: 2,
            ..Default::default()
        },
        ..Default::default()
    });
    let (mut peers, socks): (Vec<_>, Vec<_>) = (0..300)
        .map(|_| {
            let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
            (b, a)
        })
        .unzip();
    let s2 = s.clone();
    let parent = s.spawn(async move {
        let mut hs: Vec<_> = socks
            .into_iter()
            .map(|a| {
                let c = UnixStream::from_std(&s2, a).unwrap();
                s2.spawn(async move { c.read(Vec::with_capacity(8)).await.0.unwrap() })
            })
            .collect();
        let last = hs.pop().unwrap().await.unwrap();
        for h in hs {
            h.abort();
        }
        last
    });
    // Give the loop time to arm the reads and block (the bug blocked it
    // for good; with the fix, this only lets it get there).
    std::thread::sleep(std::time::Duration::from_millis(100));
    peers.last_mut().unwrap().write_all(b"x").unwrap();
    let t = std::time::Instant::now();
    while !parent.is_finished() {
        assert!(
            t.elapsed() < std::time::Duration::from_secs(20),
            "{cfg}: the staged read was never submitted"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert_eq!(sync_wait(parent).unwrap(), 1);
    drop(peers);
    s.shutdown();
}

fn udp_send_to_and_recv_from(cfg: Config) {
    let s = sched(cfg);
    let a = UdpSocket::bind(&s, "127.0.0.1:0").unwrap();
    let b = UdpSocket::bind(&s, "127.0.0.1:0").unwrap();
    run(&s, async move {
        let (aa, ba) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        for len in [0usize, 1, 512, 1472, 9000, 65_507] {
            let msg = pattern(len, 3);
            let (n, _) = a.send_to(msg.clone(), ba).await;
            assert_eq!(n.unwrap(), len);
            let (r, buf) = b.recv_from(Vec::with_capacity(65_536)).await;
            let (n, from) = r.unwrap();
            assert_eq!((n, from), (len, aa));
            assert!(buf == msg, "datagram of {len} bytes changed");
        }
        // Too large for UDP: a clear error, not a panic.
        let (r, _) = a.send_to(vec![0u8; 70_000], ba).await;
        assert!(r.is_err());
    });
    s.shutdown();
}

fn udp_truncation_is_reported(cfg: Config) {
    let s = sched(cfg);
    let a = UdpSocket::bind(&s, "127.0.0.1:0").unwrap();
    let b = UdpSocket::bind(&s, "127.0.0.1:0").unwrap();
    run(&s, async move {
        let ba = b.local_addr().unwrap();
        a.send_to(pattern(1000, 1), ba).await.0.unwrap();
        a.send_to(pattern(10, 2), ba).await.0.unwrap();
        let (r, buf) = b.recv_msg(Vec::with_capacity(100)).await;
        let m = r.unwrap();
        assert!(m.truncated());
        assert_eq!((m.len, m.datagram_len), (100, 1000));
        assert_eq!(m.addr, a.local_addr().unwrap());
        assert_eq!(buf, pattern(1000, 1)[..100]);
        // The tail of the truncated datagram is gone; the next one is whole.
        let (r, buf) = b.recv_msg(Vec::with_capacity(100)).await;
        let m = r.unwrap();
        assert!(!m.truncated());
        assert_eq!((m.len, m.datagram_len), (10, 10));
        assert_eq!(buf, pattern(10, 2));
    });
    s.shutdown();
}

fn udp_connected_send_recv(cfg: Config) {
    let s = sched(cfg);
    let a = UdpSocket::bind(&s, "127.0.0.1:0").unwrap();
    let b = UdpSocket::bind(&s, "127.0.0.1:0").unwrap();
    let stranger = UdpSocket::bind(&s, "127.0.0.1:0").unwrap();
    run(&s, async move {
        let (aa, ba) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        let e = a.send(b"x".as_slice()).await.0.unwrap_err();
        assert!(e.raw_os_error().is_some(), "{e}");
        a.connect(ba).await.unwrap();
        b.connect(aa).await.unwrap();
        assert_eq!(a.peer_addr().unwrap(), ba);
        // Only the connected peer's datagrams arrive.
        stranger.send_to(b"noise".as_slice(), ba).await.0.unwrap();
        a.send(b"hello".as_slice()).await.0.unwrap();
        let (n, buf) = b.recv(Vec::with_capacity(16)).await;
        assert_eq!(n.unwrap(), 5);
        assert_eq!(buf, b"hello");
        // ICMP port unreachable from a closed peer: ConnectionRefused on the next call.
        let gone = UdpSocket::bind(&s_of(&a), "127.0.0.1:0").unwrap();
        let gone_addr = gone.local_addr().unwrap();
        drop(gone);
        let c = UdpSocket::bind(&s_of(&a), "127.0.0.1:0").unwrap();
        c.connect(gone_addr).await.unwrap();
        c.send(b"anyone?".as_slice()).await.0.unwrap();
        let (r, _) = c.recv(Vec::with_capacity(16)).await;
        assert_eq!(r.unwrap_err().kind(), io::ErrorKind::ConnectionRefused);
    });
    s.shutdown();
}

fn s_of(_: &UdpSocket) -> coro_io::IoScheduler {
    coro_io::IoScheduler::current().expect("inside a task")
}

fn udp_ipv6(cfg: Config) {
    let s = sched(cfg);
    let a = match UdpSocket::bind(&s, "[::1]:0") {
        Ok(a) => a,
        Err(e) if e.kind() == io::ErrorKind::AddrNotAvailable => return,
        Err(e) => panic!("{e}"),
    };
    run(&s, async move {
        let me = a.local_addr().unwrap();
        assert!(me.is_ipv6());
        a.send_to(b"v6".as_slice(), me).await.0.unwrap();
        let (r, buf) = a.recv_from(Vec::with_capacity(8)).await;
        assert_eq!(r.unwrap(), (2, me));
        assert_eq!(buf, b"v6");
    });
    s.shutdown();
}

fn sock_path(tag: &str, cfg: Config) -> PathBuf {
    let p = std::env::temp_dir().join(format!("coro-net-{tag}-{}-{cfg}.sock", std::process::id()));
    let _ = std::fs::remove_file(&p);
    p
}

fn unix_listener_echo_and_addresses(cfg: Config) {
    let s = sched(cfg);
    let path = sock_path("echo", cfg);
    let l = UnixListener::bind(&s, &path).unwrap();
    assert_eq!(l.local_addr().unwrap().as_pathname(), Some(path.as_path()));
    // A second bind on the same path is a clear error.
    let e = UnixListener::bind(&s, &path).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
    assert!(e.to_string().contains(&path.display().to_string()), "{e}");
    let s2 = s.clone();
    let p2 = path.clone();
    run(&s, async move {
        let c = UnixStream::connect(&s2, &p2).await.unwrap();
        let (srv, peer) = l.accept().await.unwrap();
        assert!(peer.is_unnamed());
        assert_eq!(c.peer_addr().unwrap().as_pathname(), Some(p2.as_path()));
        let msg = pattern(300_000, 9);
        let w = s2.spawn(async move {
            let (r, _) = c.write_all(msg).await;
            r.unwrap();
            c.shutdown(Shutdown::Write).unwrap();
            c
        });
        let mut got = Vec::new();
        loop {
            let (n, b) = srv.read(Vec::with_capacity(65_536)).await;
            if n.unwrap() == 0 {
                break;
            }
            got.extend_from_slice(&b);
        }
        drop(w.await.unwrap());
        assert!(got == pattern(300_000, 9));
    });
    std::fs::remove_file(&path).unwrap();
    s.shutdown();
}

/// A Unix stream read stops short at a message that carries fds, with
/// bytes queued behind it: that short read must not mark the socket
/// drained, or the next read waits for an edge that already came.
fn unix_a_read_stopped_at_passed_fds_is_not_taken_for_drained(cfg: Config) {
    use std::time::Duration;
    let s = sched(cfg);
    let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    let a = UnixStream::from_std(&s, a).unwrap();
    let s2 = s.clone();
    run(&s, async move {
        // Registered by a read that waits (and gives up).
        let (r, _) = a
            .read_timeout(Vec::with_capacity(64), Duration::from_millis(5))
            .await;
        assert_eq!(r.unwrap_err().kind(), io::ErrorKind::TimedOut);
        // "x" with an fd, then "rest".
        coro_io::testing::send_with_an_fd(&b, b"x");
        rustix::io::write(&b, b"rest").unwrap();
        // The loop takes in the edges that brought both, before the reads.
        s2.sleep(Duration::from_millis(20)).await;
        let mut got = Vec::new();
        while got.len() < 5 {
            let read = s2.timeout(Duration::from_secs(5), a.read(Vec::with_capacity(64)));
            let (r, buf) = read
                .await
                .expect("the bytes behind the passed fd were never read");
            let n = r.unwrap();
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, b"xrest");
    });
    s.shutdown();
}

fn unix_pair_half_close(cfg: Config) {
    let s = sched(cfg);
    let (a, b) = UnixStream::pair(&s).unwrap();
    run(&s, async move {
        a.write_all(b"ping".as_slice()).await.0.unwrap();
        a.shutdown(Shutdown::Write).unwrap();
        let (n, buf) = b.read(Vec::with_capacity(8)).await;
        assert_eq!((n.unwrap(), buf.as_slice()), (4, b"ping".as_slice()));
        let (n, _) = b.read(Vec::with_capacity(8)).await;
        assert_eq!(n.unwrap(), 0, "EOF after the peer's shutdown");
        b.write_all(b"pong".as_slice()).await.0.unwrap();
        let (n, buf) = a.read(Vec::with_capacity(8)).await;
        assert_eq!((n.unwrap(), buf.as_slice()), (4, b"pong".as_slice()));
        drop(b);
        let (r, _) = a.write(b"x".as_slice()).await;
        assert_eq!(r.unwrap_err().kind(), io::ErrorKind::BrokenPipe);
    });
    s.shutdown();
}

fn unix_connect_errors_name_the_path(cfg: Config) {
    let s = sched(cfg);
    let path = sock_path("missing", cfg);
    let s2 = s.clone();
    let p2 = path.clone();
    run(&s, async move {
        let e = UnixStream::connect(&s2, &p2).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(e.to_string().contains(&p2.display().to_string()), "{e}");
        // A socket file nobody listens on any more: refused.
        drop(UnixListener::bind(&s2, &p2).unwrap());
        let e = UnixStream::connect(&s2, &p2).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused, "{e}");
        // A NUL byte is refused, not cut off: the kernel would read "a"
        // (or, leading, an abstract name) and bind or reach that instead.
        let cut = p2.with_extension("cut");
        let _ = std::fs::remove_file(&cut);
        let mut nul = cut.clone().into_os_string();
        nul.push("\0tail");
        let e = UnixListener::bind(&s2, &nul).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
        assert!(!cut.exists(), "bound the path up to the NUL");
        let _l = UnixListener::bind(&s2, &cut).unwrap();
        let e = UnixStream::connect(&s2, &nul).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
        // A leading NUL names an abstract socket (as socket2 encodes it).
        let name = format!("\0coro-abstract-{}-{}", std::process::id(), p2.display());
        let l = UnixListener::bind(&s2, &name).unwrap();
        let c = UnixStream::connect(&s2, &name).await.unwrap();
        drop((c, l.accept().await.unwrap()));
        let _ = std::fs::remove_file(&cut);
    });
    let _ = std::fs::remove_file(&path);
    s.shutdown();
}

/// A Unix socket of ours bound (by hand: std refuses it) to a path of the
/// full 108 bytes of `sun_path`, which Linux allows without a terminating
/// NUL and std's `SocketAddr` cannot express.
fn bind_full_length(kind: libc::c_int, dir: &std::path::Path, tag: u8) -> std::os::fd::OwnedFd {
    use std::os::fd::FromRawFd;
    use std::os::unix::ffi::OsStrExt;
    let mut path = dir.as_os_str().as_bytes().to_vec();
    path.push(b'/');
    path.push(tag);
    while path.len() < 108 {
        path.push(b'p');
    }
    // SAFETY: a plain socket(2); the fd is ours.
    let fd = unsafe { libc::socket(libc::AF_UNIX, kind | libc::SOCK_CLOEXEC, 0) };
    assert!(fd >= 0, "{}", io::Error::last_os_error());
    // SAFETY: just made, owned by nothing else.
    let owned = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
    // SAFETY: all-zero is a valid sockaddr_un.
    let mut sa: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    sa.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (d, s) in sa.sun_path.iter_mut().zip(&path) {
        *d = *s as libc::c_char;
    }
    let len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
    // SAFETY: `sa` is a valid sockaddr_un of `len` bytes.
    let r = unsafe { libc::bind(fd, (&raw const sa).cast(), len) };
    assert_eq!(r, 0, "bind: {}", io::Error::last_os_error());
    owned
}

fn a_peer_at_a_full_length_path_is_accepted_and_heard(cfg: Config) {
    let s = sched(cfg);
    let dir = std::env::temp_dir().join(format!("cl{}{cfg}", std::process::id() % 1000));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let lpath = dir.join("l.sock");
    let dpath = dir.join("d.sock");
    let l = UnixListener::bind(&s, &lpath).unwrap();
    let d = coro_net::unix::UnixDatagram::bind(&s, &dpath).unwrap();
    // A stream client and a datagram sender at full-length paths.
    let client = bind_full_length(libc::SOCK_STREAM, &dir, b's');
    let sender = bind_full_length(libc::SOCK_DGRAM, &dir, b'd');
    let client = std::os::unix::net::UnixStream::from(client);
    let sender = std::os::unix::net::UnixDatagram::from(sender);
    std::thread::spawn({
        let lpath = lpath.clone();
        move || {
            // connect(2) on the bound socket.
            let a = socket2::SockAddr::unix(&lpath).unwrap();
            socket2::SockRef::from(&client).connect(&a).unwrap();
            std::io::Write::write_all(&mut &client, b"hello").unwrap();
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    });
    sender.send_to(b"dgram", &dpath).unwrap();
    run(&s, async move {
        // The connection is not lost for its peer's address...
        let (conn, _peer) = l.accept().await.unwrap();
        let (r, buf) = conn.read(Vec::with_capacity(16)).await;
        assert_eq!((r.unwrap(), &buf[..]), (5, &b"hello"[..]));
        // ...nor the datagram for its sender's.
        let (r, buf) = d.recv_from(Vec::with_capacity(16)).await;
        let (n, _from) = r.unwrap();
        assert_eq!(&buf[..n], b"dgram");
    });
    std::fs::remove_dir_all(&dir).unwrap();
    s.shutdown();
}

/// Sizes and lingers beyond a C `int` are clamped, not wrapped: socket2
/// casts them with `as`, so a buffer of `1 << 32` bytes was asked as 0
/// (the kernel's smallest) and a linger of `1 << 32` s as 0 s (a reset on
/// close).
#[test]
fn huge_buffer_sizes_and_lingers_are_clamped_not_wrapped() {
    let s = IoScheduler::new(Default::default()).unwrap();
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let s2 = s.clone();
    run(&s, async move {
        let c = coro_net::tcp::TcpStream::connect(&s2, addr).await.unwrap();
        let (rcv, snd) = (c.recv_buffer_size().unwrap(), c.send_buffer_size().unwrap());
        c.set_recv_buffer_size(1 << 32).unwrap();
        c.set_send_buffer_size(1 << 32).unwrap();
        assert!(
            c.recv_buffer_size().unwrap() >= rcv,
            "asked for more, got less"
        );
        assert!(
            c.send_buffer_size().unwrap() >= snd,
            "asked for more, got less"
        );
        c.set_linger(Some(std::time::Duration::from_secs(1 << 32)))
            .unwrap();
        let linger = socket2::SockRef::from(&c).linger().unwrap();
        assert!(
            linger.is_some_and(|d| d.as_secs() > 1 << 20),
            "a long linger became {linger:?}"
        );
        let u = UdpSocket::bind(&s2, "127.0.0.1:0").unwrap();
        let before = socket2::SockRef::from(&u).recv_buffer_size().unwrap();
        u.set_recv_buffer_size((1 << 32) + 1024).unwrap();
        assert!(socket2::SockRef::from(&u).recv_buffer_size().unwrap() >= before);
    });
    s.shutdown();
}

/// UDP receives that time out over and over while datagrams arrive (a
/// receive buffer large enough that loopback drops none): each arrives
/// once, in order.
fn udp_receives_with_a_timeout_lose_nothing(cfg: Config) {
    const N: u32 = 1000;
    let s = sched(cfg);
    let a = UdpSocket::bind(&s, "127.0.0.1:0").unwrap();
    let b = UdpSocket::bind(&s, "127.0.0.1:0").unwrap();
    b.set_recv_buffer_size(8 << 20).unwrap();
    let to = b.local_addr().unwrap();
    let s2 = s.clone();
    let got = run(&s, async move {
        let sender = s2.spawn(async move {
            for i in 0..N {
                a.send_to(i.to_le_bytes().to_vec(), to).await.0.unwrap();
                if i % 7 == 0 {
                    coro_core::yield_now().await;
                }
            }
            a
        });
        let mut got = Vec::with_capacity(N as usize);
        let mut buf = Vec::with_capacity(8);
        while got.len() < N as usize {
            let r;
            (r, buf) = if got.len() % 2 == 0 {
                let (r, b2) = b
                    .recv_from_timeout(buf, std::time::Duration::from_micros(20))
                    .await;
                (r.map(|(n, _)| n), b2)
            } else {
                b.recv_timeout(buf, std::time::Duration::from_micros(20))
                    .await
            };
            match r {
                Ok(4) => got.push(u32::from_le_bytes(buf[..4].try_into().unwrap())),
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                other => panic!("unexpected receive: {other:?}"),
            }
            buf.clear();
        }
        drop(sender.await);
        got
    });
    assert!(
        got == (0..N).collect::<Vec<_>>(),
        "{cfg}: datagrams lost or reordered"
    );
}

/// As the Unix datagram test of that name: a deadline due at once still
/// takes a queued datagram (with its source), and times out on none.
fn udp_a_zero_timeout_takes_a_queued_datagram(cfg: Config) {
    let zero = std::time::Duration::ZERO;
    let s = sched(cfg);
    let a = UdpSocket::bind(&s, "127.0.0.1:0").unwrap();
    let b = UdpSocket::bind(&s, "127.0.0.1:0").unwrap();
    let (from_a, to) = (a.local_addr().unwrap(), b.local_addr().unwrap());
    run(&s, async move {
        let (r, _) = b.recv_timeout(Vec::with_capacity(8), zero).await;
        assert_eq!(r.unwrap_err().kind(), io::ErrorKind::TimedOut);
        a.send_to(b"one".as_slice(), to).await.0.unwrap();
        a.send_to(b"two".as_slice(), to).await.0.unwrap();
        // Loopback delivers within the send; a moment for good measure.
        std::thread::sleep(std::time::Duration::from_millis(5));
        let (r, buf) = b.recv_from_timeout(Vec::with_capacity(8), zero).await;
        assert_eq!((r.unwrap(), &buf[..]), ((3, from_a), &b"one"[..]));
        let (r, buf) = b.recv_timeout(Vec::with_capacity(8), zero).await;
        assert_eq!((r.unwrap(), &buf[..]), (3, &b"two"[..]));
        let (r, _) = b.recv_from_timeout(Vec::with_capacity(8), zero).await;
        assert_eq!(r.unwrap_err().kind(), io::ErrorKind::TimedOut);
    });
    s.shutdown();
}

/// A connect to a listener whose backlog is full retries after a pause.
/// Once its scheduler shut down, the pauses end at once: awaited from
/// outside the scheduler, the connect must end with an error, not retry
/// in a spin until the listener accepts.
fn unix_connect_to_a_full_backlog_after_shutdown_ends(cfg: Config) {
    use socket2::{Domain, SockAddr, Socket, Type};
    let s = sched(cfg);
    let path = std::env::temp_dir().join(format!(
        "coro-unix-full-backlog-{}-{cfg}",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&path);
    let l = Socket::new(Domain::UNIX, Type::STREAM, None).unwrap();
    l.bind(&SockAddr::unix(&path).unwrap()).unwrap();
    l.listen(1).unwrap();
    // Fill the backlog with connections nobody accepts.
    let mut held = Vec::new();
    loop {
        let c = Socket::new(Domain::UNIX, Type::STREAM.nonblocking(), None).unwrap();
        match c.connect(&SockAddr::unix(&path).unwrap()) {
            Ok(()) => held.push(c),
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => break,
            Err(e) => panic!("{cfg}: filling the backlog: {e}"),
        }
        assert!(held.len() < 1000, "the backlog never filled");
    }
    s.shutdown();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let (s2, p2) = (s.clone(), path.clone());
    let connector = std::thread::spawn(move || {
        let r = sync_wait(UnixStream::connect(&s2, &p2));
        let _ = done_tx.send(r.map(drop));
    });
    let ended = done_rx.recv_timeout(std::time::Duration::from_secs(5));
    // Room at last, so that a spinning connect ends too.
    drop(held);
    drop(l);
    connector.join().unwrap();
    let _ = std::fs::remove_file(&path);
    let r = ended.unwrap_or_else(|_| panic!("{cfg}: the connect went on after shutdown"));
    assert!(r.is_err(), "{cfg}: {r:?}");
}
