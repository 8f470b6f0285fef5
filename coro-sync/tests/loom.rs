//! loom models of the wake-up and hand-off paths: no wake-up lost when several
//! releases come before a woken waiter runs, none swallowed by a notified waiter
//! that is dropped, no lock or permit stranded with a cancelled waiter; and
//! the channels' closing races (last sender's drop, receiver's drop or close,
//! last permit) against a waiter, and each send's wake-up that is skipped when
//! nobody waits (broadcast, watch: with a sender alive, so no close hides
//! it). Run with
//! `LOOM_MAX_PREEMPTIONS=2 RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p coro-sync --features loom --test loom --release`
//! (its own target directory: the cfg changes every crate, and would otherwise
//! throw away the normal build).
//!
//! Under loom a lock waiter turns "starved" after one lost race, so the mutex
//! and semaphore models also cover the direct hand-off and priority paths.
#![cfg(loom)]
#![allow(missing_docs)]

use std::future::Future;
use std::pin::{Pin, pin};
use std::task::{Context, Poll};

use coro_sync::{
    Barrier, Condvar, Event, Latch, Mutex, Queue, RingBuffer, Semaphore, SharedMutex, broadcast,
    mpsc, oneshot, watch,
};
use futures::task::noop_waker;
use loom::future::block_on;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;
use std::sync::Arc;

/// Polls `fut` once with a no-op waker and drops it: a waiter that registers
/// (and may be notified) and then goes away.
fn poll_once_then_drop<F: Future>(fut: F) -> bool {
    let waker = noop_waker();
    let mut cx = Context::from_waker(&waker);
    let fut = pin!(fut);
    matches!(fut.poll(&mut cx), Poll::Ready(_))
}

#[test]
fn mutex_mutual_exclusion_and_handoff() {
    mutual_exclusion(Mutex::new);
}

/// The same where waiters never starve: the ordinary wait (listen again,
/// retry), which every waiter woken within the starvation bound takes.
#[test]
fn mutex_mutual_exclusion_without_starvation() {
    mutual_exclusion(Mutex::without_starvation_for_loom);
}

fn mutual_exclusion(make: fn(usize) -> Mutex<usize>) {
    loom::model(move || {
        let m = Arc::new(make(0));
        let inside = Arc::new(AtomicUsize::new(0));
        let ths: Vec<_> = (0..2)
            .map(|_| {
                let (m, inside) = (m.clone(), inside.clone());
                thread::spawn(move || {
                    block_on(async {
                        let mut g = m.lock().await;
                        assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0);
                        *g += 1;
                        inside.fetch_sub(1, Ordering::SeqCst);
                    })
                })
            })
            .collect();
        block_on(async {
            let mut g = m.lock().await;
            assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0);
            *g += 1;
            inside.fetch_sub(1, Ordering::SeqCst);
        });
        for t in ths {
            t.join().unwrap();
        }
        assert_eq!(*m.try_lock().expect("unlocked at the end"), 3);
    });
}

#[test]
fn mutex_waiter_dropped_while_notified() {
    waiter_dropped_while_notified(Mutex::new);
}

#[test]
fn mutex_waiter_dropped_while_notified_without_starvation() {
    waiter_dropped_while_notified(Mutex::without_starvation_for_loom);
}

fn waiter_dropped_while_notified(make: fn(()) -> Mutex<()>) {
    loom::model(move || {
        let m = Arc::new(make(()));
        let g = m.try_lock_arc().unwrap();
        let m1 = m.clone();
        let dropper = thread::spawn(move || {
            poll_once_then_drop(m1.lock());
        });
        let m2 = m.clone();
        let waiter = thread::spawn(move || {
            block_on(async {
                drop(m2.lock().await);
            })
        });
        drop(g);
        dropper.join().unwrap();
        waiter.join().unwrap();
        assert!(m.try_lock().is_some());
    });
}

/// A starved waiter that was handed the lock and is then cancelled must pass
/// the lock on (here: release it), not keep it reserved forever.
#[test]
fn mutex_starved_waiter_cancelled_after_handoff() {
    loom::model(|| {
        let m = Arc::new(Mutex::new(()));
        let cancel = Arc::new(Event::new(false));
        let g = m.try_lock_arc().unwrap();
        let (m1, c1) = (m.clone(), cancel.clone());
        let t = thread::spawn(move || {
            block_on(async {
                // Cancellation is polled first: when both are ready the lock
                // future is dropped with the hand-off pending.
                let c = pin!(c1.wait());
                let l = pin!(m1.lock());
                match futures::future::select(c, l).await {
                    futures::future::Either::Left(_) => false,
                    futures::future::Either::Right(_) => true,
                }
            })
        });
        drop(g);
        // Barge in once (allowed while nobody is starved), making the waiter starve.
        drop(m.try_lock());
        cancel.set();
        t.join().unwrap();
        assert!(
            m.try_lock().is_some(),
            "lock left reserved for a dropped waiter"
        );
    });
}

