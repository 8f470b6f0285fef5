//! The channels (`mpsc`, `oneshot`, `broadcast`, `watch`), hand-polled: each
//! wait is seen pending, then woken (wake counters), then ready; closing by
//! handle drops; cancelled futures that were notified pass the wake-up on.
#![cfg(not(loom))]
#![allow(missing_docs)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{Probe, assert_send_sync};
use coro_sync::mpsc;
use coro_sync::mpsc::error::{SendError, TryRecvError, TrySendError};

/// Counts its drops, to check where values end up.
#[derive(Debug)]
struct Tracked(u32, Arc<AtomicUsize>);

impl Drop for Tracked {
    fn drop(&mut self) {
        self.1.fetch_add(1, Ordering::SeqCst);
    }
}

/// A type without `Debug`, for the `Debug` impls that must not need it.
struct Opaque;

// -------------------------------------------------------------------- mpsc

#[test]
fn mpsc_types_are_send_sync() {
    assert_send_sync::<mpsc::Sender<u8>>();
    assert_send_sync::<mpsc::Receiver<u8>>();
    assert_send_sync::<mpsc::UnboundedSender<u8>>();
    assert_send_sync::<mpsc::UnboundedReceiver<u8>>();
    assert_send_sync::<mpsc::Permit<'static, u8>>();
    assert_send_sync::<coro_sync::futures::MpscSend<'static, u8>>();
    assert_send_sync::<coro_sync::futures::MpscRecv<'static, u8>>();
}

#[test]
fn mpsc_closes_when_the_last_sender_drops() {
    let (tx, mut rx) = mpsc::channel::<u32>(4);
    let tx2 = tx.clone();
    tx.try_send(1).unwrap();
    assert_eq!(rx.try_recv(), Ok(1));
    let mut r = Probe::new(rx.recv());
    r.pending();
    drop(tx);
    assert!(!r.woken(), "a sender is left: nothing to report yet");
    r.pending();
    tx2.try_send(2).unwrap();
    assert!(r.woken());
    assert_eq!(r.ready(), Some(2));
    drop(r);
    tx2.try_send(3).unwrap();
    let mut r = Probe::new(rx.recv());
    assert_eq!(r.ready(), Some(3));
    drop(r);
    let mut r = Probe::new(rx.recv());
    r.pending();
    drop(tx2);
    assert_eq!(
        r.wakes(),
        1,
        "the last sender's drop must wake the receiver"
    );
    assert_eq!(r.ready(), None);
    drop(r);
    assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
    assert!(rx.is_closed());
}

#[test]
fn mpsc_receiver_drains_what_is_left_after_the_last_sender_drops() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    for i in 0..3 {
        tx.clone().send(i).unwrap();
    }
    drop(tx);
    let mut got = Vec::new();
    while let Some(v) = futures::executor::block_on(rx.recv()) {
        got.push(v);
    }
    assert_eq!(got, [0, 1, 2]);
}

#[test]
fn mpsc_unbounded_closes_when_the_last_sender_drops() {
    let (tx, mut rx) = mpsc::unbounded_channel::<u32>();
    let tx2 = tx.clone();
    let mut r = Probe::new(rx.recv());
    r.pending();
    drop(tx);
    r.pending();
    drop(tx2);
    assert!(r.woken());
    assert_eq!(r.ready(), None);
}

#[test]
fn mpsc_receiver_drop_fails_sends_and_returns_values() {
    let drops = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = mpsc::channel(1);
    tx.try_send(Tracked(0, drops.clone())).unwrap();
    let mut blocked = Probe::new(tx.send(Tracked(1, drops.clone())));
    blocked.pending();
    let mut reserve = Probe::new(tx.reserve());
    reserve.pending();
    let mut closed = Probe::new(tx.closed());
    closed.pending();
    drop(rx);
    // The buffered value is dropped with the receiver, not kept for later.
    assert_eq!(drops.load(Ordering::SeqCst), 1);
    assert!(blocked.woken() && reserve.woken() && closed.woken());
    let SendError(back) = blocked.ready().unwrap_err();
    assert_eq!(back.0, 1);
    assert!(reserve.ready().is_err());
    closed.ready();
    assert!(tx.is_closed());
    match tx.try_send(Tracked(2, drops.clone())) {
        Err(TrySendError::Closed(v)) => assert_eq!(v.0, 2),
        other => panic!("expected Closed, got {other:?}"),
    }
    let mut late = Probe::new(tx.send(Tracked(3, drops.clone())));
    assert_eq!(late.ready().unwrap_err().0.0, 3);

    let (utx, urx) = mpsc::unbounded_channel();
    drop(urx);
    assert!(utx.is_closed());
    assert_eq!(utx.send(7).unwrap_err().into_inner(), 7);
}

