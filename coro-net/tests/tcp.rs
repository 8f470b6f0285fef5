//! TCP on both drivers: echo from 1 B to 4 MiB, 1,000 concurrent
//! connections, half-close, peer reset, refused and timed-out connects,
//! IPv6, poll, socket options.

mod common;

use std::future::Future;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use common::{pattern, raise_nofile, run, sched};
use coro_io::testing::Config;
use coro_io::{DriverKind, IoScheduler, PollOp, PollStatus, TaskGroup};
use coro_net::tcp::{ListenOptions, TcpListener, TcpSocket, TcpStream};

coro_io::driver_tests!(
    a_backlog_of_clients_is_accepted_in_a_few_loop_turns,
    read_timeout_keeps_its_deadline_after_a_dropped_adapter_read,
    poll_and_peek_see_what_a_dropped_adapter_read_received,
    echo_round_trips_1b_to_4mib,
    thousand_concurrent_connections,
    half_close_keeps_reading,
    peer_reset_is_an_error_on_that_stream,
    connect_refused_is_clear,
    connect_timeout_is_clear,
    ipv6_loopback_echo,
    poll_reports_timeout_then_event,
    socket_options_round_trip,
    dropped_reads_and_accepts_leave_things_usable,
    explicit_close_goes_through_the_driver,
    read_timeout_times_out_and_keeps_the_buffer,
    read_timeout_loses_nothing_at_the_deadline,
    a_zero_read_timeout_returns_what_is_there,
    owned_reads_after_adapter_reads_lose_nothing,
    poll_sees_bytes_the_adapter_read_ahead,
    split_halves_in_two_tasks_and_reunite,
    shared_reference_reads_and_writes_from_two_tasks,
    copy_bidirectional_proxies_and_propagates_the_end,
    peek_leaves_the_bytes_and_ttl_round_trips,
    ttl_of_an_ipv4_peer_on_a_dual_stack_listener_reaches_its_packets,
    an_empty_buffer_reads_nothing_at_once,
    tcp_socket_binds_before_connecting_and_listens,
    a_dropped_read_loses_nothing,
    streams_share_a_tiny_buffer_ring_without_losing_bytes,
    a_peek_waiting_for_more_sees_it_when_the_ring_is_dry,
    a_first_peek_sees_all_the_socket_holds,
    a_reset_a_peek_found_past_a_full_queue_is_still_reported,
    a_closed_stream_with_queued_bytes_leaves_the_next_fd_alone,
    poll_read_sees_bytes_a_short_read_left,
    into_std_stops_taking_bytes_at_once,
    a_peek_then_into_std_keeps_the_bytes,
    copy_runs_between_split_halves,
    connect_errors_keep_the_os_error,
    a_zero_timeout_poll_sees_bytes_a_read_would_get,
    a_zero_timeout_read_write_poll_sees_bytes_a_read_would_get,
    a_reset_seen_by_a_first_peek_is_still_reported_by_the_read,
    into_std_on_another_thread_while_the_loop_spins,
    a_reader_that_never_waits_lets_the_other_tasks_run,
    adapter_write_with_a_spent_budget_takes_nothing,
    an_adapter_write_reaches_the_peer_while_the_writer_waits_for_the_reply,
    an_accept_dropped_after_the_kernel_accepted_keeps_the_connection,
    two_tasks_writing_through_one_shared_stream_both_finish,
    owned_writes_and_shutdown_come_after_what_async_write_accepted,
    a_stream_dropped_after_write_all_delivers_every_byte,
    a_stream_dropped_right_before_shutdown_still_delivers_every_byte,
    an_adapter_send_outlives_the_thread_that_started_it,
    a_send_staged_by_a_thread_that_then_drops_a_stream_outlives_it,
    a_stream_dropped_while_the_shutdown_lingers_still_delivers_every_byte,
    many_streams_and_halves_dropped_mid_send_then_shut_down_deliver_everything,
    a_write_half_dropped_after_write_all_delivers_every_byte_then_the_end,
    dropped_reads_of_an_idle_stream_keep_few_wakers,
    dropped_adapter_reads_of_an_idle_stream_keep_few_wakers,
    many_tasks_waiting_on_one_idle_stream_do_not_spin,
);

/// A stream dropped with an adapter send in flight to a peer that never
/// reads: its background flush gives up after 10 s and closes the socket
/// (the peer then finds the end after what it was sent), once. The task
/// used to drop the stream with the send still in it, whose drop started
/// another such task, for as long as the peer stayed: the fd was never
/// closed. io_uring only: on epoll the adapter takes no bytes the socket
/// cannot take at once (nothing would send them), so there is no such
/// send. On a Unix stream, whose peer takes no more than the buffers hold.
#[test]
fn a_background_flush_to_a_peer_that_never_reads_gives_up() {
    flush_gives_up(Config::URING_DEFER);
}

/// A Unix stream pair whose first end's buffers are full (a 4 KiB send
/// buffer, non-blocking), and how many bytes that took: the peer takes no
/// more than the buffers hold (TCP on loopback lets a zero window take a
/// little more now and then).
fn full_unix_pair() -> (
    std::os::unix::net::UnixStream,
    std::os::unix::net::UnixStream,
    usize,
) {
    let (client, peer) = std::os::unix::net::UnixStream::pair().unwrap();
    socket2::SockRef::from(&client)
        .set_send_buffer_size(4096)
        .unwrap();
    client.set_nonblocking(true).unwrap();
    let mut sent = 0usize;
    loop {
        match (&client).write(&[1u8; 1024]) {
            Ok(n) => sent += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => panic!("{e}"),
        }
    }
    (client, peer, sent)
}

fn flush_gives_up(cfg: Config) {
    // A Unix stream: its peer takes no more than the buffers hold (TCP on
    // loopback lets a zero window take a little more now and then).
    let s = sched(cfg);
    let (client, mut peer, sent) = full_unix_pair();
    let c = coro_net::unix::UnixStream::from_std(&s, client).unwrap();
    run(&s, async move {
        let mut c = c;
        // Accepted, its send waiting for room (write-behind).
        let n = futures::io::AsyncWriteExt::write(&mut c, &[2u8; 65536])
            .await
            .unwrap();
        assert_eq!(n, 65536, "{cfg}");
        drop(c);
    });
    std::thread::sleep(Duration::from_secs(11));
    // Given up and closed, with the peer still not reading: it sees the
    // hang-up (a leaked fd, or one a task keeps, would not give it).
    let mut fds = [rustix::event::PollFd::new(
        &peer,
        rustix::event::PollFlags::RDHUP,
    )];
    let now = rustix::event::Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    rustix::event::poll(&mut fds, Some(&now)).unwrap();
    let rev = fds[0].revents();
    assert!(
        rev.intersects(rustix::event::PollFlags::HUP | rustix::event::PollFlags::RDHUP),
        "{cfg}: the socket is still open after 11 s ({rev:?})"
    );
    let mut got = Vec::new();
    peer.read_to_end(&mut got).unwrap();
    assert!(got.len() >= sent, "{cfg}: {} of {sent} bytes", got.len());
    s.shutdown();
}

/// 40 tasks wait to read one idle stream, more than a list of waiting
/// tasks holds before it is let go of (and its wakers woken): they must
/// settle, not evict each other for ever (each polled once or twice, not
/// thousands of times), and all get woken by the data.
fn many_tasks_waiting_on_one_idle_stream_do_not_spin(cfg: Config) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let s = sched(cfg);
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let s2 = s.clone();
    let a = Arc::new(run(&s, async move {
        TcpStream::connect(&s2, addr).await.unwrap()
    }));
    let (mut b, _) = l.accept().unwrap();
    let polls = Arc::new(AtomicUsize::new(0));
    let readers: Vec<_> = (0..40)
        .map(|_| {
            let (a, polls) = (a.clone(), polls.clone());
            s.spawn(async move {
                let mut read = std::pin::pin!(a.read(vec![0u8; 1]));
                std::future::poll_fn(|cx| {
                    polls.fetch_add(1, Ordering::SeqCst);
                    read.as_mut().poll(cx)
                })
                .await
                .0
                .unwrap()
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let n = polls.load(Ordering::SeqCst);
    assert!(n < 400, "{cfg}: 40 idle readers were polled {n} times");
    b.write_all(&[7u8; 40]).unwrap();
    let got: usize = readers
        .into_iter()
        .map(|h| coro_core::sync_wait(h).unwrap())
        .sum();
    assert_eq!(got, 40, "{cfg}");
    drop(a);
    s.shutdown();
}

/// Reads of an idle stream, each polled once with a waker of its own and
/// dropped (as a combinator rebuilt per loop, or a stream moved between
/// tasks, does), polled from this thread as a foreign executor would: the
/// stream's list of waiting tasks must not keep every one of them (it
/// kept them all on epoll and with io_uring's receive queue, until a byte
/// came).
fn dropped_reads_of_an_idle_stream_keep_few_wakers(cfg: Config) {
    let s = sched(cfg);
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let s2 = s.clone();
    let a = run(
        &s,
        async move { TcpStream::connect(&s2, addr).await.unwrap() },
    );
    let (_b, _) = l.accept().unwrap();
    let kept =
        common::wakers_kept_by_dropped_polls(5000, "nothing was sent", || a.read(vec![0u8; 16]));
    // Bounded (the list is let go of when full; the mark doubles, up to
    // 1,024), not one per dropped read.
    assert!(kept <= 2048, "{cfg}: {kept} wakers kept");
    drop(a);
    s.shutdown();
}

/// A peer on `l` (with a 4 KiB receive buffer) that accepts, reads all
/// but the last 32 KiB of the `len` bytes it expects, stops for `pause`,
/// then reads to the end (failing after 10 s without one): a writer's
/// `write_all` has returned by then, with its last chunk still being sent.
fn pausing_reader(
    l: std::net::TcpListener,
    len: usize,
    pause: Duration,
) -> std::thread::JoinHandle<Vec<u8>> {
    socket2::SockRef::from(&l)
        .set_recv_buffer_size(4096)
        .unwrap();
    std::thread::spawn(move || {
        let (mut c, _) = l.accept().unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut got = vec![0; len - 32 * 1024];
        c.read_exact(&mut got).unwrap();
        std::thread::sleep(pause);
        match c.read_to_end(&mut got) {
            Ok(_) => got,
            Err(e) => panic!("no end of stream after {} bytes: {e}", got.len()),
        }
    })
}

/// A connected pair on `s`: `(reader, writer)`, where the writer has sent
/// `bytes` and shut its write side, and they have all reached the reader's
/// socket (a poll said readable).
async fn sent_then_shut(s: &IoScheduler, bytes: &'static [u8]) -> (TcpStream, TcpStream) {
    let l = TcpListener::bind(s, "127.0.0.1:0").unwrap();
    let writer = TcpStream::connect(s, l.local_addr().unwrap())
        .await
        .unwrap();
    let (reader, _) = l.accept().await.unwrap();
    let (w, _) = writer.write_all(bytes).await;
    w.unwrap();
    writer.shutdown(Shutdown::Write).unwrap();
    let st = s
        .poll(&reader, PollOp::Read, Some(Duration::from_secs(5)))
        .await;
    assert_eq!(st, PollStatus::Event);
    (reader, writer)
}

/// A peer on `l` that accepts, starts reading 50 ms late, and reads to the
/// end (failing after 10 s without one).
fn late_reader(l: std::net::TcpListener) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let (mut c, _) = l.accept().unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        let mut got = Vec::new();
        match c.read_to_end(&mut got) {
            Ok(_) => got,
            Err(e) => panic!("no end of stream after {} bytes: {e}", got.len()),
        }
    })
}

/// The same through split halves: the write half dropped after
/// `write_all` while the read half lives on. The peer gets every byte,
/// then the end (the drop's shutdown waits for the send in flight; it
/// used to leave the write side open until the read half went, and on
/// epoll with those bytes unsent).
fn a_write_half_dropped_after_write_all_delivers_every_byte_then_the_end(cfg: Config) {
    let s = sched(cfg);
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let data = pattern(1 << 20, 9);
    let reader = late_reader(l);
    let (s2, d) = (s.clone(), data.clone());
    let read_half = run(&s, async move {
        let c = TcpStream::connect(&s2, addr).await.unwrap();
        c.set_send_buffer_size(4096).unwrap();
        let (r, mut w) = c.into_split();
        futures::io::AsyncWriteExt::write_all(&mut w, &d)
            .await
            .unwrap();
        drop(w);
        r
    });
    let got = reader.join().unwrap();
    assert_eq!(got.len(), data.len(), "{cfg}: bytes delivered");
    assert!(got == data, "{cfg}: the bytes differ");
    drop(read_half);
    s.shutdown();
}

/// `write_all` through the `AsyncWrite` adapter, then drop without a
/// flush, as tokio code ends a response (tokio's `write_all` returns once
/// the kernel has every byte): the peer, which starts reading late, still
/// gets every byte, then the end. (The adapter writes behind: with a small
/// send buffer the last chunk was still being sent when `write_all`
/// returned, and the drop cancelled it.)
fn a_stream_dropped_after_write_all_delivers_every_byte(cfg: Config) {
    let s = sched(cfg);
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let data = pattern(1 << 20, 7);
    let reader = late_reader(l);
    let (s2, d) = (s.clone(), data.clone());
    run(&s, async move {
        let mut c = TcpStream::connect(&s2, addr).await.unwrap();
        c.set_send_buffer_size(4096).unwrap();
        futures::io::AsyncWriteExt::write_all(&mut c, &d)
            .await
            .unwrap();
        drop(c);
    });
    let got = reader.join().unwrap();
    assert_eq!(got.len(), data.len(), "{cfg}: bytes delivered");
    assert!(got == data, "{cfg}: the bytes differ");
    s.shutdown();
}