#[test]
fn semaphore_drop_while_notified_loses_no_permit() {
    loom::model(|| {
        let s = Arc::new(Semaphore::new(0));
        let s1 = s.clone();
        let dropper = thread::spawn(move || {
            poll_once_then_drop(s1.acquire());
        });
        let s2 = s.clone();
        let waiter = thread::spawn(move || {
            block_on(async {
                s2.acquire().await.unwrap().forget();
            })
        });
        s.add_permits(1);
        dropper.join().unwrap();
        waiter.join().unwrap();
        assert_eq!(s.available_permits(), 0);
    });
}

/// A release of one permit while a one-permit waiter and a two-permit
/// request sign up: the small waiter must get it. A release that wakes one
/// listener when it sees no big request must not find the big request's
/// listener among the first (it could not use the permit and would not
/// pass the wake-up on). Priority is off, so only the plain wake-ups count.
#[test]
fn semaphore_release_reaches_the_small_waiter_past_a_big_request() {
    loom::model(|| {
        let s = Arc::new(Semaphore::without_priority_for_loom(0));
        let s1 = s.clone();
        let big = thread::spawn(move || {
            block_on(async {
                s1.acquire_many(2).await.unwrap().forget();
            })
        });
        let s2 = s.clone();
        let small = thread::spawn(move || {
            block_on(async {
                s2.acquire().await.unwrap().forget();
            })
        });
        s.add_permits(1);
        small.join().unwrap();
        s.add_permits(2);
        big.join().unwrap();
        assert_eq!(s.available_permits(), 0);
    });
}

/// Two releases of one permit each before the first woken waiter runs: both
/// waiters (joined on one thread) must be woken, or the second one hangs with
/// a permit available.
#[test]
fn semaphore_two_releases_before_first_woken_waiter_runs() {
    loom::model(|| {
        let s = Arc::new(Semaphore::new(0));
        let s1 = s.clone();
        let waiters = thread::spawn(move || {
            block_on(async {
                let (a, b) = futures::join!(s1.acquire(), s1.acquire());
                a.unwrap().forget();
                b.unwrap().forget();
            })
        });
        s.add_permits(1);
        s.add_permits(1);
        waiters.join().unwrap();
        assert_eq!(s.available_permits(), 0);
    });
}

/// A waiter registered first is woken by one of two releases, then dropped
/// without being polled: its wake-up must reach one of the two waiters left,
/// and the other release the other one.
#[test]
fn semaphore_notified_then_dropped_after_two_releases() {
    loom::model(|| {
        let s = Arc::new(Semaphore::new(0));
        let waker = noop_waker();
        let mut first = Box::pin(s.acquire());
        assert!(
            first
                .as_mut()
                .poll(&mut Context::from_waker(&waker))
                .is_pending()
        );
        let s1 = s.clone();
        let waiters = thread::spawn(move || {
            block_on(async {
                let (a, b) = futures::join!(s1.acquire(), s1.acquire());
                a.unwrap().forget();
                b.unwrap().forget();
            })
        });
        s.add_permits(1);
        s.add_permits(1);
        drop(first);
        waiters.join().unwrap();
        assert_eq!(s.available_permits(), 0);
    });
}

/// A waiter holding the priority slot that is cancelled must give the slot
/// back, or every later acquire fails.
#[test]
fn semaphore_priority_waiter_cancelled() {
    loom::model(|| {
        let s = Arc::new(Semaphore::new(0));
        let cancel = Arc::new(Event::new(false));
        let (s1, c1) = (s.clone(), cancel.clone());
        let t = thread::spawn(move || {
            block_on(async {
                let c = pin!(c1.wait());
                let a = pin!(s1.acquire());
                match futures::future::select(c, a).await {
                    futures::future::Either::Left(_) => false,
                    futures::future::Either::Right((p, _)) => {
                        p.unwrap().forget();
                        true
                    }
                }
            })
        });
        s.add_permits(1);
        // Barge once, so the woken waiter loses and takes the priority slot.
        drop(s.try_acquire());
        cancel.set();
        let took = t.join().unwrap();
        assert_eq!(s.available_permits(), if took { 0 } else { 1 });
        if !took {
            assert!(s.try_acquire().is_ok(), "priority slot left behind");
        }
    });
}