#[test]
fn mpsc_capacity_is_respected_and_a_freed_slot_wakes_exactly_the_blocked_sender() {
    let (tx, mut rx) = mpsc::channel::<u32>(2);
    assert_eq!((tx.capacity(), tx.max_capacity()), (2, 2));
    tx.try_send(1).unwrap();
    tx.try_send(2).unwrap();
    assert_eq!(tx.capacity(), 0);
    assert_eq!(tx.try_send(9), Err(TrySendError::Full(9)));
    let mut a = Probe::new(tx.send(3));
    let mut b = Probe::new(tx.send(4));
    a.pending();
    b.pending();
    assert_eq!(rx.try_recv(), Ok(1));
    assert_eq!(
        a.wakes(),
        1,
        "the freed slot must wake the first blocked sender"
    );
    assert_eq!(b.wakes(), 0, "one slot, one wake-up");
    a.ready().unwrap();
    b.pending();
    assert_eq!(rx.len(), 2);
    assert_eq!(rx.try_recv(), Ok(2));
    assert_eq!(b.wakes(), 1);
    b.ready().unwrap();
    assert_eq!(rx.try_recv(), Ok(3));
    assert_eq!(rx.try_recv(), Ok(4));
    assert_eq!(tx.capacity(), 2);
}

#[test]
fn mpsc_two_sends_before_the_woken_receiver_polls() {
    let (tx, mut rx) = mpsc::channel::<u32>(4);
    let mut r = Probe::new(rx.recv());
    r.pending();
    tx.try_send(1).unwrap();
    tx.try_send(2).unwrap();
    assert!(r.woken());
    assert_eq!(r.ready(), Some(1));
    drop(r);
    let mut r = Probe::new(rx.recv());
    assert_eq!(r.ready(), Some(2));
}

#[test]
fn mpsc_two_recvs_before_the_first_woken_sender_polls() {
    let (tx, mut rx) = mpsc::channel::<u32>(2);
    tx.try_send(1).unwrap();
    tx.try_send(2).unwrap();
    let mut a = Probe::new(tx.send(3));
    let mut b = Probe::new(tx.send(4));
    a.pending();
    b.pending();
    assert_eq!(rx.try_recv(), Ok(1));
    assert_eq!(rx.try_recv(), Ok(2));
    assert!(a.woken());
    assert!(
        b.woken(),
        "the second freed slot did not wake the second sender"
    );
    a.ready().unwrap();
    b.ready().unwrap();
    assert_eq!(rx.try_recv(), Ok(3));
    assert_eq!(rx.try_recv(), Ok(4));
}

#[test]
fn mpsc_notified_send_dropped_passes_the_slot_on() {
    let (tx, mut rx) = mpsc::channel::<u32>(1);
    tx.try_send(0).unwrap();
    let mut a = Probe::new(tx.send(1));
    let mut b = Probe::new(tx.send(2));
    a.pending();
    b.pending();
    assert_eq!(rx.try_recv(), Ok(0));
    assert!(a.woken());
    assert!(!b.woken());
    drop(a);
    assert!(b.woken(), "the dropped sender's wake-up was lost");
    b.ready().unwrap();
    assert_eq!(rx.try_recv(), Ok(2));
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
}

#[test]
fn mpsc_notified_reserve_dropped_passes_the_slot_on() {
    let (tx, mut rx) = mpsc::channel::<u32>(1);
    tx.try_send(0).unwrap();
    let mut a = Probe::new(tx.reserve());
    let mut b = Probe::new(tx.reserve());
    a.pending();
    b.pending();
    assert_eq!(rx.try_recv(), Ok(0));
    assert!(a.woken() && !b.woken());
    drop(a);
    assert!(b.woken(), "the dropped reserve's wake-up was lost");
    let permit = b.ready().unwrap();
    assert_eq!(tx.capacity(), 0);
    permit.send(5);
    assert_eq!(rx.try_recv(), Ok(5));
    assert_eq!(tx.capacity(), 1);
}

#[test]
fn mpsc_notified_recv_dropped_loses_no_value() {
    let (tx, mut rx) = mpsc::channel::<u32>(2);
    let mut r = Probe::new(rx.recv());
    r.pending();
    tx.try_send(1).unwrap();
    assert!(r.woken());
    drop(r);
    let mut r = Probe::new(rx.recv());
    assert_eq!(r.ready(), Some(1));
}