/// The same, with the scheduler shut down right after the drop, as a
/// `#[coro::main]` that returns then does: the peer still gets every
/// byte, then the end (shutdown lets the dropped stream's send finish;
/// it used to cancel it, and the peer got a truncated body: the kernel
/// would have sent a tokio program's bytes after its exit).
fn a_stream_dropped_right_before_shutdown_still_delivers_every_byte(cfg: Config) {
    let s = sched(cfg);
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let data = pattern(1 << 20, 8);
    // The peer stops 32 KiB before the end for 300 ms: `write_all` has
    // returned by then (its last 64 KiB chunk was accepted), and the drop
    // and the shutdown come while that chunk is still being sent.
    let reader = pausing_reader(l, data.len(), Duration::from_millis(300));
    let (s2, d) = (s.clone(), data.clone());
    run(&s, async move {
        let mut c = TcpStream::connect(&s2, addr).await.unwrap();
        c.set_send_buffer_size(4096).unwrap();
        futures::io::AsyncWriteExt::write_all(&mut c, &d)
            .await
            .unwrap();
        drop(c);
    });
    s.shutdown();
    let got = reader.join().unwrap();
    assert_eq!(got.len(), data.len(), "{cfg}: bytes delivered");
    assert!(got == data, "{cfg}: the bytes differ");
}