/// `forget` racing a waiter that claims the priority slot for a request
/// the forget makes impossible (2 permits asked, 1 left in existence): the
/// waiter must not keep the slot, or the small acquire below waits for
/// ever.
#[test]
fn semaphore_forget_racing_a_priority_claim_leaves_the_slot_free() {
    loom::model(|| {
        let s = Arc::new(Semaphore::new(2));
        let a = s.try_acquire().unwrap();
        let s1 = s.clone();
        let big =
            thread::spawn(move || block_on(async { s1.acquire_many(2).await.unwrap().forget() }));
        // A release wakes the big request, which cannot fit and claims
        // the slot (under loom every waiter that loses is "starving").
        drop(s.try_acquire());
        a.forget();
        drop(block_on(s.acquire()).unwrap());
        s.add_permits(1);
        big.join().unwrap();
        assert_eq!(s.available_permits(), 0);
    });
}

/// The priority slot changes hands: its holder takes its permits (or
/// gives the slot up) while another waiter claims it. The new holder's
/// request must survive: a reset of the old one made after the release
/// overwrote it with "hold everything back", which shut every other
/// acquire out for as long as the new holder kept the slot.
#[test]
fn semaphore_priority_handover_keeps_the_next_request() {
    for leaves in [false, true] {
        loom::model(move || {
            let s = Arc::new(Semaphore::new(5));
            assert!(s.claim_priority_for_loom(2));
            let s1 = s.clone();
            let next = thread::spawn(move || s1.claim_priority_for_loom(1));
            assert!(s.priority_take_for_loom(if leaves { None } else { Some(2) }));
            let claimed = next.join().unwrap();
            if claimed {
                assert_eq!(s.priority_request_for_loom(), Some(1), "leaves: {leaves}");
                // Only that one permit is held back from the others.
                let rest = if leaves { 4 } else { 2 };
                assert!(s.try_acquire_many(rest).is_ok(), "leaves: {leaves}");
            }
        });
    }
}

#[test]
fn semaphore_many_and_close() {
    loom::model(|| {
        let s = Arc::new(Semaphore::new(1));
        let s1 = s.clone();
        let big = thread::spawn(move || {
            block_on(async { s1.acquire_many(2).await.map(|p| p.permits()) })
        });
        let p = s.try_acquire();
        drop(p);
        s.add_permits(1);
        // Either the two permits were taken together, or not at all.
        let got = big.join().unwrap();
        assert_eq!(got, Ok(2));
        assert_eq!(s.available_permits(), 2);
        s.close();
        assert!(block_on(s.acquire()).is_err());
    });
}

#[test]
fn event_set_reset_wait() {
    loom::model(|| {
        let e = Arc::new(Event::new(false));
        let e1 = e.clone();
        let waiter = thread::spawn(move || block_on(e1.wait()));
        let e2 = e.clone();
        let toggler = thread::spawn(move || {
            e2.reset();
            e2.set();
        });
        e.set();
        toggler.join().unwrap();
        waiter.join().unwrap();
        assert!(e.is_set());
    });
}

#[test]
fn latch_count_down_wakes() {
    loom::model(|| {
        let l = Arc::new(Latch::new(2));
        let l1 = l.clone();
        let waiter = thread::spawn(move || block_on(l1.wait()));
        let l2 = l.clone();
        let t = thread::spawn(move || l2.count_down(1));
        l.count_down(1);
        t.join().unwrap();
        waiter.join().unwrap();
        assert!(l.is_ready());
    });
}

#[test]
fn ring_buffer_push_pop_close() {
    loom::model(|| {
        let rb = Arc::new(RingBuffer::<usize, 1>::new());
        let rb1 = rb.clone();
        let producer = thread::spawn(move || {
            block_on(async {
                let mut sent = 0;
                for i in 0..2 {
                    if rb1.push(i).await.is_ok() {
                        sent += 1;
                    }
                }
                sent
            })
        });
        let rb2 = rb.clone();
        let consumer = thread::spawn(move || {
            block_on(async {
                let mut got = Vec::new();
                while let Ok(v) = rb2.pop().await {
                    got.push(v);
                }
                got
            })
        });
        let sent = producer.join().unwrap();
        rb.close();
        let got = consumer.join().unwrap();
        assert_eq!(sent, 2);
        assert_eq!(got, [0, 1]);
    });
}