#[test]
fn mpsc_dropped_permit_returns_its_slot_and_wakes_a_sender() {
    let (tx, mut rx) = mpsc::channel::<u32>(1);
    let permit = tx.try_reserve().unwrap();
    assert_eq!(tx.capacity(), 0);
    assert!(tx.try_reserve().unwrap_err().is_full());
    let mut s = Probe::new(tx.send(1));
    s.pending();
    drop(permit);
    assert_eq!(s.wakes(), 1);
    s.ready().unwrap();
    assert_eq!(rx.try_recv(), Ok(1));
}

#[test]
fn mpsc_close_keeps_buffered_values_and_outstanding_permits() {
    let (tx, mut rx) = mpsc::channel::<u32>(3);
    tx.try_send(1).unwrap();
    let p1 = tx.try_reserve().unwrap();
    let p2 = tx.try_reserve().unwrap();
    let mut closed = Probe::new(tx.closed());
    closed.pending();
    rx.close();
    assert!(closed.woken());
    closed.ready();
    assert!(tx.is_closed() && rx.is_closed());
    assert_eq!(tx.try_send(9), Err(TrySendError::Closed(9)));
    assert_eq!(rx.try_recv(), Ok(1));
    // Two permits are out: the channel has not ended yet.
    let mut r = Probe::new(rx.recv());
    r.pending();
    p1.send(2);
    assert!(r.woken());
    assert_eq!(r.ready(), Some(2));
    drop(r);
    let mut r = Probe::new(rx.recv());
    r.pending();
    drop(p2);
    assert!(
        r.woken(),
        "the last permit's drop must wake the closed receiver"
    );
    assert_eq!(r.ready(), None);
    drop(r);
    assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
}

#[test]
fn mpsc_close_wakes_blocked_senders_with_their_values() {
    let (tx, mut rx) = mpsc::channel::<u32>(1);
    tx.try_send(1).unwrap();
    let mut s = Probe::new(tx.send(2));
    s.pending();
    rx.close();
    assert!(s.woken());
    assert_eq!(s.ready(), Err(SendError(2)));
    assert_eq!(futures::executor::block_on(rx.recv()), Some(1));
    assert_eq!(futures::executor::block_on(rx.recv()), None);
}

#[test]
fn mpsc_recv_many_waits_for_one_then_takes_what_is_there() {
    let (tx, mut rx) = mpsc::channel::<u32>(8);
    let mut buf = Vec::new();
    {
        let mut f = Probe::new(rx.recv_many(&mut buf, 3));
        f.pending();
        for i in 0..5 {
            tx.try_send(i).unwrap();
        }
        assert!(f.woken());
        assert_eq!(f.ready(), 3);
    }
    assert_eq!(buf, [0, 1, 2]);
    assert_eq!(futures::executor::block_on(rx.recv_many(&mut buf, 0)), 0);
    assert_eq!(futures::executor::block_on(rx.recv_many(&mut buf, 10)), 2);
    drop(tx);
    assert_eq!(futures::executor::block_on(rx.recv_many(&mut buf, 10)), 0);
    assert_eq!(buf, [0, 1, 2, 3, 4]);
}

#[test]
fn mpsc_receivers_are_streams() {
    use futures::StreamExt;
    let (tx, rx) = mpsc::channel(2);
    let (utx, urx) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for i in 0..10 {
            futures::executor::block_on(tx.send(i)).unwrap();
            utx.send(i).unwrap();
        }
    });
    let a: Vec<i32> = futures::executor::block_on(rx.collect());
    let b: Vec<i32> = futures::executor::block_on(urx.collect());
    assert_eq!(a, (0..10).collect::<Vec<_>>());
    assert_eq!(b, a);
}

#[test]
fn mpsc_poll_recv_keeps_the_registration_between_calls() {
    let (tx, mut rx) = mpsc::unbounded_channel::<u32>();
    let mut p = Probe::new(std::future::poll_fn(|cx| rx.poll_recv(cx)));
    p.pending();
    p.pending();
    tx.send(1).unwrap();
    assert!(p.woken());
    assert_eq!(p.ready(), Some(1));
}

#[test]
fn mpsc_close_wakes_a_receiver_waiting_through_poll_recv() {
    // A hand-written future may register through `poll_recv`, close the
    // channel and sleep on that registration: the close must wake it.
    let (tx, rx) = mpsc::channel::<u32>(1);
    let rx = std::cell::RefCell::new(rx);
    let mut p = Probe::new(std::future::poll_fn(|cx| rx.borrow_mut().poll_recv(cx)));
    p.pending();
    rx.borrow_mut().close();
    assert_eq!(p.wakes(), 1, "close did not wake the registered receiver");
    assert_eq!(p.ready(), None);
    drop(tx);
}