/// Waits (bounded: on a `Manual` scheduler the writer needs the driving
/// thread) for the writer thread of the tests below, which hands back its
/// stream and how its `write_all` went.
fn join_writer(
    cfg: Config,
    writer: std::thread::JoinHandle<(TcpStream, Result<(), String>)>,
) -> TcpStream {
    for _ in 0..2000 {
        if writer.is_finished() {
            let (c, wrote) = writer.join().unwrap();
            assert_eq!(wrote, Ok(()), "{cfg}: write_all");
            return c;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("{cfg}: the writer never finished");
}

/// Flushes `c` from a task of `s` once its writer thread is gone, closes
/// it, and checks that the peer (`reader`) got `data`, then the end.
fn flush_then_check(
    cfg: Config,
    s: &IoScheduler,
    mut c: TcpStream,
    reader: std::thread::JoinHandle<Vec<u8>>,
    data: &[u8],
) {
    let flushed = run(s, async move {
        let r = futures::io::AsyncWriteExt::flush(&mut c).await;
        drop(c);
        r.map_err(|e| e.to_string())
    });
    let got = reader.join().unwrap();
    assert_eq!(flushed, Ok(()), "{cfg}: the flush after the writer's exit");
    assert_eq!(got.len(), data.len(), "{cfg}: bytes delivered");
    assert!(got == data, "{cfg}: the bytes differ");
}

/// A task that ends while the shutdown lingers (for another lingering
/// task) and drops its stream with a send in flight: the send lingers
/// too, within the same bound. The drop used to see the shutdown begun
/// and cancel it: the peer got a truncated stream, in the very window the
/// shutdown keeps open for such sends.
fn a_stream_dropped_while_the_shutdown_lingers_still_delivers_every_byte(cfg: Config) {
    let s = sched(cfg);
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let data = pattern(256 * 1024, 9);
    let reader = pausing_reader(l, data.len(), Duration::from_millis(300));
    let s2 = s.clone();
    let c = run(&s, async move {
        let c = TcpStream::connect(&s2, addr).await.unwrap();
        c.set_send_buffer_size(4096).unwrap();
        c
    });
    // Keeps the shutdown lingering until the writer below is done (on
    // epoll its `write_all` ends only once the peer reads on, ~400 ms;
    // room for a slow machine, within the shutdown's 5 s bound).
    let s2 = s.clone();
    assert!(s.spawn_lingering(async move {
        s2.sleep(Duration::from_millis(1500)).await;
    }));
    // Runs on during the linger: writes, then drops its stream.
    let (s2, d) = (s.clone(), data.clone());
    s.spawn(async move {
        let mut c = c;
        s2.sleep(Duration::from_millis(100)).await;
        if futures::io::AsyncWriteExt::write_all(&mut c, &d)
            .await
            .is_ok()
        {
            drop(c);
        }
    })
    .detach();
    let t0 = std::time::Instant::now();
    s.shutdown();
    let took = t0.elapsed();
    let got = reader.join().unwrap();
    assert_eq!(got.len(), data.len(), "{cfg}: bytes delivered");
    assert!(got == data, "{cfg}: the bytes differ");
    assert!(
        took < Duration::from_secs(5),
        "{cfg}: the shutdown took {took:?}"
    );
}

/// As [`an_adapter_send_outlives_the_thread_that_started_it`], where the
/// writing thread then drops another stream, whose armed receive's cancel
/// it submits itself while the loop is busy (so the send it staged is
/// still staged): that enter submitted the send too, as this thread's
/// request, cancelled at its exit. Only the cancel goes in now.
fn a_send_staged_by_a_thread_that_then_drops_a_stream_outlives_it(cfg: Config) {
    let s = sched(cfg);
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    socket2::SockRef::from(&l)
        .set_recv_buffer_size(4096)
        .unwrap();
    let (addr, l2) = (
        l.local_addr().unwrap(),
        std::net::TcpListener::bind("127.0.0.1:0").unwrap(),
    );
    let addr2 = l2.local_addr().unwrap();
    let s2 = s.clone();
    let (c, c2) = run(&s, async move {
        let c = TcpStream::connect(&s2, addr).await.unwrap();
        c.set_send_buffer_size(4096).unwrap();
        let c2 = TcpStream::connect(&s2, addr2).await.unwrap();
        // Arms c2's receive (a receive queue keeps it armed after the
        // read is given up).
        let _ = s2
            .timeout(Duration::from_millis(20), c2.read(vec![0u8; 16]))
            .await;
        (c, c2)
    });
    let (mut peer, _) = l.accept().unwrap();
    let (_peer2, _) = l2.accept().unwrap();
    // The loop (the parker of an inline scheduler) busy for a while.
    let busy = s.spawn(async {
        let t0 = std::time::Instant::now();
        while t0.elapsed() < Duration::from_millis(300) {
            std::hint::spin_loop();
        }
    });
    std::thread::sleep(Duration::from_millis(30));
    let data = pattern(32 * 1024, 11);
    // The peer reads once the writer's thread is gone (or after half a
    // second: on epoll nothing is left in flight, the writer waits for it).
    let (exited, wait_exit) = std::sync::mpsc::channel::<()>();
    let reader = std::thread::spawn(move || {
        let _ = wait_exit.recv_timeout(Duration::from_millis(500));
        peer.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut got = Vec::new();
        match peer.read_to_end(&mut got) {
            Ok(_) => got,
            Err(e) => panic!("no end of stream after {} bytes: {e}", got.len()),
        }
    });
    let d = data.clone();
    let writer = std::thread::spawn(move || {
        let mut c = c;
        // One chunk: accepted (its send staged) at once.
        let r = coro_core::sync_wait(futures::io::AsyncWriteExt::write_all(&mut c, &d));
        drop(c2);
        (c, r.map_err(|e| e.to_string()))
    });
    let c = join_writer(cfg, writer);
    exited.send(()).unwrap();
    coro_core::sync_wait(busy).unwrap();
    flush_then_check(cfg, &s, c, reader, &data);
}

/// A send the `AsyncWrite` adapter leaves in flight outlives the thread
/// that wrote: a thread of the user's writes through the adapter in
/// `sync_wait` and ends, and only then does the peer read. The kernel
/// cancels the io_uring requests a thread submitted when that thread
/// exits; where any thread could enter the ring (plain and COOP rings:
/// pool execution, `Manual`), the writer's own enter submitted that send,
/// which then failed with `ECANCELED`: the flush failed and the peer got a
/// truncated stream.
fn an_adapter_send_outlives_the_thread_that_started_it(cfg: Config) {
    let s = sched(cfg);
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    socket2::SockRef::from(&l)
        .set_recv_buffer_size(4096)
        .unwrap();
    let addr = l.local_addr().unwrap();
    let data = pattern(256 * 1024, 5);
    let s2 = s.clone();
    let c = run(&s, async move {
        let c = TcpStream::connect(&s2, addr).await.unwrap();
        c.set_send_buffer_size(4096).unwrap();
        c
    });
    let (mut peer, _) = l.accept().unwrap();
    // The peer reads all but the last 32 KiB, then waits for the writer's
    // thread to be gone before it reads the rest (for half a second at
    // most: on epoll the adapter keeps nothing in flight, so the writer
    // ends only once the peer reads on).
    let (exited, wait_exit) = std::sync::mpsc::channel::<()>();
    let len = data.len();
    let reader = std::thread::spawn(move || {
        peer.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut got = vec![0; len - 32 * 1024];
        peer.read_exact(&mut got).unwrap();
        let _ = wait_exit.recv_timeout(Duration::from_millis(500));
        match peer.read_to_end(&mut got) {
            Ok(_) => got,
            Err(e) => panic!("no end of stream after {} bytes: {e}", got.len()),
        }
    });
    let d = data.clone();
    let writer = std::thread::spawn(move || {
        let mut c = c;
        // Returns once the adapter took the last chunk, still in flight.
        let r = coro_core::sync_wait(futures::io::AsyncWriteExt::write_all(&mut c, &d));
        (c, r.map_err(|e| e.to_string()))
    });
    let c = join_writer(cfg, writer);
    // The writer's thread has exited (joined): now the peer reads on.
    exited.send(()).unwrap();
    flush_then_check(cfg, &s, c, reader, &data);
}

/// Adversarial: eight connections, half whole streams and half split
/// write halves, each dropped right after `write_all` with its last
/// chunk still being sent to a peer that stops 32 KiB before the end for
/// a while of its own (100-300 ms); the scheduler is shut down from
/// outside at a moment within those pauses (0-50 ms after the writers
/// ended). Every peer gets every byte, then the end, and the shutdown
/// takes far less than its 5 s bound for them.
fn many_streams_and_halves_dropped_mid_send_then_shut_down_deliver_everything(cfg: Config) {
    const CONNS: usize = 8;
    const LEN: usize = 256 * 1024;
    let s = sched(cfg);
    // Reproducible "random" moments from the configuration's name.
    let mut seed = cfg
        .to_string()
        .bytes()
        .fold(0x9E37_79B9_u64, |h, b| h.rotate_left(5) ^ u64::from(b));
    let mut next = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let mut readers = Vec::new();
    let mut addrs = Vec::new();
    for i in 0..CONNS {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        addrs.push(l.local_addr().unwrap());
        let pause = Duration::from_millis(100 + next(200));
        let reader = pausing_reader(l, LEN, pause);
        readers.push(std::thread::spawn(move || (i, reader.join().unwrap())));
    }
    let writers: Vec<_> = addrs
        .into_iter()
        .enumerate()
        .map(|(i, addr)| {
            let s2 = s.clone();
            s.spawn(async move {
                let mut c = TcpStream::connect(&s2, addr).await.unwrap();
                c.set_send_buffer_size(4096).unwrap();
                let data = pattern(LEN, i as u8);
                if i % 2 == 0 {
                    futures::io::AsyncWriteExt::write_all(&mut c, &data)
                        .await
                        .unwrap();
                    drop(c);
                } else {
                    let (r, mut w) = c.into_split();
                    futures::io::AsyncWriteExt::write_all(&mut w, &data)
                        .await
                        .unwrap();
                    drop(w);
                    drop(r);
                }
            })
        })
        .collect();
    for w in writers {
        coro_core::sync_wait(w).unwrap();
    }
    std::thread::sleep(Duration::from_millis(next(50)));
    let t = std::time::Instant::now();
    s.shutdown();
    let took = t.elapsed();
    for r in readers {
        let (i, got) = r.join().unwrap();
        assert_eq!(got.len(), LEN, "{cfg}: conn {i}: bytes delivered");
        assert!(
            got == pattern(LEN, i as u8),
            "{cfg}: conn {i}: the bytes differ"
        );
    }
    assert!(
        took < Duration::from_secs(3),
        "{cfg}: shutdown took {took:?}"
    );
}

/// Echo every byte back until EOF (owned buffers, one buffer reused).
async fn echo(conn: TcpStream) -> io::Result<u64> {
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut total = 0;
    loop {
        let (n, b) = conn.read(buf).await;
        let n = n?;
        if n == 0 {
            return Ok(total);
        }
        total += n as u64;
        let (r, mut b) = conn.write_all(b).await;
        r?;
        b.clear();
        buf = b;
    }
}

/// Serve `echo` on every accepted connection, forever.
fn spawn_echo_server(s: &IoScheduler, l: TcpListener) {
    let s2 = s.clone();
    drop(s.spawn(async move {
        loop {
            let (c, _) = l.accept().await.expect("accept");
            drop(s2.spawn(echo(c)));
        }
    }));
}

fn echo_round_trips_1b_to_4mib(cfg: Config) {
    let s = sched(cfg);
    let l = TcpListener::bind(&s, "127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    spawn_echo_server(&s, l);
    let s2 = s.clone();
    run(&s, async move {
        for (i, len) in [1usize, 2, 100, 4096, 65_543, 1 << 20, 4 << 20]
            .into_iter()
            .enumerate()
        {
            let c = Arc::new(TcpStream::connect(&s2, addr).await.unwrap());
            let msg = pattern(len, i as u8);
            // Write and read at once: a 4 MiB echo does not fit the socket buffers.
            let w = c.clone();
            let m = msg.clone();
            let writer = s2.spawn(async move {
                let (r, _) = w.write_all(m).await;
                r.unwrap();
                w.shutdown(Shutdown::Write).unwrap();
            });
            let mut got = Vec::with_capacity(len);
            let mut buf = Vec::with_capacity(256 * 1024);
            loop {
                let (n, b) = c.read(buf).await;
                let n = n.unwrap();
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&b[..n]);
                buf = b;
                buf.clear();
            }
            writer.await.unwrap();
            assert_eq!(got.len(), len, "echo of {len} bytes came back short");
            assert!(got == msg, "echo of {len} bytes came back different");
        }
    });
    s.shutdown();
}

/// 64 clients waiting in the backlog are accepted within a few turns of
/// the event loop. Through the ring alone, io_uring took one connection
/// per turn, so a burst of clients waited behind every connection the
/// loop served each turn.
fn a_backlog_of_clients_is_accepted_in_a_few_loop_turns(cfg: Config) {
    let s = sched(cfg);
    let l = TcpListener::bind(&s, "127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let clients: Vec<std::net::TcpStream> = (0..64)
        .map(|_| std::net::TcpStream::connect(addr).unwrap())
        .collect();
    let s2 = s.clone();
    let turns = run(&s, async move {
        let accept_all = async {
            for _ in 0..64 {
                l.accept().await.unwrap();
            }
        };
        common::with_turns_counted(&s2, accept_all).await.1
    });
    drop(clients);
    // io_uring learns that more clients wait from the accept's completion
    // (Linux 6.10+); before, it takes one per turn.
    let told = cfg.kind() == DriverKind::Epoll || kernel_at_least(6, 10);
    if common::counts_turns(cfg) && told {
        assert!(turns <= 16, "64 waiting clients took {turns} loop turns");
    }
}

/// Whether the running kernel's version is at least `major.minor`.
fn kernel_at_least(major: u32, minor: u32) -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut parts = release
        .split(['.', '-'])
        .map(|p| p.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0)) >= (major, minor)
}

fn thousand_concurrent_connections(cfg: Config) {
    raise_nofile(4096);
    let s = sched(cfg);
    let l = TcpListener::bind_with(
        &s,
        "127.0.0.1:0",
        ListenOptions {
            backlog: 2048,
            ..Default::default()
        },
    )
    .unwrap();
    let addr = l.local_addr().unwrap();
    spawn_echo_server(&s, l);
    let s2 = s.clone();
    run(&s, async move {
        let mut g = TaskGroup::new(&s2);
        for i in 0..1000u32 {
            let s3 = s2.clone();
            g.spawn(async move {
                let c = TcpStream::connect(&s3, addr).await?;
                let msg = i.to_le_bytes().to_vec();
                c.write_all(msg.clone()).await.0?;
                let mut got = Vec::new();
                while got.len() < 4 {
                    let (n, b) = c.read(Vec::with_capacity(4)).await;
                    if n? == 0 {
                        return Err(io::Error::other("early EOF"));
                    }
                    got.extend_from_slice(&b);
                }
                assert_eq!(got, msg);
                io::Result::Ok(c)
            });
        }
        // All 1,000 are open at the same time before any is dropped.
        let conns: Vec<TcpStream> = g
            .join_all()
            .await
            .into_iter()
            .map(|r| r.unwrap().unwrap())
            .collect();
        assert_eq!(conns.len(), 1000);
    });
    s.shutdown();
}

fn half_close_keeps_reading(cfg: Config) {
    let s = sched(cfg);
    let l = TcpListener::bind(&s, "127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let s2 = s.clone();
    run(&s, async move {
        let client = TcpStream::connect(&s2, addr).await.unwrap();
        let (server, _) = l.accept().await.unwrap();
        client.write_all(b"request".as_slice()).await.0.unwrap();
        client.shutdown(Shutdown::Write).unwrap();
        // The server reads to EOF...
        let mut got = Vec::new();
        loop {
            let (n, b) = server.read(Vec::with_capacity(64)).await;
            if n.unwrap() == 0 {
                break;
            }
            got.extend_from_slice(&b);
        }
        assert_eq!(got, b"request");
        // ...and can still answer on its open half.
        server.write_all(b"reply".as_slice()).await.0.unwrap();
        drop(server);
        let mut got = Vec::new();
        loop {
            let (n, b) = client.read(Vec::with_capacity(64)).await;
            if n.unwrap() == 0 {
                break;
            }
            got.extend_from_slice(&b);
        }
        assert_eq!(got, b"reply");
        // Writing on the shut half fails with EPIPE, without SIGPIPE.
        let (r, _) = client.write(b"x".as_slice()).await;
        assert_eq!(r.unwrap_err().kind(), io::ErrorKind::BrokenPipe);
    });
    s.shutdown();
}

fn peer_reset_is_an_error_on_that_stream(cfg: Config) {
    let s = sched(cfg);
    let l = TcpListener::bind(&s, "127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let s2 = s.clone();
    run(&s, async move {
        let client = TcpStream::connect(&s2, addr).await.unwrap();
        let other = TcpStream::connect(&s2, addr).await.unwrap();
        let (server, _) = l.accept().await.unwrap();
        let (server2, _) = l.accept().await.unwrap();
        // Linger 0: close sends RST.
        server.set_linger(Some(Duration::ZERO)).unwrap();
        drop(server);
        let (r, _) = client.read(Vec::with_capacity(16)).await;
        let e = r.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionReset, "{e}");
        // Writes to the reset peer fail (no SIGPIPE kills the test process).
        let mut failed = None;
        for _ in 0..10 {
            if let (Err(e), _) = client.write_all(vec![1u8; 1024]).await {
                failed = Some(e);
                break;
            }
        }
        let e = failed.expect("writes to a reset connection kept succeeding");
        assert!(
            matches!(
                e.kind(),
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
            ),
            "{e}"
        );
        // The other connection is unaffected.
        other.write_all(b"fine".as_slice()).await.0.unwrap();
        let (n, b) = server2.read(Vec::with_capacity(16)).await;
        assert_eq!(n.unwrap(), 4);
        assert_eq!(b, b"fine");
    });
    s.shutdown();
}

/// A loopback port with nothing listening on it.
fn free_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

fn connect_refused_is_clear(cfg: Config) {
    let s = sched(cfg);
    let addr = free_port();
    let s2 = s.clone();
    run(&s, async move {
        let e = TcpStream::connect(&s2, addr).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused);
        let msg = e.to_string();
        assert!(
            msg.contains(&addr.to_string()),
            "error does not name the address: {msg}"
        );
        // Every address is tried; the error names the last one.
        let e = TcpStream::connect(&s2, [free_port(), addr])
            .await
            .unwrap_err();
        assert!(e.to_string().contains(&addr.to_string()), "{e}");
        let e = TcpStream::connect(&s2, "not an address").await.unwrap_err();
        assert!(e.to_string().contains("not an address"), "{e}");
    });
    s.shutdown();
}

fn connect_timeout_is_clear(cfg: Config) {
    let s = sched(cfg);
    // Backlog 0 and nobody accepting: once the accept queue is full the
    // kernel drops further SYNs, so the next connect hangs in SYN retries.
    let l = TcpListener::bind_with(
        &s,
        "127.0.0.1:0",
        ListenOptions {
            backlog: 0,
            ..Default::default()
        },
    )
    .unwrap();
    let addr = l.local_addr().unwrap();
    let s2 = s.clone();
    run(&s, async move {
        let mut held = Vec::new();
        let bound = Duration::from_millis(300);
        for _ in 0..16 {
            let t0 = std::time::Instant::now();
            match TcpStream::connect_timeout(&s2, addr, bound).await {
                Ok(c) => held.push(c),
                Err(e) => {
                    assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
                    let msg = e.to_string();
                    assert!(
                        msg.contains("timed out") && msg.contains(&addr.to_string()),
                        "{msg}"
                    );
                    assert!(t0.elapsed() >= bound, "timed out early: {:?}", t0.elapsed());
                    drop(l);
                    return;
                }
            }
        }
        panic!("{} connects succeeded; none hung", held.len());
    });
    s.shutdown();
}

fn ipv6_loopback_echo(cfg: Config) {
    let s = sched(cfg);
    let l = match TcpListener::bind(&s, "[::1]:0") {
        Ok(l) => l,
        Err(e) if e.kind() == io::ErrorKind::AddrNotAvailable => {
            eprintln!("skipping: no IPv6 loopback ({e})");
            return;
        }
        Err(e) => panic!("{e}"),
    };
    let addr = l.local_addr().unwrap();
    assert!(addr.is_ipv6());
    spawn_echo_server(&s, l);
    let s2 = s.clone();
    run(&s, async move {
        let c = TcpStream::connect(&s2, addr).await.unwrap();
        assert!(c.peer_addr().unwrap().is_ipv6());
        c.write_all(b"six".as_slice()).await.0.unwrap();
        let (n, b) = c.read(Vec::with_capacity(8)).await;
        assert_eq!(n.unwrap(), 3);
        assert_eq!(b, b"six");
    });
    s.shutdown();
}

fn poll_reports_timeout_then_event(cfg: Config) {
    let s = sched(cfg);
    let l = TcpListener::bind(&s, "127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let s2 = s.clone();
    run(&s, async move {
        assert_eq!(
            l.poll(Some(Duration::from_millis(20))).await,
            PollStatus::Timeout
        );
        let c = TcpStream::connect(&s2, addr).await.unwrap();
        assert_eq!(
            l.poll(Some(Duration::from_secs(5))).await,
            PollStatus::Event
        );
        let (srv, _) = l.accept().await.unwrap();
        assert_eq!(
            srv.poll(PollOp::Read, Some(Duration::from_millis(20)))
                .await,
            PollStatus::Timeout
        );
        assert_eq!(c.poll(PollOp::Write, None).await, PollStatus::Event);
        c.write_all(b"x".as_slice()).await.0.unwrap();
        assert_eq!(srv.poll(PollOp::Read, None).await, PollStatus::Event);
        let (n, _) = srv.read(Vec::with_capacity(1)).await;
        assert_eq!(n.unwrap(), 1);
    });
    s.shutdown();
}

fn socket_options_round_trip(cfg: Config) {
    let s = sched(cfg);
    let l = TcpListener::bind(&s, "127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let s2 = s.clone();
    run(&s, async move {
        let c = TcpStream::connect(&s2, addr).await.unwrap();
        let (srv, peer) = l.accept().await.unwrap();
        assert_eq!(peer, c.local_addr().unwrap());
        assert_eq!(c.peer_addr().unwrap(), addr);
        assert_eq!(srv.local_addr().unwrap(), addr);
        c.set_nodelay(true).unwrap();
        assert!(c.nodelay().unwrap());
        c.set_nodelay(false).unwrap();
        assert!(!c.nodelay().unwrap());
        assert_eq!(c.keepalive().unwrap(), None);
        c.set_keepalive(Some(Duration::from_secs(30))).unwrap();
        assert_eq!(c.keepalive().unwrap(), Some(Duration::from_secs(30)));
        c.set_keepalive(None).unwrap();
        assert_eq!(c.keepalive().unwrap(), None);
        let e = c.set_keepalive(Some(Duration::from_millis(1))).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        // Above Linux's bound: refused, and keepalive stays off (the
        // kernel's EINVAL came after keepalive was switched on).
        let e = c
            .set_keepalive(Some(Duration::from_secs(40_000)))
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(c.keepalive().unwrap(), None);
        c.set_recv_buffer_size(64 * 1024).unwrap();
        assert!(c.recv_buffer_size().unwrap() >= 64 * 1024);
        c.set_send_buffer_size(64 * 1024).unwrap();
        assert!(c.send_buffer_size().unwrap() >= 64 * 1024);
        assert!(c.take_error().unwrap().is_none());
        // Address in use is a clear error naming the address.
        let e = TcpListener::bind_with(
            &s2,
            addr,
            ListenOptions {
                reuse_addr: false,
                ..Default::default()
            },
        )
        .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
        assert!(e.to_string().contains(&addr.to_string()), "{e}");
    });
    s.shutdown();
}

fn dropped_reads_and_accepts_leave_things_usable(cfg: Config) {
    let s = sched(cfg);
    let l = TcpListener::bind(&s, "127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let s2 = s.clone();
    run(&s, async move {
        // A dropped accept: the next one still gets the connection.
        assert!(
            s2.timeout(Duration::from_millis(10), l.accept())
                .await
                .is_err()
        );
        let c = TcpStream::connect(&s2, addr).await.unwrap();
        let (srv, _) = l.accept().await.unwrap();
        // A dropped read (nothing had arrived): the next read gets the data.
        assert!(
            s2.timeout(Duration::from_millis(10), srv.read(Vec::with_capacity(8)))
                .await
                .is_err()
        );
        c.write_all(b"late".as_slice()).await.0.unwrap();
        let (n, b) = srv.read(Vec::with_capacity(8)).await;
        assert_eq!(n.unwrap(), 4);
        assert_eq!(b, b"late");
    });
    s.shutdown();
}

/// On io_uring an accept runs in the kernel: one whose future is dropped
/// after the kernel took a connection for it (a `select!` whose other
/// branch won) must leave that connection to the next accept, not close
/// it (the client would see a reset). Both for TCP and Unix listeners.
fn an_accept_dropped_after_the_kernel_accepted_keeps_the_connection(cfg: Config) {
    let s = sched(cfg);
    let l = TcpListener::bind(&s, "127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let upath = std::env::temp_dir().join(format!("coro-acc-{}-{cfg}", std::process::id()));
    let _ = std::fs::remove_file(&upath);
    let ul = coro_net::unix::UnixListener::bind(&s, &upath).unwrap();
    let s2 = s.clone();
    let up = upath.clone();
    run(&s, async move {
        let (mut c, mut uc) = {
            let mut acc = std::pin::pin!(l.accept());
            let mut uacc = std::pin::pin!(ul.accept());
            assert!(futures::poll!(acc.as_mut()).is_pending());
            assert!(futures::poll!(uacc.as_mut()).is_pending());
            // The kernel accepts these for the ops in flight...
            let c = std::net::TcpStream::connect(addr).unwrap();
            let uc = std::os::unix::net::UnixStream::connect(&up).unwrap();
            // ...and the loop reaps the completions before the drop.
            s2.sleep(Duration::from_millis(50)).await;
            (c, uc)
        };
        let (srv, peer) = s2
            .timeout(Duration::from_secs(5), l.accept())
            .await
            .expect("the connection was lost with the dropped accept")
            .unwrap();
        assert_eq!(peer, c.local_addr().unwrap());
        let (usrv, _) = s2
            .timeout(Duration::from_secs(5), ul.accept())
            .await
            .expect("the Unix connection was lost with the dropped accept")
            .unwrap();
        // The same connections, alive both ways.
        c.write_all(b"tcp").unwrap();
        uc.write_all(b"unix").unwrap();
        let (n, b) = srv.read(Vec::with_capacity(8)).await;
        assert_eq!((n.unwrap(), &b[..]), (3, &b"tcp"[..]));
        let (n, b) = usrv.read(Vec::with_capacity(8)).await;
        assert_eq!((n.unwrap(), &b[..]), (4, &b"unix"[..]));
        srv.write_all(b"ok".as_slice()).await.0.unwrap();
        let mut got = [0u8; 2];
        c.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"ok");
        // Dropped before the loop reaped what the kernel did for it: a
        // connection it took lands in the inbox only at the loop's next
        // turn, while the next accept already waits in the kernel for
        // another client; that accept must get it all the same.
        for _ in 0..3 {
            let c2 = {
                let mut acc = std::pin::pin!(l.accept());
                assert!(futures::poll!(acc.as_mut()).is_pending());
                std::net::TcpStream::connect(addr).unwrap()
            };
            let (_srv2, peer2) = s2
                .timeout(Duration::from_secs(5), l.accept())
                .await
                .expect("a connection kept for the next accept was not handed to it")
                .unwrap();
            assert_eq!(peer2, c2.local_addr().unwrap());
        }
    });
    let _ = std::fs::remove_file(&upath);
    s.shutdown();
}

fn explicit_close_goes_through_the_driver(cfg: Config) {
    let s = sched(cfg);
    let l = TcpListener::bind(&s, "127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let s2 = s.clone();
    let (peer_tx, peer_rx) = std::sync::mpsc::channel();
    let peer = std::thread::spawn(move || {
        let mut p = std::net::TcpStream::connect(addr).unwrap();
        peer_tx.send(()).unwrap();
        let mut v = Vec::new();
        p.read_to_end(&mut v).unwrap();
        let _ = p.write_all(b"x");
        v
    });
    peer_rx.recv().unwrap();
    run(&s, async move {
        let (c, _) = l.accept().await.unwrap();
        // Make the driver register the fd (a read that waits), then close.
        assert!(
            s2.timeout(Duration::from_millis(5), c.read(Vec::with_capacity(8)))
                .await
                .is_err()
        );
        let fd = std::os::fd::AsRawFd::as_raw_fd(&c);
        c.write_all(b"bye".as_slice()).await.0.unwrap();
        c.close().await.unwrap();
        if s2.driver_kind() == DriverKind::Epoll {
            assert!(
                !s2.driver().is_registered(fd),
                "close left an epoll registration"
            );
        }
        l.close().await.unwrap();
    });
    assert_eq!(peer.join().unwrap(), b"bye");
    s.shutdown();
}

fn read_timeout_times_out_and_keeps_the_buffer(cfg: Config) {
    let s = sched(cfg);
    let s2 = s.clone();
    run(&s, async move {
        let l = TcpListener::bind(&s2, "127.0.0.1:0").unwrap();
        let conn = TcpStream::connect(&s2, l.local_addr().unwrap())
            .await
            .unwrap();
        let (peer, _) = l.accept().await.unwrap();
        let t = std::time::Instant::now();
        let (res, buf) = conn
            .read_timeout(Vec::with_capacity(32), Duration::from_millis(20))
            .await;
        assert_eq!(res.unwrap_err().kind(), io::ErrorKind::TimedOut);
        assert!(t.elapsed() >= Duration::from_millis(20));
        assert_eq!(buf.capacity(), 32);
        // Data later: a new read_timeout gets it.
        let (w, _) = peer.write_all(b"late".as_slice()).await;
        w.unwrap();
        let (res, buf) = conn.read_timeout(buf, Duration::from_secs(5)).await;
        assert_eq!(&buf[..res.unwrap()], b"late");
    });
    s.shutdown();
}

/// A header read through the `AsyncRead` adapter (`read_exact`), then the
/// rest with owned reads (what `copy_bidirectional` does in a proxy): the
/// adapter reads ahead (4 KiB at least), and owned reads went to the
/// socket past those bytes, which were lost (epoll and io_uring without
/// the receive queue).
fn owned_reads_after_adapter_reads_lose_nothing(cfg: Config) {
    let s = sched(cfg);
    let s2 = s.clone();
    run(&s, async move {
        let (srv, _client) = sent_then_shut(&s2, b"HDR:payload").await;
        // Until it is all there, so the adapter's read takes all of it.
        std::thread::sleep(Duration::from_millis(20));
        let mut hdr = [0u8; 4];
        futures::io::AsyncReadExt::read_exact(&mut &srv, &mut hdr)
            .await
            .unwrap();
        assert_eq!(&hdr, b"HDR:");
        let (n, peeked) = srv.peek(Vec::with_capacity(16)).await;
        assert_eq!(&peeked[..n.unwrap()], b"payload", "{cfg}: peek");
        let mut rest = Vec::new();
        loop {
            let (n, buf) = srv.read(Vec::with_capacity(64)).await;
            match n.unwrap() {
                0 => break,
                n => rest.extend_from_slice(&buf[..n]),
            }
        }
        assert_eq!(rest, b"payload", "{cfg}: the bytes behind the header");
    });
    s.shutdown();
}

/// A header read through the `AsyncRead` adapter, which read the rest
/// ahead, then a `poll` for readable: the rest is there for any read, but
/// `poll` asked only the kernel, which holds nothing more (the writer
/// stays open), and waited for ever (epoll, io_uring without the receive
/// queue).
fn poll_sees_bytes_the_adapter_read_ahead(cfg: Config) {
    let s = sched(cfg);
    let s2 = s.clone();
    run(&s, async move {
        let l = TcpListener::bind(&s2, "127.0.0.1:0").unwrap();
        let writer = TcpStream::connect(&s2, l.local_addr().unwrap())
            .await
            .unwrap();
        let (srv, _) = l.accept().await.unwrap();
        let (w, _) = writer.write_all(b"HDR:payload").await;
        w.unwrap();
        let st = s2
            .poll(&srv, PollOp::Read, Some(Duration::from_secs(5)))
            .await;
        assert_eq!(st, PollStatus::Event);
        std::thread::sleep(Duration::from_millis(20));
        let mut hdr = [0u8; 4];
        futures::io::AsyncReadExt::read_exact(&mut &srv, &mut hdr)
            .await
            .unwrap();
        assert_eq!(&hdr, b"HDR:");
        let st = srv.poll(PollOp::Read, Some(Duration::from_secs(2))).await;
        assert_eq!(st, PollStatus::Event, "{cfg}: the bytes read ahead");
        let (n, rest) = srv.read(Vec::with_capacity(64)).await;
        assert_eq!(&rest[..n.unwrap()], b"payload");
        drop(writer);
    });
    s.shutdown();
}

/// `read_timeout` with a zero deadline returns the bytes already in the
/// socket, and then the end, as a drain-what-is-there loop expects. On
/// io_uring with one receive op per read (`uring-plain`), the deadline's
/// cancel took back the still-staged receive: `TimedOut` with the bytes
/// waiting.
fn a_zero_read_timeout_returns_what_is_there(cfg: Config) {
    let s = sched(cfg);
    let s2 = s.clone();
    run(&s, async move {
        let (conn, _peer) = sent_then_shut(&s2, b"x").await;
        let (res, buf) = conn
            .read_timeout(Vec::with_capacity(8), Duration::ZERO)
            .await;
        assert_eq!(res.unwrap(), 1, "{cfg}");
        assert_eq!(buf, b"x");
        let (res, _) = conn
            .read_timeout(Vec::with_capacity(8), Duration::ZERO)
            .await;
        assert_eq!(res.unwrap(), 0, "{cfg}: the end");
    });
    s.shutdown();
}

/// A peer sends a byte about every millisecond while the reader reads
/// with a one-millisecond deadline: many reads hit their deadline just as
/// a byte lands. Every byte must arrive, once, in order (a read dropped by
/// a plain timeout may lose them on io_uring).
fn read_timeout_loses_nothing_at_the_deadline(cfg: Config) {
    const N: usize = 300;
    let s = sched(cfg);
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let writer = std::thread::spawn(move || {
        let (mut c, _) = l.accept().unwrap();
        c.set_nodelay(true).unwrap();
        for i in 0..N {
            c.write_all(&[i as u8]).unwrap();
            std::thread::sleep(Duration::from_micros(500 + (i as u64 * 37) % 1000));
        }
    });
    let s2 = s.clone();
    let (got, timeouts) = run(&s, async move {
        let conn = TcpStream::connect(&s2, addr).await.unwrap();
        let (mut got, mut timeouts) = (Vec::new(), 0);
        let mut buf = Vec::with_capacity(8);
        loop {
            let (res, b) = conn.read_timeout(buf, Duration::from_millis(1)).await;
            match res {
                Ok(0) => return (got, timeouts),
                Ok(n) => got.extend_from_slice(&b[..n]),
                Err(e) if e.kind() == io::ErrorKind::TimedOut => timeouts += 1,
                Err(e) => panic!("{e}"),
            }
            buf = b;
            buf.clear();
        }
    });
    writer.join().unwrap();
    let want: Vec<u8> = (0..N).map(|i| i as u8).collect();
    assert_eq!(
        got, want,
        "{cfg}: bytes lost or reordered ({timeouts} timeouts)"
    );
    assert!(timeouts > 0, "{cfg}: the deadline was never hit");
    s.shutdown();
}

/// An `AsyncRead` read dropped while it waits leaves its receive with the
/// stream (read ahead for the next read). `read_timeout` after it must
/// still give up at its deadline on an idle peer: it waited for the
/// adapter's receive with no deadline at all.
fn read_timeout_keeps_its_deadline_after_a_dropped_adapter_read(cfg: Config) {
    let s = sched(cfg);
    let s2 = s.clone();
    run(&s, async move {
        let (conn, _peer) = after_a_dropped_adapter_read(&s2, cfg).await;
        let t0 = std::time::Instant::now();
        let r = s2
            .timeout(
                Duration::from_secs(2),
                conn.read_timeout(Vec::with_capacity(16), Duration::from_millis(50)),
            )
            .await
            .expect("read_timeout ignored its deadline");
        assert_eq!(r.0.unwrap_err().kind(), io::ErrorKind::TimedOut, "{cfg}");
        assert!(
            t0.elapsed() < Duration::from_secs(1),
            "{cfg}: {:?}",
            t0.elapsed()
        );
    });
    s.shutdown();
}

/// A connected pair (ours, the peer) after an `AsyncRead` read of ours
/// was dropped at a timeout while it waited (its receive kept in flight).
async fn after_a_dropped_adapter_read(s: &IoScheduler, cfg: Config) -> (TcpStream, TcpStream) {
    use futures::io::AsyncReadExt;
    let l = TcpListener::bind(s, "127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let (conn, peer) = futures::join!(TcpStream::connect(s, addr), l.accept());
    let (conn, (peer, _)) = (conn.unwrap(), peer.unwrap());
    let mut b = [0u8; 16];
    let dropped = s
        .timeout(Duration::from_millis(10), (&mut &conn).read(&mut b))
        .await;
    assert!(
        dropped.is_err(),
        "{cfg}: nothing was sent, the read must wait"
    );
    (conn, peer)
}

/// An `AsyncRead` read dropped at a timeout keeps its receive in flight
/// (cancel safe). Where that receive is in the kernel (io_uring without
/// the receive queue) it takes the bytes the peer sends next, so the
/// socket looks empty: `poll(Read)` waited for ever for bytes a read
/// would return at once, and `peek` waited too (or showed later bytes).
fn poll_and_peek_see_what_a_dropped_adapter_read_received(cfg: Config) {
    let s = sched(cfg);
    let s2 = s.clone();
    run(&s, async move {
        let (conn, peer) = after_a_dropped_adapter_read(&s2, cfg).await;
        let (r, _) = peer.write_all(b"ping".to_vec()).await;
        r.unwrap();
        // Time for the kernel to hand the bytes to whoever waits for them.
        s2.sleep(Duration::from_millis(50)).await;
        assert_eq!(
            conn.poll(PollOp::Read, Some(Duration::from_secs(2))).await,
            PollStatus::Event,
            "{cfg}: poll missed the bytes the adapter's receive took"
        );
        let (r, got) = s2
            .timeout(Duration::from_secs(2), conn.peek(Vec::with_capacity(8)))
            .await
            .unwrap_or_else(|_| panic!("{cfg}: peek missed the bytes the adapter's receive took"));
        assert_eq!(r.unwrap(), 4, "{cfg}");
        assert_eq!(got, b"ping", "{cfg}");
        if cfg.kind() == DriverKind::Epoll {
            // There the adapter's receive makes its syscall only when
            // polled: `poll` and `peek` must leave the bytes in the
            // socket (they moved them into the adapter, where `into_std`
            // drops what it holds).
            let mut std = conn.into_std();
            std.set_nonblocking(false).unwrap();
            let mut got = [0u8; 4];
            std.read_exact(&mut got).unwrap();
            assert_eq!(&got, b"ping", "{cfg}");
        } else {
            let (r, got) = conn.read(Vec::with_capacity(8)).await;
            assert_eq!(r.unwrap(), 4, "{cfg}");
            assert_eq!(got, b"ping", "{cfg}");
        }
    });
    s.shutdown();
}

/// A refused connect says what was done ("connect to ...") and keeps the
/// kernel's error, found through `coro_net::raw_os_error` (tokio code
/// calls `raw_os_error()` on its bare error), by address and by host
/// name; its text names the error once, also for chain printers.
fn connect_errors_keep_the_os_error(cfg: Config) {
    let s = sched(cfg);
    let s2 = s.clone();
    run(&s, async move {
        // Nothing listens on a port just freed.
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let by_addr = TcpStream::connect(&s2, addr).await.unwrap_err();
        let by_host = TcpStream::connect_host(&s2, &addr.to_string())
            .await
            .unwrap_err();
        for e in [by_addr, by_host] {
            assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused, "{cfg}: {e}");
            assert_eq!(
                coro_net::raw_os_error(&e),
                Some(libc::ECONNREFUSED),
                "{cfg}: {e}"
            );
            let text = e.to_string();
            assert!(text.starts_with("connect to "), "{cfg}: {text}");
            assert_eq!(text.matches("os error").count(), 1, "{cfg}: {text}");
            assert!(std::error::Error::source(&e).is_none(), "{cfg}: {e:?}");
        }
    });
    s.shutdown();
}

/// `coro_io::copy::copy` between split halves, as a tokio proxy copies
/// between `into_split()` halves: here an echo of one stream's read half
/// into its own write half; dropping the write half then ends the peer's
/// stream.
fn copy_runs_between_split_halves(cfg: Config) {
    let s = sched(cfg);
    let s2 = s.clone();
    run(&s, async move {
        let l = TcpListener::bind(&s2, "127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let echo = s2.spawn(async move {
            let (conn, _) = l.accept().await.unwrap();
            let (rd, wr) = conn.into_split();
            coro_io::copy::copy(&rd, &wr).await
        });
        let c = TcpStream::connect(&s2, addr).await.unwrap();
        let msg = pattern(300 * 1024, 7);
        let (r, _) = c.write_all(msg.clone()).await;
        r.unwrap();
        c.shutdown(std::net::Shutdown::Write).unwrap();
        let mut got = Vec::new();
        loop {
            let (n, b) = c.read(Vec::with_capacity(64 * 1024)).await;
            match n.unwrap() {
                0 => break,
                n => got.extend_from_slice(&b[..n]),
            }
        }
        assert!(got == msg, "{cfg}: the copy changed the bytes");
        assert_eq!(echo.await.unwrap().unwrap(), msg.len() as u64, "{cfg}");
    });
    s.shutdown();
}

/// `into_split`: a reader task and a writer task, tokio style (the halves'
/// `read`/`write_all` are the `futures_io` ones); dropping the write half
/// ends the peer's stream; halves of one stream reunite, of two do not.
fn split_halves_in_two_tasks_and_reunite(cfg: Config) {
    use futures::io::{AsyncReadExt, AsyncWriteExt};
    let s = sched(cfg);
    let s2 = s.clone();
    run(&s, async move {
        let l = TcpListener::bind(&s2, "127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        spawn_echo_server(&s2, l);
        let conn = TcpStream::connect(&s2, addr).await.unwrap();
        let (mut rd, mut wr) = conn.into_split();
        let msg = pattern(256 * 1024, 3);
        let m = msg.clone();
        let writer = s2.spawn(async move {
            for chunk in m.chunks(10_000) {
                wr.write_all(chunk).await.unwrap();
            }
            wr.flush().await.unwrap();
            // Dropping the half shuts the write side: the echo server sees
            // the end and closes, which ends our read below.
            drop(wr);
        });
        let mut got = Vec::new();
        rd.read_to_end(&mut got).await.unwrap();
        writer.await.unwrap();
        assert!(got == msg, "echoed bytes differ");

        let a = TcpStream::connect(&s2, addr).await.unwrap();
        let b = TcpStream::connect(&s2, addr).await.unwrap();
        let (ar, aw) = a.into_split();
        let (br, bw) = b.into_split();
        let err = ar.reunite(bw).unwrap_err();
        let (ar, bw) = (err.0, err.1);
        let a = ar.reunite(aw).expect("halves of one stream");
        let b = bw.reunite(br).expect("halves of one stream");
        // Reunited without a shutdown: still a working stream.
        let (w, _) = a.write_all(b"again".as_slice()).await;
        w.unwrap();
        let (r, buf) = a.read(Vec::with_capacity(8)).await;
        assert_eq!(&buf[..r.unwrap()], b"again");
        drop(b);
    });
    s.shutdown();
}

/// `&TcpStream` implements `AsyncRead` and `AsyncWrite`: one task reads
/// while another writes through a shared stream.
fn shared_reference_reads_and_writes_from_two_tasks(cfg: Config) {
    use futures::io::{AsyncReadExt, AsyncWriteExt};
    let s = sched(cfg);
    let s2 = s.clone();
    run(&s, async move {
        let l = TcpListener::bind(&s2, "127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        spawn_echo_server(&s2, l);
        let conn = Arc::new(TcpStream::connect(&s2, addr).await.unwrap());
        let c = conn.clone();
        let writer = s2.spawn(async move {
            let mut w = &*c;
            for i in 0..100u8 {
                // On the stream itself the owned-buffer `write_all` comes
                // first: name the trait (the split halves need not).
                AsyncWriteExt::write_all(&mut w, &[i; 100]).await.unwrap();
            }
            w.flush().await.unwrap();
        });
        let mut r = &*conn;
        let mut got = vec![0u8; 100 * 100];
        r.read_exact(&mut got).await.unwrap();
        writer.await.unwrap();
        for (i, chunk) in got.chunks(100).enumerate() {
            assert!(chunk.iter().all(|&b| b == i as u8), "chunk {i}");
        }
    });
    s.shutdown();
}

/// A proxy made of `copy_bidirectional`: a client talks to an echo server
/// through it; 1 MiB goes through both ways unchanged, and the client's
/// end of stream reaches the server, whose close reaches the client.
fn copy_bidirectional_proxies_and_propagates_the_end(cfg: Config) {
    use futures::io::{AsyncReadExt, AsyncWriteExt};
    let s = sched(cfg);
    let s2 = s.clone();
    run(&s, async move {
        let upstream = TcpListener::bind(&s2, "127.0.0.1:0").unwrap();
        let up_addr = upstream.local_addr().unwrap();
        spawn_echo_server(&s2, upstream);
        let front = TcpListener::bind(&s2, "127.0.0.1:0").unwrap();
        let front_addr = front.local_addr().unwrap();
        let s3 = s2.clone();
        let proxy = s2.spawn(async move {
            let (client, _) = front.accept().await?;
            let server = TcpStream::connect(&s3, up_addr).await?;
            coro_io::copy_bidirectional(&client, &server).await
        });
        let conn = TcpStream::connect(&s2, front_addr).await.unwrap();
        let (mut rd, mut wr) = conn.into_split();
        let msg = pattern(1 << 20, 9);
        let m = msg.clone();
        let writer = s2.spawn(async move {
            wr.write_all(&m).await.unwrap();
            wr.close().await.unwrap();
        });
        let mut got = Vec::new();
        rd.read_to_end(&mut got).await.unwrap();
        writer.await.unwrap();
        assert!(got == msg, "bytes changed through the proxy");
        let (to_server, to_client) = proxy.await.unwrap().unwrap();
        assert_eq!((to_server, to_client), (1 << 20, 1 << 20));
    });
    s.shutdown();
}

/// `peek` waits for data and leaves it for the next read; `set_ttl`/`ttl`.
fn peek_leaves_the_bytes_and_ttl_round_trips(cfg: Config) {
    let s = sched(cfg);
    let s2 = s.clone();
    run(&s, async move {
        let l = TcpListener::bind(&s2, "127.0.0.1:0").unwrap();
        let conn = TcpStream::connect(&s2, l.local_addr().unwrap())
            .await
            .unwrap();
        let (peer, _) = l.accept().await.unwrap();
        let s3 = s2.clone();
        let writer = s2.spawn(async move {
            s3.sleep(Duration::from_millis(5)).await;
            let (w, _) = peer.write_all(b"peekaboo".as_slice()).await;
            w.unwrap();
            peer
        });
        // Waits for the data, takes nothing.
        let (n, buf) = conn.peek(Vec::with_capacity(4)).await;
        assert_eq!(&buf[..n.unwrap()], b"peek");
        let (n, buf) = conn.peek(Vec::with_capacity(16)).await;
        assert_eq!(&buf[..n.unwrap()], b"peekaboo");
        let (n, buf) = conn.read(Vec::with_capacity(16)).await;
        assert_eq!(&buf[..n.unwrap()], b"peekaboo");
        let _peer = writer.await.unwrap();
        conn.set_ttl(7).unwrap();
        assert_eq!(conn.ttl().unwrap(), 7);
        // u32::MAX is -1 to the kernel, "the default": refused, not Ok.
        let e = conn.set_ttl(u32::MAX).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
        assert_eq!(conn.ttl().unwrap(), 7);
    });
    s.shutdown();
}

/// A read, peek or timed read into an empty buffer is `Ok(0)` at once on
/// every driver, also with nothing to read (a zero-length `recv` of an
/// empty socket would wait for data).
fn an_empty_buffer_reads_nothing_at_once(cfg: Config) {
    let s = sched(cfg);
    let s2 = s.clone();
    run(&s, async move {
        let l = TcpListener::bind(&s2, "127.0.0.1:0").unwrap();
        let conn = TcpStream::connect(&s2, l.local_addr().unwrap())
            .await
            .unwrap();
        let (_peer, _) = l.accept().await.unwrap();
        let t = std::time::Instant::now();
        let within = Duration::from_secs(2);
        let (n, _) = s2
            .timeout(within, conn.read(Vec::new()))
            .await
            .expect("read waited");
        assert_eq!(n.unwrap(), 0);
        let (n, _) = s2
            .timeout(within, conn.peek(Vec::new()))
            .await
            .expect("peek waited");
        assert_eq!(n.unwrap(), 0);
        let (n, _) = conn.read_timeout(Vec::new(), within).await;
        assert_eq!(n.unwrap(), 0, "read_timeout");
        assert!(t.elapsed() < within, "a zero-length read waited");
    });
    s.shutdown();
}

/// An IPv4 client of a dual-stack (`[::]`) listener: its packets are IPv4
/// ones, so `set_ttl` must set `IP_TTL` (the IPv6 hop limit would be
/// reported back by `ttl()` and change nothing on the wire).
fn ttl_of_an_ipv4_peer_on_a_dual_stack_listener_reaches_its_packets(cfg: Config) {
    let s = sched(cfg);
    let s2 = s.clone();
    run(&s, async move {
        let opts = ListenOptions {
            only_v6: Some(false),
            ..Default::default()
        };
        let l = match TcpListener::bind_with(&s2, "[::]:0", opts) {
            Ok(l) => l,
            // Only a host without IPv6 skips; any other error is ours.
            Err(e)
                if e.kind() == io::ErrorKind::AddrNotAvailable
                    || coro_net::raw_os_error(&e) == Some(libc::EAFNOSUPPORT) =>
            {
                eprintln!("skipping: no IPv6 ({e})");
                return;
            }
            Err(e) => panic!("{e}"),
        };
        let port = l.local_addr().unwrap().port();
        let _client = TcpStream::connect(&s2, format!("127.0.0.1:{port}"))
            .await
            .unwrap();
        let (conn, _) = l.accept().await.unwrap();
        conn.set_ttl(7).unwrap();
        assert_eq!(conn.ttl().unwrap(), 7);
        let v4 = socket2::SockRef::from(&conn).ttl_v4().unwrap();
        assert_eq!(v4, 7, "the IPv4 TTL its packets carry");
    });
    s.shutdown();
}

/// `TcpSocket`: options, bind before connect (the peer sees that port),
/// listen; a taken address is a clear `AddrInUse` naming it.
fn tcp_socket_binds_before_connecting_and_listens(cfg: Config) {
    let s = sched(cfg);
    let s2 = s.clone();
    run(&s, async move {
        let server = TcpSocket::new_v4(&s2).unwrap();
        server.set_reuseaddr(true).unwrap();
        assert!(server.reuseaddr().unwrap());
        server.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let at = server.local_addr().unwrap();
        let listener = server.listen(64).unwrap();
        assert_eq!(listener.local_addr().unwrap(), at);

        let taken = TcpSocket::new_v4(&s2).unwrap();
        let e = taken.bind(at).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse, "{e}");
        assert!(e.to_string().contains(&at.to_string()), "{e}");

        let client = TcpSocket::new_for(&s2, at).unwrap();
        client.set_nodelay(true).unwrap();
        client.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let from = client.local_addr().unwrap();
        let conn = client.connect(at).await.unwrap();
        let (accepted, peer) = listener.accept().await.unwrap();
        assert_eq!(peer, from);
        assert!(conn.nodelay().unwrap());
        let (w, _) = conn.write_all(b"hi".as_slice()).await;
        w.unwrap();
        let (n, buf) = accepted.read(Vec::with_capacity(4)).await;
        assert_eq!(&buf[..n.unwrap()], b"hi");

        // Nobody listens on a fresh port: a clear refusal naming it.
        let gone = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let e = TcpSocket::new_v4(&s2)
            .unwrap()
            .connect(gone)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused, "{e}");
        assert!(e.to_string().contains(&gone.to_string()), "{e}");
    });
    s.shutdown();
}

/// Whether a read dropped after data arrived keeps that data for the next
/// read on this configuration: epoll (nothing is in flight between polls)
/// and io_uring with its receive queue. Not a plain io_uring receive op,
/// whose buffer goes with the dropped future.
fn reads_are_lossless(s: &IoScheduler) -> bool {
    s.driver().uring_features().is_none_or(|f| f.recv_multishot)
}

fn a_dropped_read_loses_nothing(cfg: Config) {
    const N: usize = 40;
    let s = sched(cfg);
    // io_uring on Linux 6.0+ has multishot receive: the configurations
    // that stand for newer kernels must use it (a driver that silently
    // lost its receive queue would pass everything else).
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let major = release
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|p| p.parse::<u32>().ok());
    let at_least_6_0 = major.is_some_and(|m| m >= 6);
    if cfg.driver == DriverKind::IoUring && cfg.uring().multishot_recv && at_least_6_0 {
        assert!(
            reads_are_lossless(&s),
            "{cfg}: no receive queue on Linux {release}"
        );
    }
    let l = TcpListener::bind(&s, "127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let s2 = s.clone();
    let (got, want, dropped) = run(&s, async move {
        let c = TcpStream::connect(&s2, addr).await.unwrap();
        c.set_nodelay(true).unwrap();
        let (srv, _) = l.accept().await.unwrap();
        let mut want = Vec::new();
        let mut got = Vec::new();
        let mut dropped = 0;
        for i in 0..N {
            // A read that waits, then its data arrives (and is received by
            // the kernel or the driver) while nobody polls it, then the
            // read is dropped (a lost select!, a timeout).
            let mut read = Box::pin(srv.read(Vec::with_capacity(64)));
            let first =
                std::future::poll_fn(|cx| std::task::Poll::Ready(read.as_mut().poll(cx))).await;
            let msg = format!("message {i};");
            want.extend_from_slice(msg.as_bytes());
            c.write_all(msg.into_bytes()).await.0.unwrap();
            if let std::task::Poll::Ready((res, b)) = first {
                // Only data from an earlier round can be there already.
                got.extend_from_slice(&b[..res.unwrap()]);
                continue;
            }
            s2.sleep(Duration::from_millis(2)).await;
            if i % 3 == 0 {
                // Sometimes the same read is polled on after the wait.
                let (res, b) = read.await;
                got.extend_from_slice(&b[..res.unwrap()]);
            } else {
                drop(read);
                dropped += 1;
            }
        }
        c.shutdown(Shutdown::Write).unwrap();
        loop {
            let (res, b) = srv.read(Vec::with_capacity(256)).await;
            match res.unwrap() {
                0 => break,
                n => got.extend_from_slice(&b[..n]),
            }
        }
        (got, want, dropped)
    });
    if reads_are_lossless(&s) {
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&want),
            "{cfg}: a dropped read lost or reordered bytes"
        );
    } else {
        // A dropped receive op takes what it received with it: a run of
        // the stream, at most one per dropped read. The rest arrives in
        // order, nothing twice, nothing made up.
        let pieces = pieces_of(&want, &got).unwrap_or_else(|| {
            panic!(
                "{cfg}: bytes reordered, repeated or made up: {}",
                String::from_utf8_lossy(&got)
            )
        });
        assert!(
            pieces <= dropped + 1,
            "{cfg}: {pieces} runs of the stream for {dropped} dropped reads: {}",
            String::from_utf8_lossy(&got)
        );
        // And the whole messages that arrived came in the order sent.
        let text = String::from_utf8_lossy(&got);
        let numbers: Vec<usize> = text
            .split(';')
            .filter_map(|t| t.strip_prefix("message ")?.parse().ok())
            .collect();
        assert!(
            numbers.windows(2).all(|w| w[0] < w[1]),
            "{cfg}: messages out of order: {text}"
        );
    }
    s.shutdown();
}

/// The fewest runs of `want`, in order and not overlapping, that make up
/// `got` (`want` with that many runs kept, the rest deleted); `None` if
/// none do (bytes reordered or not sent).
fn pieces_of(want: &[u8], got: &[u8]) -> Option<usize> {
    const NONE: usize = usize::MAX;
    let Some((&first, rest)) = got.split_first() else {
        return Some(0);
    };
    // runs[w]: the fewest runs making `got` so far with its last byte
    // taken from want[w]; each next byte continues the run (w + 1) or
    // starts a new one past a deleted stretch (w + 2 or later).
    let mut runs: Vec<usize> = want
        .iter()
        .map(|&b| if b == first { 1 } else { NONE })
        .collect();
    for &b in rest {
        let mut next = vec![NONE; want.len()];
        let mut before = NONE;
        for w in 0..want.len() {
            if w >= 2 {
                before = before.min(runs[w - 2]);
            }
            if want[w] == b {
                let cont = if w >= 1 { runs[w - 1] } else { NONE };
                next[w] = cont.min(before.saturating_add(1));
            }
        }
        runs = next;
    }
    runs.into_iter().min().filter(|&r| r != NONE)
}

/// `cfg`'s scheduler with a provided-buffer ring of two buffers (where
/// there is one), which one stream can run dry.
fn sched_with_two_recv_buffers(cfg: Config) -> IoScheduler {
    cfg.sched_with(coro_io::IoSchedulerOptions {
        uring: coro_io::UringOptions {
            recv_buffers: 2,
            ..Default::default()
        },
        ..Default::default()
    })
}

/// A peek before the first read, into a buffer larger than 256 KiB, sees
/// all the socket holds, as `MSG_PEEK` does. On io_uring with a receive
/// queue (which that peek does not start) it saw at most 256 KiB, so a
/// loop peeking until a whole 600 KiB message had come never ended.
fn a_first_peek_sees_all_the_socket_holds(cfg: Config) {
    const LEN: usize = 600 * 1024;
    let s = sched(cfg);
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let peer = std::thread::spawn(move || {
        let (mut c, _) = l.accept().unwrap();
        // Fails where the test skips (the client closes before reading).
        let _ = c.write_all(&pattern(LEN, 5));
        c
    });
    let s2 = s.clone();
    let shown = run(&s, async move {
        // Room for the whole message unread (the kernel doubles the value
        // and caps it at `net.core.rmem_max`).
        let sock = TcpSocket::new_v4(&s2).unwrap();
        sock.set_recv_buffer_size(4 << 20).unwrap();
        let c = sock.connect(addr).await.unwrap();
        if c.recv_buffer_size().unwrap() < 2 * LEN {
            eprintln!("{cfg}: net.core.rmem_max too small to queue {LEN} bytes unread: skipped");
            return None;
        }
        let mut buf = Vec::with_capacity(1 << 20);
        let t0 = std::time::Instant::now();
        loop {
            let (res, b) = c.peek(buf).await;
            let n = res.unwrap();
            assert!(b[..n] == pattern(LEN, 5)[..n], "peeked bytes out of order");
            if n == LEN {
                break;
            }
            if t0.elapsed() > Duration::from_secs(5) {
                return Some(n);
            }
            buf = b;
            buf.clear();
            s2.sleep(Duration::from_millis(1)).await;
        }
        // A receive buffer made smaller once the bytes came does not hide
        // them (the socket's size no longer bounds what it holds).
        c.set_recv_buffer_size(16 * 1024).unwrap();
        let (res, _) = c.peek(Vec::with_capacity(1 << 20)).await;
        Some(res.unwrap())
    });
    drop(peer.join().unwrap());
    if let Some(n) = shown {
        assert_eq!(
            n, LEN,
            "{cfg}: a peek showed {n} of the {LEN} bytes queued, for 5 s"
        );
    }
}

/// A message larger than the whole provided-buffer ring (2 x 16 KiB): the
/// queue holds what the ring took, and a `peek` loop waiting for all of it
/// must see the rest, which stays in the socket. It saw the same 32 KiB
/// for ever (nothing arms a receive on a dry ring until the queue is
/// empty, which a peek never makes it).
fn a_peek_waiting_for_more_sees_it_when_the_ring_is_dry(cfg: Config) {
    const LEN: usize = 40 * 1024;
    let s = sched_with_two_recv_buffers(cfg);
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let peer = std::thread::spawn(move || {
        let (mut c, _) = l.accept().unwrap();
        c.write_all(&pattern(LEN, 9)).unwrap();
        c
    });
    let s2 = s.clone();
    let got = run(&s, async move {
        let c = TcpStream::connect(&s2, addr).await.unwrap();
        let mut buf = Vec::with_capacity(LEN);
        let t0 = std::time::Instant::now();
        loop {
            let (res, b) = c.peek(buf).await;
            let n = res.unwrap();
            assert!(b[..n] == pattern(LEN, 9)[..n], "peeked bytes out of order");
            if n == LEN {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "a peek saw {n} of {LEN} bytes for 10 s"
            );
            buf = b;
            buf.clear();
            s2.sleep(Duration::from_millis(1)).await;
        }
        let mut got = Vec::new();
        let mut buf = Vec::with_capacity(LEN);
        while got.len() < LEN {
            let (res, b) = c.read(buf).await;
            let n = res.unwrap();
            assert!(n > 0, "early EOF");
            got.extend_from_slice(&b[..n]);
            buf = b;
            buf.clear();
        }
        got
    });
    drop(peer.join().unwrap());
    assert!(
        got == pattern(LEN, 9),
        "{cfg}: the bytes read after the peeks differ"
    );
    s.shutdown();
}

/// The peer resets the connection while the receive queue is full (its
/// receive cancelled: nothing armed) and the socket holds no bytes: a
/// peek that goes on into the socket takes the pending error (the kernel
/// hands it out once), which must still end the stream after the queued
/// bytes, as the reset does on epoll, not turn into a clean end-of-file.
fn a_reset_a_peek_found_past_a_full_queue_is_still_reported(cfg: Config) {
    // What fills the receive queue (256 KiB), and the byte that starts it.
    const LEN: usize = 256 * 1024 + 1;
    let s = sched(cfg);
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let peer = std::thread::spawn(move || {
        let (mut c, _) = l.accept().unwrap();
        c.write_all(&pattern(LEN, 3)).unwrap();
        // Reset (not FIN) once all of it has arrived.
        rx.recv().unwrap();
        socket2::SockRef::from(&c)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(c);
    });
    let s2 = s.clone();
    let (seen, end) = run(&s, async move {
        let c = TcpStream::connect(&s2, addr).await.unwrap();
        let (res, _) = c.read(Vec::with_capacity(1)).await;
        assert_eq!(res.unwrap(), 1);
        s2.sleep(Duration::from_millis(300)).await;
        tx.send(()).unwrap();
        // Let the reset arrive, then peek past what is queued.
        s2.sleep(Duration::from_millis(300)).await;
        let (res, _) = c.peek(Vec::with_capacity(2 * LEN)).await;
        assert!(res.unwrap() > 0);
        let mut seen = 1;
        loop {
            let (res, _) = c.read(Vec::with_capacity(LEN)).await;
            match res {
                Ok(0) => return (seen, Ok(0)),
                Ok(n) => seen += n,
                Err(e) => return (seen, Err(e.kind())),
            }
        }
    });
    peer.join().unwrap();
    // epoll: the kernel drops unread bytes on a reset; the receive queue
    // has them already. Either way, no more than were sent.
    assert!(seen <= LEN, "{cfg}");
    assert_eq!(
        end,
        Err(io::ErrorKind::ConnectionReset),
        "{cfg}: the reset became a clean end"
    );
    s.shutdown();
}

/// Two provided buffers for all sockets: one stream holds both while
/// another receives through its own fallback buffer, over and over; every
/// byte of both arrives in order.
fn streams_share_a_tiny_buffer_ring_without_losing_bytes(cfg: Config) {
    const LEN: usize = 300 * 1024;
    let s = sched_with_two_recv_buffers(cfg);
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let peers = std::thread::spawn(move || {
        let mut conns = Vec::new();
        for seed in [1u8, 2] {
            let (mut c, _) = l.accept().unwrap();
            let data = pattern(LEN, seed);
            conns.push(std::thread::spawn(move || {
                // Small writes, so the receiver sees many arrivals.
                for part in data.chunks(7 * 1024 + 13) {
                    c.write_all(part).unwrap();
                }
            }));
        }
        for c in conns {
            c.join().unwrap();
        }
    });
    let s2 = s.clone();
    let (a, b) = run(&s, async move {
        let a = TcpStream::connect(&s2, addr).await.unwrap();
        let b = TcpStream::connect(&s2, addr).await.unwrap();
        // `a` receives first and keeps its bytes queued: with two buffers,
        // the ring is then empty for `b`.
        let (res, first) = a.read(Vec::with_capacity(1)).await;
        assert_eq!(res.unwrap(), 1);
        s2.sleep(Duration::from_millis(20)).await;
        let read_all = |conn: TcpStream, mut got: Vec<u8>| async move {
            let mut buf = Vec::with_capacity(5000);
            loop {
                let (res, b) = conn.read(buf).await;
                match res.unwrap() {
                    0 => return got,
                    n => got.extend_from_slice(&b[..n]),
                }
                buf = b;
            }
        };
        let b = read_all(b, Vec::new()).await;
        let a = read_all(a, first).await;
        (a, b)
    });
    peers.join().unwrap();
    assert!(
        a == pattern(LEN, 1),
        "{cfg}: stream a corrupted ({} bytes)",
        a.len()
    );
    assert!(
        b == pattern(LEN, 2),
        "{cfg}: stream b corrupted ({} bytes)",
        b.len()
    );
    s.shutdown();
}

/// A stream dropped with bytes queued and a receive armed: its fd number
/// is reused at once by the next connection, which must see only its own
/// bytes (the old receive's late completions belong to the old stream).
fn a_closed_stream_with_queued_bytes_leaves_the_next_fd_alone(cfg: Config) {
    const ROUNDS: usize = 20;
    let s = sched(cfg);
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let peers = std::thread::spawn(move || {
        let mut threads = Vec::new();
        for round in 0..ROUNDS {
            let (mut c, _) = l.accept().unwrap();
            let stop = stop2.clone();
            threads.push(std::thread::spawn(move || {
                // Keep sending this round's byte until the reader hangs up.
                let chunk = vec![round as u8; 4096];
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    if c.write_all(&chunk).is_err() {
                        break;
                    }
                }
            }));
        }
        threads
    });
    let s2 = s.clone();
    run(&s, async move {
        let mut last_fd = None;
        let mut reused = 0;
        for round in 0..ROUNDS {
            let c = TcpStream::connect(&s2, addr).await.unwrap();
            let fd = std::os::fd::AsRawFd::as_raw_fd(&c);
            if last_fd == Some(fd) {
                reused += 1;
            }
            last_fd = Some(fd);
            let (res, b) = c.read(Vec::with_capacity(3000)).await;
            let n = res.unwrap();
            assert!(n > 0);
            assert!(
                b.iter().all(|&x| x == round as u8),
                "round {round}: bytes of another connection"
            );
            // More arrives meanwhile; the stream is dropped with it queued.
            s2.sleep(Duration::from_millis(1)).await;
        }
        assert!(reused > 0, "the fd number was never reused");
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in peers.join().unwrap() {
        t.join().unwrap();
    }
    s.shutdown();
}

/// libcoro's loop, `poll(Read)` then `read`, with reads shorter than what
/// arrived and requests pipelined behind: `poll` must report the bytes
/// that wait (in the socket or in the driver's receive queue), never
/// time out while a read would return at once.
fn poll_read_sees_bytes_a_short_read_left(cfg: Config) {
    let s = sched(cfg);
    let l = TcpListener::bind(&s, "127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let s2 = s.clone();
    run(&s, async move {
        let c = TcpStream::connect(&s2, addr).await.unwrap();
        let (srv, _) = l.accept().await.unwrap();
        c.write_all(b"0123456789".as_slice()).await.0.unwrap();
        // Before any read, a poll leaves the bytes in the socket (code that
        // reads the fd itself after a poll must find them there).
        let st = srv.poll(PollOp::Read, Some(Duration::from_secs(5))).await;
        assert_eq!(st, PollStatus::Event);
        s2.sleep(Duration::from_millis(10)).await;
        let mut peeked = [0u8; 16];
        let flags = rustix::net::RecvFlags::PEEK | rustix::net::RecvFlags::DONTWAIT;
        let (n, _) = rustix::net::recv(std::os::fd::AsFd::as_fd(&srv), &mut peeked, flags)
            .expect("the bytes are still in the socket");
        assert_eq!(&peeked[..n], b"0123456789");
        let mut got = Vec::new();
        while got.len() < 10 {
            let st = srv.poll(PollOp::Read, Some(Duration::from_secs(5))).await;
            assert_eq!(st, PollStatus::Event, "{} bytes read so far", got.len());
            let (res, b) = srv.read(Vec::with_capacity(3)).await;
            got.extend_from_slice(&b[..res.unwrap()]);
        }
        assert_eq!(got, b"0123456789");
        assert_eq!(srv.buffered(), 0);
        // Nothing waits: a bounded poll times out; ReadWrite is writable.
        let st = srv
            .poll(PollOp::Read, Some(Duration::from_millis(20)))
            .await;
        assert_eq!(st, PollStatus::Timeout);
        let st = srv
            .poll(PollOp::ReadWrite, Some(Duration::from_secs(5)))
            .await;
        assert_eq!(st, PollStatus::Event);
        // Bytes that arrive while nobody polls are seen by the next poll,
        // and `buffered` counts those the driver already holds.
        c.write_all(b"abc".as_slice()).await.0.unwrap();
        s2.sleep(Duration::from_millis(20)).await;
        let st = srv
            .poll(PollOp::Read, Some(Duration::from_millis(500)))
            .await;
        assert_eq!(st, PollStatus::Event);
        let queued = srv.buffered();
        assert!(queued == 0 || queued == 3, "buffered() = {queued}");
        // The end of the stream.
        c.shutdown(Shutdown::Write).unwrap();
        let (res, _) = srv.read(Vec::with_capacity(8)).await;
        assert_eq!(res.unwrap(), 3);
        // The end of the stream is readable (a read returns at once), and
        // the socket is still writable.
        let st = srv.poll(PollOp::Read, Some(Duration::from_secs(5))).await;
        assert_eq!(st, PollStatus::Event, "end of stream");
        let st = srv
            .poll(PollOp::ReadWrite, Some(Duration::from_secs(5)))
            .await;
        assert_eq!(st, PollStatus::Event, "end of stream, read or write");
        let (res, _) = srv.read(Vec::with_capacity(8)).await;
        assert_eq!(res.unwrap(), 0);
    });
    s.shutdown();
}

/// A stream handed over with `into_std` while its driver may have a
/// receive armed: bytes that arrive afterwards belong to the new owner,
/// even when the loop thread itself blocks on the socket at once.
fn into_std_stops_taking_bytes_at_once(cfg: Config) {
    into_std_keeps_later_bytes(cfg, false);
}

/// Protocol sniffing, then a hand-over: `peek` leaves the bytes in the
/// socket (`MSG_PEEK`), on every driver, so that the new owner of
/// `into_std` reads them, and a peek waits for bytes that come later.
fn a_peek_then_into_std_keeps_the_bytes(cfg: Config) {
    let s = sched(cfg);
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let peer = std::thread::spawn(move || {
        let (mut c, _) = l.accept().unwrap();
        // Later than the first peek starts: it waits.
        std::thread::sleep(Duration::from_millis(50));
        c.write_all(b"hello").unwrap();
        c
    });
    let s2 = s.clone();
    run(&s, async move {
        let conn = TcpStream::connect(&s2, addr).await.unwrap();
        let mut seen = Vec::new();
        while seen.len() < 5 {
            let (r, b) = conn.peek(Vec::with_capacity(5)).await;
            r.unwrap();
            seen = b;
        }
        assert_eq!(seen, b"hello", "{cfg}");
        let mut std = conn.into_std();
        std.set_nonblocking(false).unwrap();
        std.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let mut got = [0u8; 5];
        std.read_exact(&mut got)
            .unwrap_or_else(|e| panic!("{cfg}: the peeked bytes are gone: {e}"));
        assert_eq!(&got, b"hello", "{cfg}");
    });
    drop(peer.join().unwrap());
    s.shutdown();
}

/// `poll(Read, Some(ZERO))` asks "would a read get something now?". After
/// a first read started the receive queue, bytes that reached the socket
/// while the loop could not turn (its task blocks) are not in the queue
/// yet; the answer must still be `Event`, as the kernel's, where the bytes
/// are in the socket. (On SQPOLL, and COOP run inline (a `Manual` ring is
/// COOP), the kernel may already have received them into a completion
/// the loop has not reaped: seen at its next turn, as documented on
/// `poll`.)
fn a_zero_timeout_poll_sees_bytes_a_read_would_get(cfg: Config) {
    zero_timeout_poll_after_the_first_read(cfg, PollOp::Read);
}

/// As `a_zero_timeout_poll_sees_bytes_a_read_would_get`, asking for
/// reading or writing while the stream cannot write (its send buffer is
/// full): "not writable now" must not hide the bytes a read would get.
fn a_zero_timeout_read_write_poll_sees_bytes_a_read_would_get(cfg: Config) {
    zero_timeout_poll_after_the_first_read(cfg, PollOp::ReadWrite);
}

/// After a first read, the peer sends "b" while the loop cannot turn (the
/// task blocks); then `poll(op, Some(ZERO))` must say `Event`. For
/// `ReadWrite` the way to the peer is filled first, so that only the read
/// side can answer.
fn zero_timeout_poll_after_the_first_read(cfg: Config, op: PollOp) {
    let s = sched(cfg);
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let (sent_tx, sent_rx) = std::sync::mpsc::channel::<()>();
    let peer = std::thread::spawn(move || {
        let (mut c, _) = l.accept().unwrap();
        socket2::SockRef::from(&c)
            .set_recv_buffer_size(4096)
            .unwrap();
        c.write_all(b"a").unwrap();
        go_rx.recv().unwrap();
        c.write_all(b"b").unwrap();
        sent_tx.send(()).unwrap();
        c
    });
    let s2 = s.clone();
    run(&s, async move {
        let conn = TcpStream::connect(&s2, addr).await.unwrap();
        let (r, b) = conn.read(Vec::with_capacity(1)).await;
        assert_eq!(&b[..r.unwrap()], b"a");
        if op == PollOp::ReadWrite {
            // Fill the way to the peer, which does not read.
            socket2::SockRef::from(&conn)
                .set_send_buffer_size(4096)
                .unwrap();
            let mut filled = false;
            for _ in 0..10_000 {
                if conn.poll(PollOp::Write, Some(Duration::ZERO)).await == PollStatus::Timeout {
                    filled = true;
                    break;
                }
                let (r, _) = conn.write(vec![0u8; 64 * 1024]).await;
                r.unwrap();
            }
            assert!(filled, "{cfg}: the send buffer never filled");
        }
        go_tx.send(()).unwrap();
        // Blocking on purpose: the loop does not turn (inline). Until "b"
        // is in the socket, bounded (a receive the kernel ran meanwhile
        // may have taken it already: SQPOLL, inline COOP).
        sent_rx.recv().unwrap();
        let mut fds = [rustix::event::PollFd::new(
            &conn,
            rustix::event::PollFlags::IN,
        )];
        let second = rustix::time::Timespec {
            tv_sec: 1,
            tv_nsec: 0,
        };
        let _ = rustix::event::poll(&mut fds, Some(&second));
        let st = conn.poll(op, Some(Duration::ZERO)).await;
        // Where the kernel may have received "b" into a completion not yet
        // reaped into the receive queue (`Stream::poll`'s documented
        // limit): SQPOLL and COOP rings; and on a pool. There, likely (by
        // reading): under load "b" lands after the socket poll above
        // began, which returns at once; on its way out this thread (the
        // worker that submitted the receive) runs the kernel's completion
        // work, the receive takes "b", and the loop thread reaps it a few
        // microseconds later. (Seen once each on the COOP and plain pool
        // configurations in two full runs; never in 30 runs of this test.)
        let unreaped = cfg.sqpoll
            || cfg.pool && cfg.kind() == DriverKind::IoUring
            || [Config::URING_COOP, Config::URING_MANUAL].contains(&cfg);
        if !unreaped {
            assert_eq!(st, PollStatus::Event, "{cfg}: a read would get \"b\"");
        }
        let (r, b) = conn.read(Vec::with_capacity(1)).await;
        assert_eq!(&b[..r.unwrap()], b"b", "{cfg}");
    });
    drop(peer.join().unwrap());
    s.shutdown();
}

/// The peer resets the connection before any read: a first `peek` reports
/// the reset, and the read after it must report it too, not a clean end
/// of the stream (the kernel hands a socket error out once, and a peek
/// that takes it leaves the read an end-of-file). Kept for the read where
/// the driver has a receive queue; on epoll and the plain ring a peek
/// that meets an error takes it (documented on `peek`).
fn a_reset_seen_by_a_first_peek_is_still_reported_by_the_read(cfg: Config) {
    let s = sched(cfg);
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let (connected_tx, connected_rx) = std::sync::mpsc::channel::<()>();
    let peer = std::thread::spawn(move || {
        let (c, _) = l.accept().unwrap();
        // After the connect returned (a reset before it fails the connect).
        connected_rx.recv().unwrap();
        socket2::SockRef::from(&c)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(c);
    });
    let s2 = s.clone();
    let (peeked, read) = run(&s, async move {
        let conn = TcpStream::connect(&s2, addr).await.unwrap();
        connected_tx.send(()).unwrap();
        s2.sleep(Duration::from_millis(100)).await;
        let (p, _) = conn.peek(Vec::with_capacity(8)).await;
        let (r, _) = conn.read(Vec::with_capacity(8)).await;
        (p.map_err(|e| e.kind()), r.map_err(|e| e.kind()))
    });
    peer.join().unwrap();
    assert_eq!(peeked, Err(io::ErrorKind::ConnectionReset), "{cfg}");
    // (The receive queue needs Linux 6.0 and a registered buffer ring.)
    let queue = s.driver().recv_queue();
    if queue {
        assert_eq!(
            read,
            Err(io::ErrorKind::ConnectionReset),
            "{cfg}: the reset became a clean end"
        );
    }
    s.shutdown();
}

/// `into_std` on a thread of its own while the scheduler's loop is busy (a
/// task that computes without yielding): the bytes sent after it returns
/// still belong to the new owner. On a single-issuer ring only the loop
/// may submit the receive's cancel, so `into_std` waits for it (there the
/// kernel also defers the receive itself to the loop's next entry, which
/// submits the cancel first); on the others it submits the cancel itself.
fn into_std_on_another_thread_while_the_loop_spins(cfg: Config) {
    into_std_keeps_later_bytes(cfg, true);
}

/// Read "before", hand the stream over with `into_std` (on the task, or
/// on a thread of its own while the loop spins), then the peer sends
/// "after": the new owner must read it with a blocking read.
fn into_std_keeps_later_bytes(cfg: Config, other_thread: bool) {
    let s = sched(cfg);
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let peer = std::thread::spawn(move || {
        let (mut c, _) = l.accept().unwrap();
        c.write_all(b"before").unwrap();
        go_rx.recv().unwrap();
        c.write_all(b"after").unwrap();
        c
    });
    let new_owner = move |conn: TcpStream| {
        let mut std = conn.into_std();
        go_tx.send(()).unwrap();
        // Blocking on purpose (on the task: the loop does not turn).
        std.set_nonblocking(false).unwrap();
        std.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let mut buf = [0u8; 16];
        let n = std.read(&mut buf).expect("the bytes sent after into_std");
        buf[..n].to_vec()
    };
    let s2 = s.clone();
    let got = run(&s, async move {
        let conn = TcpStream::connect(&s2, addr).await.unwrap();
        let (res, b) = conn.read(Vec::with_capacity(6)).await;
        assert_eq!(&b[..res.unwrap()], b"before");
        if !other_thread {
            return new_owner(conn);
        }
        let owner = std::thread::spawn(move || new_owner(conn));
        // Busy for a while without yielding: the loop cannot turn.
        let t0 = std::time::Instant::now();
        while t0.elapsed() < Duration::from_millis(50) {
            std::hint::spin_loop();
        }
        while !owner.is_finished() {
            s2.sleep(Duration::from_millis(1)).await;
        }
        owner.join().unwrap()
    });
    assert_eq!(got, b"after", "{cfg}");
    drop(peer.join().unwrap());
    s.shutdown();
}

/// A task whose reads never wait (every byte is there before it starts)
/// still lets the other tasks on its thread run: each completed op counts
/// against the task's budget for one poll (`coro_io::coop`), and once it
/// is spent the next op yields first. Without it the other task would run
/// only after the last read. Thread-pool configurations get one worker
/// here: with two, the other task may simply run on the second one.
fn a_reader_that_never_waits_lets_the_other_tasks_run(cfg: Config) {
    use coro_io::thread_pool::ThreadPoolOptions;
    use coro_io::{ExecutionStrategy, IoSchedulerOptions};
    use std::sync::atomic::{AtomicBool, Ordering};
    const BYTES: usize = 64 * 1024;
    let s = cfg.sched_with(IoSchedulerOptions {
        execution: ExecutionStrategy::ThreadPool(ThreadPoolOptions {
            thread_count: 1,
            ..Default::default()
        }),
        ..Default::default()
    });
    let l = TcpListener::bind(&s, "127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let mut peer = std::net::TcpStream::connect(addr).unwrap();
    peer.write_all(&pattern(BYTES, 3)).unwrap();
    let s2 = s.clone();
    run(&s, async move {
        let (c, _) = l.accept().await.unwrap();
        // The first read starts the receive queue where there is one;
        // then give the bytes time to arrive in it.
        let (n, mut buf) = c.read(Vec::with_capacity(1)).await;
        let mut got = n.unwrap();
        s2.sleep(Duration::from_millis(100)).await;
        let ran = Arc::new(AtomicBool::new(false));
        let r = ran.clone();
        let other = s2.spawn(async move { r.store(true, Ordering::SeqCst) });
        let mut at = None;
        while got < BYTES {
            buf.clear();
            let (n, b) = c.read(buf).await;
            got += n.unwrap();
            buf = b;
            if at.is_none() && ran.load(Ordering::SeqCst) {
                at = Some(got);
            }
        }
        other.await.unwrap();
        let at = at.expect("the other task ran only after the last read");
        assert!(
            at <= 4 * usize::from(coro_io::coop::BUDGET),
            "the other task ran after {at} one-byte reads"
        );
        drop(peer);
    });
}

/// With the task's budget spent, the `futures_io` adapter's `poll_write`
/// takes no bytes: it would take them with their send left unstarted
/// (lost if the stream were dropped then, though reported written). It
/// yields instead, and takes them on the next poll.
fn adapter_write_with_a_spent_budget_takes_nothing(cfg: Config) {
    use coro_io::coop;
    use futures::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
    use std::pin::Pin;
    use std::task::{Context, Poll, Waker};
    let s = sched(cfg);
    let l = TcpListener::bind(&s, "127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let s2 = s.clone();
    run(&s, async move {
        let c = TcpStream::connect(&s2, addr).await.unwrap();
        let (mut srv, _) = l.accept().await.unwrap();
        let mut w = &c;
        {
            let mut cx = Context::from_waker(Waker::noop());
            let spent = coop::budgeted(|| {
                for _ in 0..coop::BUDGET {
                    coop::consume();
                }
                Pin::new(&mut w).poll_write(&mut cx, b"hello")
            });
            assert!(
                spent.is_pending(),
                "took bytes it could not send: {spent:?}"
            );
            let fresh = coop::budgeted(|| Pin::new(&mut w).poll_write(&mut cx, b"hello"));
            assert!(matches!(fresh, Poll::Ready(Ok(5))), "{fresh:?}");
        }
        w.close().await.unwrap();
        let mut got = Vec::new();
        srv.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"hello");
    });
}

/// A request that meets a full socket, written through the `AsyncWrite`
/// adapter, then a read of the reply through the adapter without a
/// flush (as tokio code does): on epoll the adapter reported the bytes
/// written and nothing ran their send again while the writer waited for
/// the reply, which never came. On a Unix stream, whose peer takes no
/// more than the buffers hold (TCP on loopback takes a little more now
/// and then), with a peer thread that reads 50 ms later.
fn an_adapter_write_reaches_the_peer_while_the_writer_waits_for_the_reply(cfg: Config) {
    use futures::io::{AsyncReadExt, AsyncWriteExt};
    let s = sched(cfg);
    let (client, mut peer, filled) = full_unix_pair();
    let request: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
    let want = request.clone();
    let server = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        peer.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut got = vec![0u8; filled + want.len()];
        peer.read_exact(&mut got).unwrap();
        assert!(got[filled..] == want[..], "another request arrived");
        peer.write_all(b"ok").unwrap();
        peer
    });
    let c = coro_net::unix::UnixStream::from_std(&s, client).unwrap();
    let s2 = s.clone();
    run(&s, async move {
        let mut c = c;
        AsyncWriteExt::write_all(&mut c, &request).await.unwrap();
        let mut reply = [0u8; 2];
        s2.timeout(
            Duration::from_secs(10),
            AsyncReadExt::read_exact(&mut c, &mut reply),
        )
        .await
        .expect("the bytes the adapter took were never sent")
        .unwrap();
        assert_eq!(&reply, b"ok", "{cfg}");
    });
    drop(server.join().unwrap());
    s.shutdown();
}

/// Any fd converts to a std listener: one that cannot accept (a UDP
/// socket) is refused when it is handed over, not later by an accept that
/// fails with a code accept loops skip as a connection's own.
#[test]
fn a_socket_that_cannot_accept_is_refused_as_a_listener() {
    let s = IoScheduler::new(Default::default()).unwrap();
    let udp: std::os::fd::OwnedFd = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().into();
    let e = TcpListener::from_std(&s, std::net::TcpListener::from(udp)).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
    let dgram: std::os::fd::OwnedFd = std::os::unix::net::UnixDatagram::unbound().unwrap().into();
    let e =
        coro_net::unix::UnixListener::from_std(&s, std::os::unix::net::UnixListener::from(dgram))
            .unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
    s.shutdown();
}

/// Fill the socket through the `AsyncWrite` adapter until it accepts no
/// more (a send of its own in flight, the peer not reading): the bytes it
/// accepted.
fn fill_through_the_adapter(c: &TcpStream) -> usize {
    use futures::io::AsyncWrite;
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    let chunk = vec![0u8; 64 * 1024];
    let mut filled = 0;
    for _ in 0..10_000 {
        match std::pin::Pin::new(&mut &*c).poll_write(&mut cx, &chunk) {
            std::task::Poll::Ready(Ok(n)) => filled += n,
            std::task::Poll::Ready(Err(e)) => panic!("{e}"),
            std::task::Poll::Pending => return filled,
        }
    }
    panic!("the socket never filled");
}

/// Read from `srv` until `total` bytes came; returns them.
async fn read_exactly(srv: &TcpStream, total: usize) -> Vec<u8> {
    let mut all = Vec::with_capacity(total);
    while all.len() < total {
        let (n, buf) = srv.read(Vec::with_capacity(256 * 1024)).await;
        assert!(n.unwrap() > 0, "early end of stream");
        all.extend_from_slice(&buf);
    }
    all
}

/// Two tasks writing through one `&TcpStream` while the adapter's send
/// waits for room: both are woken when it completes (an op keeps one
/// waker; the adapter polls it with one that wakes every waiting task).
fn two_tasks_writing_through_one_shared_stream_both_finish(cfg: Config) {
    use futures::io::AsyncWriteExt;
    let s = sched(cfg);
    let s2 = s.clone();
    run(&s, async move {
        let l = TcpListener::bind(&s2, "127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let c = Arc::new(TcpStream::connect(&s2, addr).await.unwrap());
        let (srv, _) = l.accept().await.unwrap();
        let filled = fill_through_the_adapter(&c);
        let writer = |byte: &'static [u8]| {
            let c = c.clone();
            s2.spawn(async move {
                let mut w = &*c;
                AsyncWriteExt::write_all(&mut w, byte).await?;
                AsyncWriteExt::flush(&mut w).await
            })
        };
        let (a, b) = (writer(b"a"), writer(b"b"));
        // Both wait on the adapter's send before the peer reads.
        s2.sleep(Duration::from_millis(50)).await;
        let all = read_exactly(&srv, filled + 2).await;
        let bound = Duration::from_secs(5);
        s2.timeout(bound, a)
            .await
            .expect("a writer was never woken")
            .unwrap()
            .unwrap();
        s2.timeout(bound, b)
            .await
            .expect("a writer was never woken")
            .unwrap()
            .unwrap();
        let mut tail = all[filled..].to_vec();
        tail.sort_unstable();
        assert_eq!(tail, b"ab");
    });
    s.shutdown();
}

/// Bytes the `AsyncWrite` adapter accepted go out before a later owned
/// write's, and the write side is not shut down under them.
fn owned_writes_and_shutdown_come_after_what_async_write_accepted(cfg: Config) {
    let s = sched(cfg);
    let s2 = s.clone();
    run(&s, async move {
        let l = TcpListener::bind(&s2, "127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let c = Arc::new(TcpStream::connect(&s2, addr).await.unwrap());
        let (srv, _) = l.accept().await.unwrap();
        let filled = fill_through_the_adapter(&c);
        // Refused while those bytes are in flight: it would lose them
        // (io_uring; on epoll the adapter takes none it cannot send).
        if s2.driver().kind() == DriverKind::IoUring {
            let e = c.shutdown(Shutdown::Write).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::WouldBlock, "{e}");
        }
        let w = {
            let c = c.clone();
            s2.spawn(async move { c.write_all(b"Z".to_vec()).await.0 })
        };
        s2.sleep(Duration::from_millis(50)).await;
        let all = read_exactly(&srv, filled + 1).await;
        s2.timeout(Duration::from_secs(5), w)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(
            all.last(),
            Some(&b'Z'),
            "the owned write overtook the adapter's bytes"
        );
        assert!(all[..filled].iter().all(|&b| b == 0));
        // Now the write side shuts down, and the peer sees the end.
        coro_io::copy::WriteOwned::shutdown_write(&*c)
            .await
            .unwrap();
        let (n, _) = srv.read(Vec::with_capacity(8)).await;
        assert_eq!(n.unwrap(), 0);
    });
    s.shutdown();
}

/// As `dropped_reads_of_an_idle_stream_keep_few_wakers`, through the
/// `AsyncRead` adapter, which keeps its waiting tasks in a list of its own
/// where the driver has no receive queue.
fn dropped_adapter_reads_of_an_idle_stream_keep_few_wakers(cfg: Config) {
    use futures::AsyncReadExt;
    let s = sched(cfg);
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let s2 = s.clone();
    let a = run(
        &s,
        async move { TcpStream::connect(&s2, addr).await.unwrap() },
    );
    let (_b, _) = l.accept().unwrap();
    let kept = common::wakers_kept_by_dropped_polls(5000, "nothing was sent", || async {
        let mut buf = [0u8; 16];
        let mut r = &a;
        AsyncReadExt::read(&mut r, &mut buf).await
    });
    assert!(kept <= 2048, "{cfg}: {kept} wakers kept");
    drop(a);
    s.shutdown();
}