#[test]
fn ring_buffer_close_races_push() {
    loom::model(|| {
        let rb = Arc::new(RingBuffer::<usize, 1>::new());
        let rb1 = rb.clone();
        let producer = thread::spawn(move || {
            block_on(async {
                let mut sent = 0;
                for i in 0..2 {
                    match rb1.push(i).await {
                        Ok(()) => sent += 1,
                        Err(e) => assert_eq!(e.into_inner(), i),
                    }
                }
                sent
            })
        });
        rb.close();
        let sent = producer.join().unwrap();
        let mut drained = 0;
        while rb.try_pop().is_ok() {
            drained += 1;
        }
        assert_eq!(sent, drained);
    });
}

#[test]
fn shared_mutex_reader_writer() {
    loom::model(|| {
        let m = Arc::new(SharedMutex::new(0usize));
        let m1 = m.clone();
        let writer = thread::spawn(move || {
            block_on(async {
                *m1.write().await += 1;
            })
        });
        let seen = block_on(async { *m.read().await });
        assert!(seen <= 1);
        writer.join().unwrap();
        assert_eq!(*m.try_read().unwrap(), 1);
    });
}

/// Readers a leaving writer lets in (counted while they wait), against a
/// second writer and a reader that waits once and goes away (maybe after
/// it was let in): no one hangs, writers see no reader inside, and every
/// read lock comes back.
#[test]
fn shared_mutex_readers_let_in_by_a_leaving_writer() {
    loom::model(|| {
        let m = Arc::new(SharedMutex::new(0usize));
        let readers = Arc::new(AtomicUsize::new(0));
        let (m1, r1) = (m.clone(), readers.clone());
        let writer = thread::spawn(move || {
            block_on(async {
                let mut g = m1.write().await;
                assert_eq!(r1.load(Ordering::SeqCst), 0, "a reader inside");
                *g += 1;
            })
        });
        let (m2, r2) = (m.clone(), readers.clone());
        let reader = thread::spawn(move || {
            poll_once_then_drop(m2.read());
            block_on(async {
                let g = m2.read().await;
                r2.fetch_add(1, Ordering::SeqCst);
                let seen = *g;
                r2.fetch_sub(1, Ordering::SeqCst);
                seen
            })
        });
        block_on(async {
            let mut g = m.write().await;
            assert_eq!(readers.load(Ordering::SeqCst), 0, "a reader inside");
            *g += 1;
        });
        writer.join().unwrap();
        assert!(reader.join().unwrap() <= 2);
        assert_eq!(*m.try_write().expect("every lock came back"), 2);
    });
}

/// The skipped-notify fast path (push with no registered consumer) against a
/// consumer registering, plus a consumer that may be notified and dropped.
#[test]
fn queue_push_pop_with_dropped_consumer() {
    loom::model(|| {
        let q = Arc::new(Queue::new());
        let q1 = q.clone();
        let dropper = thread::spawn(move || poll_once_then_drop(q1.pop()));
        let q2 = q.clone();
        let consumer = thread::spawn(move || block_on(q2.pop()).unwrap());
        q.push(1).unwrap();
        q.push(2).unwrap();
        let dropper_took = usize::from(dropper.join().unwrap());
        let got = consumer.join().unwrap();
        assert!(got == 1 || got == 2);
        assert_eq!(dropper_took + 1 + q.len(), 2, "item lost or duplicated");
    });
}

/// The waiter registers before it releases the mutex, so a notification sent
/// by a task that then took the mutex cannot be missed.
#[test]
fn condvar_no_lost_notification() {
    no_lost_notification(Mutex::new);
}

/// The same with the mutex's ordinary wait (no waiter starves).
#[test]
fn condvar_no_lost_notification_without_starvation() {
    no_lost_notification(Mutex::without_starvation_for_loom);
}

fn no_lost_notification(make: fn(bool) -> Mutex<bool>) {
    loom::model(move || {
        let state = Arc::new((make(false), Condvar::new()));
        let s1 = state.clone();
        let setter = thread::spawn(move || {
            block_on(async {
                let (m, cv) = &*s1;
                *m.lock().await = true;
                cv.notify_one();
            })
        });
        block_on(async {
            let (m, cv) = &*state;
            let g = cv.wait_while(m.lock().await, |ready| !*ready).await;
            assert!(*g);
        });
        setter.join().unwrap();
    });
}