#[test]
fn mpsc_same_channel_and_debug_without_t_debug() {
    let (tx, rx) = mpsc::channel::<Opaque>(1);
    let (utx, urx) = mpsc::unbounded_channel::<Opaque>();
    assert!(tx.same_channel(&tx.clone()));
    assert!(utx.same_channel(&utx.clone()));
    let s = format!("{tx:?} {rx:?} {utx:?} {urx:?}");
    assert!(
        s.contains("Sender") && s.contains("UnboundedReceiver"),
        "{s}"
    );
    let permit = tx.try_reserve().unwrap();
    assert!(format!("{permit:?}").contains("Permit"));
    assert_eq!(format!("{:?}", SendError(Opaque)), "SendError(..)");
    assert_eq!(format!("{:?}", TrySendError::Full(Opaque)), "Full(..)");
}

#[test]
fn mpsc_errors_display_like_tokio() {
    assert_eq!(SendError(()).to_string(), "channel closed");
    assert_eq!(TrySendError::Full(()).to_string(), "no available capacity");
    assert_eq!(TrySendError::Closed(()).to_string(), "channel closed");
    assert_eq!(
        TryRecvError::Empty.to_string(),
        "receiving on an empty channel"
    );
    assert_eq!(
        TryRecvError::Disconnected.to_string(),
        "receiving on a closed channel"
    );
    let e: Box<dyn std::error::Error> = Box::new(SendError(1));
    assert_eq!(e.to_string(), "channel closed");
    assert_eq!(TrySendError::from(SendError(3)), TrySendError::Closed(3));
}

#[test]
#[should_panic(expected = "mpsc bounded channel requires capacity > 0")]
fn mpsc_capacity_zero_panics() {
    let _ = mpsc::channel::<u8>(0);
}

#[test]
fn mpsc_large_capacity_grows_lazily_and_still_bounds() {
    let (tx, mut rx) = mpsc::channel::<u32>(5000);
    for i in 0..5000 {
        tx.try_send(i).unwrap();
    }
    assert!(tx.try_send(5000).unwrap_err().is_full());
    assert_eq!(rx.try_recv(), Ok(0));
    tx.try_send(5000).unwrap();
    assert_eq!(rx.len(), 5000);
}

// ----------------------------------------------------------------- oneshot

use coro_sync::oneshot;

#[test]
fn oneshot_types_are_send_sync() {
    assert_send_sync::<oneshot::Sender<u8>>();
    assert_send_sync::<oneshot::Receiver<u8>>();
    assert_send_sync::<coro_sync::futures::OneshotClosed<'static, u8>>();
}

#[test]
fn oneshot_send_wakes_the_pending_receiver() {
    let (tx, rx) = oneshot::channel::<u32>();
    let mut r = Probe::new(rx);
    r.pending();
    r.pending();
    assert!(!r.woken());
    tx.send(5).unwrap();
    assert_eq!(r.wakes(), 1);
    assert_eq!(r.ready(), Ok(5));
    // Polled again after the value: an error, not a panic or a hang.
    assert!(r.ready().is_err());
}

#[test]
fn oneshot_sender_dropped_without_sending_wakes_with_an_error() {
    let (tx, rx) = oneshot::channel::<u32>();
    let mut r = Probe::new(rx);
    r.pending();
    drop(tx);
    assert_eq!(r.wakes(), 1);
    let err = r.ready().unwrap_err();
    assert_eq!(err.to_string(), "channel closed");
}

#[test]
fn oneshot_value_sent_then_sender_gone_is_still_received() {
    let (tx, mut rx) = oneshot::channel::<u32>();
    tx.send(1).unwrap(); // consumes and drops the sender
    assert_eq!(rx.try_recv(), Ok(1));
    assert_eq!(rx.try_recv(), Err(oneshot::error::TryRecvError::Closed));
}

#[test]
fn oneshot_receiver_drop_fails_the_send_and_wakes_closed() {
    let drops = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = oneshot::channel::<Tracked>();
    let mut c1 = Probe::new(tx.closed());
    let mut c2 = Probe::new(tx.closed());
    c1.pending();
    c2.pending();
    assert!(!tx.is_closed());
    drop(rx);
    assert!(
        c1.woken() && c2.woken(),
        "every closed() waiter must be woken"
    );
    c1.ready();
    c2.ready();
    drop((c1, c2));
    assert!(tx.is_closed());
    let back = tx.send(Tracked(7, drops.clone())).unwrap_err();
    assert_eq!(back.0, 7);
    assert_eq!(
        drops.load(Ordering::SeqCst),
        0,
        "the value came back, not dropped"
    );
}