/// Two `notify_one` for two tokens; the oldest waiter is notified and then
/// dropped unpolled: its notification must pass on, so that both waiters
/// left (joined on one thread) get a token.
#[test]
fn condvar_notified_then_dropped_after_two_notify_one() {
    loom::model(|| {
        let state = Arc::new((Mutex::new(0usize), Condvar::new()));
        let (m, cv) = &*state;
        let waker = noop_waker();
        let mut first = Box::pin(cv.wait(m.try_lock().unwrap()));
        assert!(
            first
                .as_mut()
                .poll(&mut Context::from_waker(&waker))
                .is_pending()
        );
        let s1 = state.clone();
        let waiters = thread::spawn(move || {
            block_on(async {
                let (m, cv) = &*s1;
                let take = || async {
                    let mut g = cv.wait_while(m.lock().await, |tokens| *tokens == 0).await;
                    *g -= 1;
                };
                futures::join!(take(), take());
            })
        });
        for _ in 0..2 {
            *block_on(m.lock()) += 1;
            cv.notify_one();
        }
        drop(first);
        waiters.join().unwrap();
        assert_eq!(*m.try_lock().unwrap(), 0);
    });
}

#[test]
fn barrier_releases_all_with_one_leader() {
    loom::model(|| {
        let b = Arc::new(Barrier::new(2));
        let b1 = b.clone();
        let t = thread::spawn(move || block_on(b1.wait()).is_leader());
        let me = block_on(b.wait()).is_leader();
        let other = t.join().unwrap();
        assert!(me ^ other, "exactly one leader");
    });
}

/// `add_permits` past `MAX_PERMITS` panics; no other thread may ever see the
/// count it refused (wrapped, here to 0) in between.
#[test]
fn semaphore_add_permits_overflow_is_never_published() {
    quiet_expected_panics();
    loom::model(|| {
        let s = Arc::new(Semaphore::new(Semaphore::MAX_PERMITS - 1));
        let s1 = s.clone();
        let adder = thread::spawn(move || {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| s1.add_permits(2)));
            assert!(r.is_err(), "overflowing add_permits must panic");
        });
        assert_eq!(
            s.available_permits(),
            Semaphore::MAX_PERMITS - 1,
            "another thread saw a count add_permits refused"
        );
        adder.join().unwrap();
        assert_eq!(s.available_permits(), Semaphore::MAX_PERMITS - 1);
    });
}

/// Keeps the expected "too many permits" panics of the overflow model out of
/// the output; every other panic is reported as usual.
fn quiet_expected_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let expected = info
                .payload()
                .downcast_ref::<&str>()
                .is_some_and(|m| m.contains("too many permits"));
            if !expected {
                previous(info);
            }
        }));
    });
}

/// The last sender's drop races a receiver that is about to wait: the
/// receiver must get the value sent before the drop and then `None`, never
/// hang (the drop's wake-up lost) nor end early (the value missed).
#[test]
fn mpsc_last_sender_drop_vs_waiting_receiver() {
    loom::model(|| {
        let (tx, mut rx) = mpsc::channel::<usize>(1);
        let tx2 = tx.clone();
        let a = thread::spawn(move || {
            block_on(tx.send(1)).unwrap();
        });
        let b = thread::spawn(move || drop(tx2));
        let got = block_on(async {
            let mut got = Vec::new();
            while let Some(v) = rx.recv().await {
                got.push(v);
            }
            got
        });
        a.join().unwrap();
        b.join().unwrap();
        assert_eq!(got, [1]);
    });
}

/// The same race on the unbounded channel, whose end is the queue's close.
#[test]
fn mpsc_unbounded_last_sender_drop_vs_waiting_receiver() {
    loom::model(|| {
        let (tx, mut rx) = mpsc::unbounded_channel::<usize>();
        let a = thread::spawn(move || {
            tx.send(1).unwrap();
        });
        let got = block_on(async {
            let mut got = Vec::new();
            while let Some(v) = rx.recv().await {
                got.push(v);
            }
            got
        });
        a.join().unwrap();
        assert_eq!(got, [1]);
    });
}

/// A sender blocked on a full channel is woken by the receive that frees
/// the slot, whichever runs first.
#[test]
fn mpsc_full_channel_sender_woken_by_recv() {
    loom::model(|| {
        let (tx, mut rx) = mpsc::channel::<usize>(1);
        tx.try_send(1).unwrap();
        let sender = thread::spawn(move || {
            block_on(tx.send(2)).unwrap();
            tx.capacity()
        });
        assert_eq!(block_on(rx.recv()), Some(1));
        assert_eq!(block_on(rx.recv()), Some(2));
        assert!(sender.join().unwrap() <= 1);
        assert_eq!(block_on(rx.recv()), None);
    });
}