#[test]
fn oneshot_receiver_dropped_after_send_drops_the_value() {
    let drops = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = oneshot::channel::<Tracked>();
    tx.send(Tracked(1, drops.clone())).unwrap();
    assert_eq!(drops.load(Ordering::SeqCst), 0);
    drop(rx);
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}

#[test]
fn oneshot_close_keeps_a_value_sent_before_and_refuses_later_sends() {
    let (tx, mut rx) = oneshot::channel::<u32>();
    tx.send(1).unwrap();
    rx.close();
    assert_eq!(rx.try_recv(), Ok(1));

    let (tx, mut rx) = oneshot::channel::<u32>();
    let mut c = Probe::new(tx.closed());
    c.pending();
    rx.close();
    assert!(c.woken());
    c.ready();
    drop(c);
    assert_eq!(tx.send(2), Err(2));
    assert_eq!(rx.try_recv(), Err(oneshot::error::TryRecvError::Closed));
    let mut r = Probe::new(rx);
    assert!(r.ready().is_err());
}

#[test]
fn oneshot_poll_closed_and_debug_without_t_debug() {
    let (mut tx, rx) = oneshot::channel::<Opaque>();
    let mut p = Probe::new(std::future::poll_fn(move |cx| tx.poll_closed(cx)));
    p.pending();
    let s = format!("{rx:?}");
    assert!(s.contains("Receiver"), "{s}");
    drop(rx);
    assert!(p.woken());
    p.ready();
    let (tx, _rx) = oneshot::channel::<Opaque>();
    assert!(format!("{tx:?}").contains("Sender"));
    assert_eq!(
        oneshot::error::TryRecvError::Empty.to_string(),
        "channel empty"
    );
}

#[test]
fn oneshot_across_threads() {
    for i in 0..200 {
        let (tx, rx) = oneshot::channel::<u32>();
        let t = std::thread::spawn(move || tx.send(3));
        let got = futures::executor::block_on(rx);
        t.join().unwrap().unwrap();
        assert_eq!(got, Ok(3));
        let (tx, rx) = oneshot::channel::<u32>();
        let t = std::thread::spawn(move || drop(rx));
        if i % 2 == 0 {
            // The receiver is gone before the send: the value comes back.
            t.join().unwrap();
            assert_eq!(tx.send(4), Err(4));
        } else {
            // A race: either delivered (and dropped with the receiver) or
            // handed back; what counts is no crash, no leak, no hang.
            let r = tx.send(4);
            t.join().unwrap();
            assert!(matches!(r, Ok(()) | Err(4)));
        }
    }
}

// --------------------------------------------------------------- broadcast

use coro_sync::broadcast;

#[test]
fn broadcast_types_are_send_sync() {
    assert_send_sync::<broadcast::Sender<u8>>();
    assert_send_sync::<broadcast::Receiver<u8>>();
    assert_send_sync::<coro_sync::futures::BroadcastRecv<'static, u8>>();
    // Receivers clone under a per-slot mutex: `T: Send` is enough.
    assert_send_sync::<broadcast::Sender<std::cell::Cell<u8>>>();
}

#[test]
fn broadcast_send_wakes_every_waiting_receiver() {
    let (tx, mut a) = broadcast::channel::<u32>(4);
    let mut b = tx.subscribe();
    let mut c = tx.subscribe();
    let mut ra = Probe::new(a.recv());
    let mut rb = Probe::new(b.recv());
    ra.pending();
    rb.pending();
    assert_eq!(tx.send(1), Ok(3));
    assert_eq!((ra.wakes(), rb.wakes()), (1, 1));
    assert_eq!(ra.ready(), Ok(1));
    assert_eq!(rb.ready(), Ok(1));
    assert_eq!(c.try_recv(), Ok(1));
}

/// Panics when dropped if armed (its clones are not).
#[derive(Debug)]
struct Bomb(bool);

impl Clone for Bomb {
    fn clone(&self) -> Self {
        Bomb(false)
    }
}

impl Drop for Bomb {
    fn drop(&mut self) {
        if self.0 {
            panic!("the overwritten value's destructor panicked");
        }
    }
}

#[test]
fn broadcast_overwriting_a_value_whose_drop_panics_still_wakes_receivers() {
    let (tx, mut rx) = broadcast::channel(1);
    tx.send(Bomb(true)).unwrap();
    drop(rx.try_recv().unwrap());
    let mut recv = Probe::new(rx.recv());
    recv.pending();
    // The send overwrites the armed value; its panic reaches the sender...
    let sent = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| tx.send(Bomb(false))));
    assert!(sent.is_err());
    // ...after the receiver was told of the new value.
    assert_eq!(recv.wakes(), 1);
    assert!(!recv.ready().unwrap().0);
}