/// A permit is the last thing keeping a closed channel open: the receiver
/// must get its value, or be woken by its unused drop to see the end.
#[test]
fn mpsc_closed_receiver_waits_for_the_last_permit() {
    for send in [true, false] {
        loom::model(move || {
            let (tx, mut rx) = mpsc::channel::<usize>(1);
            let tx = Arc::new(tx);
            let permit_holder = {
                let tx = tx.clone();
                thread::spawn(move || {
                    if let Ok(p) = tx.try_reserve() {
                        if send {
                            p.send(7);
                        } else {
                            drop(p);
                        }
                    }
                })
            };
            rx.close();
            let got = block_on(async {
                let mut got = Vec::new();
                while let Some(v) = rx.recv().await {
                    got.push(v);
                }
                got
            });
            permit_holder.join().unwrap();
            // The reservation came before the close (its value, if sent, is
            // delivered) or failed.
            assert!(got.is_empty() || (send && got == [7]));
            assert_eq!(tx.capacity(), 1);
        });
    }
}

/// A oneshot send racing the receiver's drop: the value is either handed
/// back by `send` or was accepted (and is then dropped with the receiver's
/// side), exactly once either way.
#[test]
fn oneshot_send_vs_receiver_drop() {
    loom::model(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        struct D(Arc<AtomicUsize>);
        impl Drop for D {
            fn drop(&mut self) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let (tx, rx) = oneshot::channel::<D>();
        let d = drops.clone();
        let sender = thread::spawn(move || match tx.send(D(d)) {
            Ok(()) => true,
            Err(v) => {
                drop(v);
                false
            }
        });
        drop(rx);
        let _accepted = sender.join().unwrap();
        assert_eq!(
            drops.load(Ordering::SeqCst),
            1,
            "value lost or dropped twice"
        );
    });
}

/// A value sent, whose receiver is dropped as the send returns: it is
/// dropped on the receiver's side, never inside the `send` that returned
/// `Ok` (as tokio's).
#[test]
fn oneshot_value_is_dropped_on_the_receivers_side() {
    loom::model(|| {
        type DroppedBy = Arc<loom::sync::Mutex<Option<thread::ThreadId>>>;
        struct D(DroppedBy);
        impl Drop for D {
            fn drop(&mut self) {
                *self.0.lock().unwrap() = Some(thread::current().id());
            }
        }
        let dropped_by: DroppedBy = Arc::new(loom::sync::Mutex::new(None));
        let (tx, rx) = oneshot::channel::<D>();
        let d = dropped_by.clone();
        let sender = thread::spawn(move || {
            let ok = tx.send(D(d)).is_ok();
            (ok, thread::current().id())
        });
        drop(rx);
        let (ok, sender_id) = sender.join().unwrap();
        if ok {
            assert_ne!(
                *dropped_by.lock().unwrap(),
                Some(sender_id),
                "a sent value was dropped inside send"
            );
        }
    });
}

/// A oneshot send racing `close` with a waiting receiver: the receiver gets
/// the value exactly when the send reports success.
#[test]
fn oneshot_send_vs_close_and_wait() {
    loom::model(|| {
        let (tx, mut rx) = oneshot::channel::<usize>();
        let sender = thread::spawn(move || tx.send(1).is_ok());
        rx.close();
        let got = block_on(&mut rx);
        let sent = sender.join().unwrap();
        assert_eq!(got.is_ok(), sent);
    });
}

/// A oneshot receiver that waits (listens) while the value is sent from
/// another thread is woken: the sender's "does anyone listen" check and the
/// receiver's registration race on one state word.
#[test]
fn oneshot_send_wakes_a_waiting_receiver() {
    loom::model(|| {
        let (tx, rx) = oneshot::channel::<usize>();
        let sender = thread::spawn(move || tx.send(5).is_ok());
        assert_eq!(block_on(rx), Ok(5));
        assert!(sender.join().unwrap());
    });
}

/// A sender dropped without sending wakes a waiting receiver with an error.
#[test]
fn oneshot_sender_drop_wakes_a_waiting_receiver() {
    loom::model(|| {
        let (tx, rx) = oneshot::channel::<usize>();
        let sender = thread::spawn(move || drop(tx));
        assert!(block_on(rx).is_err());
        sender.join().unwrap();
    });
}

/// A receiver dropped on another thread wakes `Sender::closed()`.
#[test]
fn oneshot_receiver_drop_wakes_closed() {
    loom::model(|| {
        let (tx, rx) = oneshot::channel::<usize>();
        let receiver = thread::spawn(move || drop(rx));
        block_on(tx.closed());
        assert!(tx.is_closed());
        receiver.join().unwrap();
    });
}

/// A broadcast send racing a waiting receiver and the last sender's drop.
#[test]
fn broadcast_send_then_close_vs_waiting_receiver() {
    loom::model(|| {
        let (tx, mut rx) = broadcast::channel::<usize>(1);
        let sender = thread::spawn(move || {
            tx.send(1).unwrap();
        });
        assert_eq!(block_on(rx.recv()), Ok(1));
        assert_eq!(
            block_on(rx.recv()),
            Err(broadcast::error::RecvError::Closed)
        );
        sender.join().unwrap();
    });
}

/// watch: a send and the last sender's drop racing `changed()`: the
/// receiver sees the change (then the close), never misses it.
#[test]
fn watch_send_then_close_vs_changed() {
    loom::model(|| {
        let (tx, mut rx) = watch::channel(0usize);
        let sender = thread::spawn(move || {
            tx.send(1).unwrap();
        });
        block_on(rx.changed()).unwrap();
        assert_eq!(*rx.borrow_and_update(), 1);
        assert!(block_on(rx.changed()).is_err());
        sender.join().unwrap();
    });
}

/// A broadcast send wakes a receiver that waits, while another sender
/// lives: in the model above the last sender's drop wakes everyone and
/// would hide a send that skipped its wake-up (`send` skips it when it
/// counts no waiter, a fast path that needs a model of its own).
#[test]
fn broadcast_send_wakes_a_waiting_receiver_while_a_sender_lives() {
    loom::model(|| {
        let (tx, mut rx) = broadcast::channel::<usize>(1);
        let tx = Arc::new(tx);
        let sender = {
            let tx = tx.clone();
            thread::spawn(move || {
                tx.send(1).unwrap();
            })
        };
        assert_eq!(block_on(rx.recv()), Ok(1));
        sender.join().unwrap();
        drop(tx);
    });
}

/// watch: the same for `changed()`, with a sender alive throughout.
#[test]
fn watch_send_wakes_changed_while_a_sender_lives() {
    loom::model(|| {
        let (tx, mut rx) = watch::channel(0usize);
        let tx = Arc::new(tx);
        let sender = {
            let tx = tx.clone();
            thread::spawn(move || {
                tx.send(1).unwrap();
            })
        };
        block_on(rx.changed()).unwrap();
        assert_eq!(*rx.borrow_and_update(), 1);
        sender.join().unwrap();
        drop(tx);
    });
}

/// A waiter of the first set is dropped after it was notified, unpolled
/// (the waiter list passes its wake-up on), while another waiter that began
/// after the reset waits: it must not take the passed-on wake-up for a set
/// of its own and end before the second set.
#[test]
fn event_wake_passed_on_across_a_reset_reaches_the_next_set() {
    loom::model(|| {
        let e = Arc::new(Event::new(false));
        // 1: the first set is over; 2: the reset too; 3: the second set
        // is about to begin.
        let phase = Arc::new(AtomicUsize::new(0));
        let (e2, p2) = (e.clone(), phase.clone());
        let waiter = thread::spawn(move || {
            let began = p2.load(Ordering::SeqCst);
            block_on(e2.wait());
            let ended = p2.load(Ordering::SeqCst);
            assert!(
                !(began == 2 && ended == 2),
                "a wait begun after the reset ended before the next set"
            );
        });
        let waker = noop_waker();
        let mut first = Box::pin(e.wait());
        let polled = first.as_mut().poll(&mut Context::from_waker(&waker));
        assert!(polled.is_pending());
        e.set();
        phase.store(1, Ordering::SeqCst);
        e.reset();
        phase.store(2, Ordering::SeqCst);
        drop(first);
        phase.store(3, Ordering::SeqCst);
        e.set();
        waiter.join().unwrap();
    });
}