#[test]
fn broadcast_two_sends_before_the_woken_receiver_polls() {
    let (tx, mut rx) = broadcast::channel::<u32>(4);
    let mut r = Probe::new(rx.recv());
    r.pending();
    tx.send(1).unwrap();
    tx.send(2).unwrap();
    assert!(r.woken());
    assert_eq!(r.ready(), Ok(1));
    drop(r);
    assert_eq!(rx.try_recv(), Ok(2));
}

#[test]
fn broadcast_notified_recv_dropped_loses_nothing() {
    let (tx, mut a) = broadcast::channel::<u32>(4);
    let mut b = tx.subscribe();
    let mut ra = Probe::new(a.recv());
    let mut rb = Probe::new(b.recv());
    ra.pending();
    rb.pending();
    tx.send(1).unwrap();
    assert!(ra.woken());
    drop(ra);
    assert!(rb.woken());
    assert_eq!(rb.ready(), Ok(1));
    // The dropped receive did not move `a` on.
    assert_eq!(a.try_recv(), Ok(1));
}

#[test]
fn broadcast_lag_counts_are_exact() {
    use broadcast::error::{RecvError, TryRecvError};
    let (tx, mut slow) = broadcast::channel::<u32>(3);
    let mut fast = tx.subscribe();
    for i in 0..10 {
        tx.send(i).unwrap();
        assert_eq!(fast.try_recv(), Ok(i));
    }
    // Positions 0..10 sent, the ring holds 7, 8, 9: 7 missed.
    assert_eq!(slow.len(), 10);
    assert_eq!(slow.try_recv(), Err(TryRecvError::Lagged(7)));
    assert_eq!(slow.try_recv(), Ok(7));
    // Two more: the ring now holds 9, 10, 11; 8 (the next to read) was
    // overwritten by 11, so exactly one more was missed.
    tx.send(10).unwrap();
    tx.send(11).unwrap();
    let mut r = Probe::new(slow.recv());
    assert_eq!(r.ready(), Err(RecvError::Lagged(1)));
    drop(r);
    for want in [9, 10, 11] {
        assert_eq!(slow.try_recv(), Ok(want));
    }
    assert_eq!(slow.try_recv(), Err(TryRecvError::Empty));
    assert!(slow.is_empty());
}

#[test]
fn broadcast_lagging_receiver_waiting_gets_lagged_then_values() {
    use broadcast::error::RecvError;
    let (tx, mut rx) = broadcast::channel::<u32>(2);
    let mut r = Probe::new(rx.recv());
    r.pending();
    for i in 0..5 {
        tx.send(i).unwrap();
    }
    assert!(r.woken());
    // The wait was for position 0; 0..3 were overwritten.
    assert_eq!(r.ready(), Err(RecvError::Lagged(3)));
    drop(r);
    assert_eq!(rx.try_recv(), Ok(3));
    assert_eq!(rx.try_recv(), Ok(4));
}

#[test]
fn broadcast_closes_when_the_last_sender_drops() {
    use broadcast::error::{RecvError, TryRecvError};
    let (tx, mut rx) = broadcast::channel::<u32>(4);
    let tx2 = tx.clone();
    tx.send(1).unwrap();
    drop(tx);
    assert_eq!(rx.try_recv(), Ok(1));
    let mut r = Probe::new(rx.recv());
    r.pending();
    tx2.send(2).unwrap();
    assert_eq!(r.ready(), Ok(2));
    drop(r);
    let mut r = Probe::new(rx.recv());
    r.pending();
    tx2.send(3).unwrap();
    drop(tx2);
    // The value left comes first, then the end.
    assert_eq!(r.ready(), Ok(3));
    drop(r);
    let mut r = Probe::new(rx.recv());
    assert_eq!(r.ready(), Err(RecvError::Closed));
    drop(r);
    assert_eq!(rx.try_recv(), Err(TryRecvError::Closed));

    let (tx, mut rx) = broadcast::channel::<u32>(4);
    let mut r = Probe::new(rx.recv());
    r.pending();
    drop(tx);
    assert_eq!(r.wakes(), 1, "the last sender's drop must wake receivers");
    assert_eq!(r.ready(), Err(RecvError::Closed));
}

#[test]
fn broadcast_send_without_receivers_fails_with_the_value() {
    let (tx, rx) = broadcast::channel::<u32>(2);
    assert_eq!(tx.receiver_count(), 1);
    drop(rx);
    assert_eq!(tx.receiver_count(), 0);
    assert_eq!(tx.send(5).unwrap_err().into_inner(), 5);
    // A new subscriber starts with the next value sent.
    let mut rx = tx.subscribe();
    assert_eq!(tx.send(6), Ok(1));
    assert_eq!(rx.try_recv(), Ok(6));
}