/// A queue closed while a pop and a stream both wait on it (each on its
/// own list): both end, the pop with `Closed`, the stream with `None`.
#[test]
fn queue_close_ends_a_waiting_pop_and_a_waiting_stream() {
    use futures::StreamExt;
    loom::model(|| {
        let q = Arc::new(Queue::<u32>::new());
        let q1 = q.clone();
        let pop = thread::spawn(move || block_on(q1.pop()).is_err());
        let q2 = q.clone();
        let stream = thread::spawn(move || block_on(q2.stream().next()).is_none());
        q.close();
        assert!(
            pop.join().unwrap(),
            "a pop of a closed, empty queue got an item"
        );
        assert!(
            stream.join().unwrap(),
            "the stream of a closed queue went on"
        );
    });
}

/// A writer that began to wait for the readers to leave (it already keeps
/// new readers out) is dropped: a reader that waits meanwhile must get in,
/// and the lock must end free.
#[test]
fn shared_mutex_writer_dropped_while_draining_strands_no_reader() {
    loom::model(|| {
        let m = Arc::new(SharedMutex::new(0u32));
        let r = m.try_read().expect("free at first");
        let m1 = m.clone();
        let writer = thread::spawn(move || {
            poll_once_then_drop(m1.write());
        });
        let m2 = m.clone();
        let reader = thread::spawn(move || {
            let g = block_on(m2.read());
            assert_eq!(*g, 0);
        });
        writer.join().unwrap();
        drop(r);
        reader.join().unwrap();
        assert!(m.try_write().is_some(), "the lock was left held");
    });
}

/// Counts its wake-ups, visibly to loom.
struct CountingWaker(AtomicUsize);

impl std::task::Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A waiter re-polled with a new waker while another thread wakes it: the
/// waiter list swaps the waker in its entry under its lock, and a
/// notification takes whichever is there. Either the second poll sees the
/// event, or the second waker is woken: never neither.
#[test]
fn event_waiter_repolled_with_a_new_waker_while_set() {
    loom::model(|| {
        let e = Arc::new(Event::new(false));
        let setter = {
            let e = e.clone();
            thread::spawn(move || e.set())
        };
        let (first, second) = (
            Arc::new(CountingWaker(AtomicUsize::new(0))),
            Arc::new(CountingWaker(AtomicUsize::new(0))),
        );
        let mut wait = Box::pin(e.wait());
        let w1 = std::task::Waker::from(first.clone());
        let r1 = wait.as_mut().poll(&mut Context::from_waker(&w1));
        let r2 = if r1.is_pending() {
            let w2 = std::task::Waker::from(second.clone());
            wait.as_mut().poll(&mut Context::from_waker(&w2))
        } else {
            Poll::Ready(())
        };
        setter.join().unwrap();
        if r2.is_pending() {
            assert_eq!(
                second.0.load(Ordering::SeqCst),
                1,
                "the new waker was not woken"
            );
        }
    });
}

/// The waiter list itself: the first of two waiters is polled once and
/// dropped on one thread while another thread notifies one waiter. Unless
/// that poll took the notification, it must reach the second waiter
/// (passed on by the first's drop, or given to it directly).
#[test]
fn waiters_notified_waiter_dropped_while_another_waits() {
    use coro_sync::__private::Waiters;
    loom::model(|| {
        let list = Arc::new(Waiters::new());
        let first = list.listen();
        let mut second = list.listen();
        let dropper = thread::spawn(move || poll_once_then_drop(first));
        let l = list.clone();
        let notifier = thread::spawn(move || {
            l.notify(1);
        });
        let took = dropper.join().unwrap();
        notifier.join().unwrap();
        if took {
            let waker = noop_waker();
            let mut cx = Context::from_waker(&waker);
            assert!(
                Pin::new(&mut second).poll(&mut cx).is_pending(),
                "one notification reached two waiters"
            );
        } else {
            block_on(second);
        }
    });
}

/// A waiter registers and re-checks a flag another thread sets before it
/// notifies: the fast path that skips the lock when nobody waits must not
/// skip this waiter (a fence on each side).
#[test]
fn waiters_listen_races_a_notify_that_skips_the_lock() {
    use coro_sync::__private::Waiters;
    loom::model(|| {
        let list = Arc::new(Waiters::new());
        let flag = Arc::new(AtomicUsize::new(0));
        let (l, f) = (list.clone(), flag.clone());
        let setter = thread::spawn(move || {
            f.store(1, Ordering::Relaxed);
            l.notify_additional(1);
        });
        let waiter = list.listen();
        if flag.load(Ordering::Relaxed) == 0 {
            block_on(waiter);
        }
        setter.join().unwrap();
    });
}