#[test]
fn broadcast_subscribers_start_at_the_next_value() {
    let (tx, mut rx) = broadcast::channel::<u32>(4);
    tx.send(1).unwrap();
    let mut late = tx.subscribe();
    let mut re = rx.resubscribe();
    assert_eq!(rx.receiver_count(), 3);
    tx.send(2).unwrap();
    assert_eq!(rx.try_recv(), Ok(1));
    assert_eq!(rx.try_recv(), Ok(2));
    assert_eq!(late.try_recv(), Ok(2));
    assert_eq!(re.try_recv(), Ok(2));
    assert!(rx.same_channel(&re) && tx.same_channel(&tx.clone()));
}

#[test]
fn broadcast_overwritten_values_are_dropped() {
    let drops = Arc::new(AtomicUsize::new(0));
    #[derive(Clone)]
    struct C(Arc<AtomicUsize>);
    impl Drop for C {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let (tx, rx) = broadcast::channel::<C>(2);
    for _ in 0..5 {
        tx.send(C(drops.clone())).unwrap();
    }
    assert_eq!(drops.load(Ordering::SeqCst), 3);
    drop((tx, rx));
    assert_eq!(drops.load(Ordering::SeqCst), 5);
}

#[test]
fn broadcast_debug_and_display() {
    #[derive(Clone)]
    struct NoDebug;
    let (tx, rx) = broadcast::channel::<NoDebug>(1);
    assert!(format!("{tx:?} {rx:?}").contains("broadcast::Receiver"));
    assert_eq!(
        format!("{:?}", broadcast::error::SendError(NoDebug)),
        "SendError(..)"
    );
    assert_eq!(
        broadcast::error::TryRecvError::Lagged(2).to_string(),
        "channel lagged by 2"
    );
    assert_eq!(
        broadcast::error::RecvError::Closed.to_string(),
        "channel closed"
    );
}

#[test]
#[should_panic(expected = "broadcast channel capacity cannot be zero")]
fn broadcast_capacity_zero_panics() {
    let _ = broadcast::channel::<u8>(0);
}

// ------------------------------------------------------------------- watch

use coro_sync::watch;

#[test]
fn watch_types_are_send_sync() {
    assert_send_sync::<watch::Sender<u8>>();
    assert_send_sync::<watch::Receiver<u8>>();
    assert_send_sync::<coro_sync::futures::WatchChanged<'static, u8>>();
    assert_send_sync::<coro_sync::futures::WatchClosed<'static, u8>>();
}

#[test]
fn watch_sends_coalesce_into_one_change() {
    let (tx, mut rx) = watch::channel(0u32);
    let mut c = Probe::new(rx.changed());
    c.pending();
    tx.send(1).unwrap();
    tx.send(2).unwrap();
    tx.send(3).unwrap();
    assert_eq!(c.wakes(), 1);
    c.ready().unwrap();
    drop(c);
    // One change for the three sends, and it shows the latest value.
    assert_eq!(*rx.borrow(), 3);
    assert!(!rx.has_changed().unwrap());
    let mut c = Probe::new(rx.changed());
    c.pending();
    drop(c);
}

#[test]
fn watch_every_waiting_receiver_is_woken() {
    let (tx, mut a) = watch::channel(0u32);
    let mut b = a.clone();
    let mut c = tx.subscribe();
    let mut ca = Probe::new(a.changed());
    let mut cb = Probe::new(b.changed());
    let mut cc = Probe::new(c.changed());
    ca.pending();
    cb.pending();
    cc.pending();
    tx.send_modify(|v| *v += 1);
    assert!(ca.woken() && cb.woken() && cc.woken());
    ca.ready().unwrap();
    cb.ready().unwrap();
    drop(cc); // notified and dropped: `c` still sees the change
    drop((ca, cb));
    assert!(c.has_changed().unwrap());
    assert_eq!(*c.borrow_and_update(), 1);
    assert_eq!(*a.borrow(), 1);
}

#[test]
fn watch_borrow_and_update_marks_seen() {
    let (tx, mut rx) = watch::channel(String::from("a"));
    assert!(!rx.borrow().has_changed());
    tx.send("b".into()).unwrap();
    assert!(rx.borrow().has_changed());
    assert!(rx.has_changed().unwrap(), "borrow() must not mark seen");
    {
        let r = rx.borrow_and_update();
        assert!(r.has_changed());
        assert_eq!(*r, "b");
    }
    assert!(!rx.has_changed().unwrap());
    rx.mark_changed();
    assert!(rx.has_changed().unwrap());
    let mut c = Probe::new(rx.changed());
    c.ready().unwrap();
    drop(c);
    tx.send("c".into()).unwrap();
    rx.mark_unchanged();
    assert!(!rx.has_changed().unwrap());
    assert_eq!(*tx.borrow(), "c");
}

#[test]
fn watch_send_if_modified_notifies_only_on_true() {
    let (tx, mut rx) = watch::channel(1u32);
    let mut c = Probe::new(rx.changed());
    c.pending();
    assert!(!tx.send_if_modified(|_| false));
    assert!(!c.woken());
    assert!(tx.send_if_modified(|v| {
        *v = 2;
        true
    }));
    assert!(c.woken());
    c.ready().unwrap();
    drop(c);
    assert_eq!(tx.send_replace(3), 2);
}

#[test]
fn watch_last_sender_drop_reports_the_last_change_then_closes() {
    let (tx, mut rx) = watch::channel(0u32);
    let tx2 = tx.clone();
    let mut c = Probe::new(rx.changed());
    c.pending();
    drop(tx);
    assert!(!c.woken(), "a sender is left");
    tx2.send(1).unwrap();
    drop(tx2);
    assert!(c.woken());
    c.ready().unwrap(); // the unseen value first
    drop(c);
    assert!(rx.has_changed().is_err());
    let mut c = Probe::new(rx.changed());
    assert!(c.ready().is_err());
    drop(c);
    assert_eq!(*rx.borrow(), 1);

    let (tx, mut rx) = watch::channel(0u32);
    let mut c = Probe::new(rx.changed());
    c.pending();
    drop(tx);
    assert_eq!(c.wakes(), 1, "the last sender's drop must wake receivers");
    assert_eq!(c.ready().unwrap_err().to_string(), "channel closed");
}

#[test]
fn watch_send_fails_without_receivers_and_closed_wakes() {
    let (tx, rx) = watch::channel(0u32);
    let rx2 = rx.clone();
    assert_eq!(tx.receiver_count(), 2);
    let mut closed = Probe::new(tx.closed());
    closed.pending();
    drop(rx);
    assert!(!closed.woken(), "a receiver is left");
    drop(rx2);
    assert!(closed.woken());
    closed.ready();
    drop(closed);
    assert!(tx.is_closed());
    assert_eq!(tx.send(5).unwrap_err().into_inner(), 5);
    assert_eq!(*tx.borrow(), 0, "a failed send stores nothing");
    tx.send_replace(6);
    let rx = tx.subscribe();
    assert!(!rx.has_changed().unwrap());
    assert_eq!(*rx.borrow(), 6);
}

#[test]
fn watch_debug_without_t_debug() {
    let (tx, rx) = watch::channel(Opaque);
    let s = format!("{tx:?} {rx:?}");
    assert!(
        s.contains("watch::Sender") && s.contains("watch::Receiver"),
        "{s}"
    );
    assert_eq!(
        format!("{:?}", watch::error::SendError(Opaque)),
        "SendError(..)"
    );
    assert!(rx.same_channel(&rx.clone()) && tx.same_channel(&tx.clone()));
}

/// A sender that took the slots' priority (it waited over 1 ms) and is
/// then not polled for a while holds back only the one slot it asks for:
/// the other senders use the rest of a channel that has room.
#[test]
fn mpsc_an_unpolled_priority_sender_does_not_shut_out_the_others() {
    let (tx, mut rx) = mpsc::channel::<u32>(2);
    tx.try_send(1).unwrap();
    tx.try_send(2).unwrap();
    let mut a = Probe::new(tx.send(10));
    a.pending();
    std::thread::sleep(std::time::Duration::from_millis(3)); // `a` starves
    assert_eq!(rx.try_recv(), Ok(1)); // wakes `a`
    tx.try_send(3).unwrap(); // a newcomer takes the slot first
    a.pending(); // `a` claims the priority slot, and is not polled again
    assert_eq!(rx.try_recv(), Ok(2));
    assert_eq!(rx.try_recv(), Ok(3)); // empty: two slots free
    assert!(
        tx.try_send(4).is_ok(),
        "one unpolled waiter shut every sender out"
    );
    // The second free slot is the waiter's.
    assert!(tx.try_send(5).is_err(), "the waiter's slot was taken");
    assert!(a.woken());
    assert!(matches!(a.ready(), Ok(())));
    assert_eq!(rx.try_recv(), Ok(4));
    assert_eq!(rx.try_recv(), Ok(10));
}
