//! coro-sync micro-benchmarks against `tokio::sync`, `async-lock`,
//! `async-channel` (and `std::sync::Mutex` for the uncontended lock), in the
//! same run. The channel modules (`coro::sync::{mpsc, oneshot, broadcast}`)
//! run the same workload as their `tokio::sync` namesakes, row by row.
//!
//! `cargo bench --bench sync` (docs/BENCHMARKS.md has the short run used there).

// `criterion_group!` generates an undocumented pub fn.
#![allow(missing_docs)]

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// Polls a future that is expected to be ready at once (uncontended paths),
/// without an executor in the measurement.
fn now<F: Future>(f: F) -> F::Output {
    let mut cx = Context::from_waker(Waker::noop());
    match pin!(f).poll(&mut cx) {
        Poll::Ready(v) => v,
        Poll::Pending => unreachable!("uncontended operation suspended"),
    }
}

fn rt2() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap()
}

fn config(g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(2));
    g.sample_size(20);
}

fn uncontended_lock(c: &mut Criterion) {
    let mut g = c.benchmark_group("mutex_uncontended_lock_unlock");
    config(&mut g);
    let std_m = std::sync::Mutex::new(0u64);
    g.bench_function("std::sync::Mutex", |b| {
        b.iter(|| *black_box(&std_m).lock().unwrap() += 1)
    });
    let m = coro::sync::Mutex::new(0u64);
    g.bench_function("coro::sync::Mutex", |b| {
        b.iter(|| *now(black_box(&m).lock()) += 1)
    });
    let m = tokio::sync::Mutex::new(0u64);
    g.bench_function("tokio::sync::Mutex", |b| {
        b.iter(|| *now(black_box(&m).lock()) += 1)
    });
    let m = async_lock::Mutex::new(0u64);
    g.bench_function("async_lock::Mutex", |b| {
        b.iter(|| *now(black_box(&m).lock()) += 1)
    });
    g.finish();
}

/// `tasks` tasks on a 2-thread runtime share `ROUNDS` lock rounds in total.
fn contended_lock(c: &mut Criterion) {
    const ROUNDS: u64 = 20_000;
    let rt = rt2();
    for tasks in [8u64, 64] {
        let mut g = c.benchmark_group(format!("mutex_contended_{tasks}_tasks"));
        config(&mut g);
        g.throughput(Throughput::Elements(ROUNDS));
        macro_rules! run {
            ($name:expr, $new:expr) => {
                g.bench_function($name, |b| {
                    b.iter(|| {
                        rt.block_on(async {
                            let m = Arc::new($new);
                            let hs: Vec<_> = (0..tasks)
                                .map(|_| {
                                    let m = m.clone();
                                    tokio::spawn(async move {
                                        for _ in 0..ROUNDS / tasks {
                                            *m.lock().await += 1;
                                        }
                                    })
                                })
                                .collect();
                            for h in hs {
                                h.await.unwrap();
                            }
                        })
                    })
                });
            };
        }
        run!("coro::sync::Mutex", coro::sync::Mutex::new(0u64));
        run!("tokio::sync::Mutex", tokio::sync::Mutex::new(0u64));
        run!("async_lock::Mutex", async_lock::Mutex::new(0u64));
        g.finish();
    }
}

fn semaphore(c: &mut Criterion) {
    let mut g = c.benchmark_group("semaphore_acquire_release");
    config(&mut g);
    let s = coro::sync::Semaphore::new(4);
    g.bench_function("coro::sync::Semaphore", |b| {
        b.iter(|| drop(now(black_box(&s).acquire()).unwrap()))
    });
    let s = tokio::sync::Semaphore::new(4);
    g.bench_function("tokio::sync::Semaphore", |b| {
        b.iter(|| drop(now(black_box(&s).acquire()).unwrap()))
    });
    let s = async_lock::Semaphore::new(4);
    g.bench_function("async_lock::Semaphore", |b| {
        b.iter(|| drop(now(black_box(&s).acquire())))
    });
    g.finish();
}

const ITEMS: u64 = 20_000;
const CAP: usize = 1024;

/// A bounded or unbounded channel shape the benchmarks drive.
trait Chan: Send + Sync + 'static {
    fn send(&self, v: u64) -> impl Future<Output = ()> + Send;
    fn recv(&self) -> impl Future<Output = Option<u64>> + Send;
    fn close(&self);
}

struct CoroRing(coro::sync::RingBuffer<u64, CAP>);
impl Chan for CoroRing {
    async fn send(&self, v: u64) {
        self.0.push(v).await.unwrap()
    }
    async fn recv(&self) -> Option<u64> {
        self.0.pop().await.ok()
    }
    fn close(&self) {
        self.0.close();
    }
}

struct CoroQueue(coro::sync::Queue<u64>);
impl Chan for CoroQueue {
    async fn send(&self, v: u64) {
        self.0.push(v).unwrap()
    }
    async fn recv(&self) -> Option<u64> {
        self.0.pop().await.ok()
    }
    fn close(&self) {
        self.0.close();
    }
}

struct AsyncChannel(async_channel::Sender<u64>, async_channel::Receiver<u64>);
impl Chan for AsyncChannel {
    async fn send(&self, v: u64) {
        self.0.send(v).await.unwrap()
    }
    async fn recv(&self) -> Option<u64> {
        self.1.recv().await.ok()
    }
    fn close(&self) {
        self.0.close();
    }
}

/// Producers and consumers on a 2-thread runtime; every item is received once.
fn pump<C: Chan>(rt: &tokio::runtime::Runtime, chan: C, producers: u64, consumers: u64) {
    rt.block_on(async {
        let chan = Arc::new(chan);
        let ps: Vec<_> = (0..producers)
            .map(|_| {
                let chan = chan.clone();
                tokio::spawn(async move {
                    for i in 0..ITEMS / producers {
                        chan.send(i).await;
                    }
                })
            })
            .collect();
        let cs: Vec<_> = (0..consumers)
            .map(|_| {
                let chan = chan.clone();
                tokio::spawn(async move {
                    let mut n = 0u64;
                    while chan.recv().await.is_some() {
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        for p in ps {
            p.await.unwrap();
        }
        chan.close();
        let mut total = 0;
        for c in cs {
            total += c.await.unwrap();
        }
        assert_eq!(total, ITEMS / producers * producers);
    })
}

/// One producer, one consumer through an mpsc channel (tokio's and coro's
/// have the same API: the same code runs both). SPSC rows only, since mpsc
/// has one consumer.
macro_rules! pump_mpsc_bounded {
    ($rt:expr, $mpsc:path) => {{
        use $mpsc as mpsc;
        $rt.block_on(async {
            let (tx, mut rx) = mpsc::channel::<u64>(CAP);
            let p = tokio::spawn(async move {
                for i in 0..ITEMS {
                    tx.send(i).await.unwrap();
                }
            });
            let c = tokio::spawn(async move {
                let mut n = 0;
                while rx.recv().await.is_some() {
                    n += 1;
                }
                n
            });
            p.await.unwrap();
            assert_eq!(c.await.unwrap(), ITEMS);
        })
    }};
}

macro_rules! pump_mpsc_unbounded {
    ($rt:expr, $mpsc:path) => {{
        use $mpsc as mpsc;
        $rt.block_on(async {
            let (tx, mut rx) = mpsc::unbounded_channel::<u64>();
            let p = tokio::spawn(async move {
                for i in 0..ITEMS {
                    tx.send(i).unwrap();
                }
            });
            let c = tokio::spawn(async move {
                let mut n = 0;
                while rx.recv().await.is_some() {
                    n += 1;
                }
                n
            });
            p.await.unwrap();
            assert_eq!(c.await.unwrap(), ITEMS);
        })
    }};
}

fn pump_tokio_bounded(rt: &tokio::runtime::Runtime) {
    pump_mpsc_bounded!(rt, tokio::sync::mpsc)
}

fn pump_tokio_unbounded(rt: &tokio::runtime::Runtime) {
    pump_mpsc_unbounded!(rt, tokio::sync::mpsc)
}

fn pump_coro_bounded(rt: &tokio::runtime::Runtime) {
    pump_mpsc_bounded!(rt, coro::sync::mpsc)
}

fn pump_coro_unbounded(rt: &tokio::runtime::Runtime) {
    pump_mpsc_unbounded!(rt, coro::sync::mpsc)
}

fn channels(c: &mut Criterion) {
    let rt = rt2();
    for (label, p, q) in [("spsc", 1u64, 1u64), ("mpmc_4x4", 4, 4)] {
        let mut g = c.benchmark_group(format!("bounded_{label}"));
        config(&mut g);
        g.throughput(Throughput::Elements(ITEMS));
        g.bench_function("coro::sync::RingBuffer", |b| {
            b.iter(|| pump(&rt, CoroRing(coro::sync::RingBuffer::new()), p, q))
        });
        g.bench_function("async_channel::bounded", |b| {
            b.iter(|| {
                let (tx, rx) = async_channel::bounded(CAP);
                pump(&rt, AsyncChannel(tx, rx), p, q)
            })
        });
        if q == 1 {
            g.bench_function("tokio::sync::mpsc::channel", |b| {
                b.iter(|| pump_tokio_bounded(&rt))
            });
            g.bench_function("coro::sync::mpsc::channel", |b| {
                b.iter(|| pump_coro_bounded(&rt))
            });
        }
        g.finish();

        let mut g = c.benchmark_group(format!("unbounded_{label}"));
        config(&mut g);
        g.throughput(Throughput::Elements(ITEMS));
        g.bench_function("coro::sync::Queue", |b| {
            b.iter(|| pump(&rt, CoroQueue(coro::sync::Queue::new()), p, q))
        });
        g.bench_function("async_channel::unbounded", |b| {
            b.iter(|| {
                let (tx, rx) = async_channel::unbounded();
                pump(&rt, AsyncChannel(tx, rx), p, q)
            })
        });
        if q == 1 {
            g.bench_function("tokio::sync::mpsc::unbounded_channel", |b| {
                b.iter(|| pump_tokio_unbounded(&rt))
            });
            g.bench_function("coro::sync::mpsc::unbounded_channel", |b| {
                b.iter(|| pump_coro_unbounded(&rt))
            });
        }
        g.finish();
    }
}

/// Create a oneshot channel, send, receive: no executor in the measurement
/// (the receive is ready when polled).
fn oneshot(c: &mut Criterion) {
    let mut g = c.benchmark_group("oneshot_send_recv");
    config(&mut g);
    g.bench_function("coro::sync::oneshot", |b| {
        b.iter(|| {
            let (tx, rx) = coro::sync::oneshot::channel();
            tx.send(black_box(1u64)).unwrap();
            now(rx).unwrap()
        })
    });
    g.bench_function("tokio::sync::oneshot", |b| {
        b.iter(|| {
            let (tx, rx) = tokio::sync::oneshot::channel();
            tx.send(black_box(1u64)).unwrap();
            now(rx).unwrap()
        })
    });
    g.finish();
}

/// One sender, four receivers on a 2-thread runtime; a receiver counts what
/// it got plus what it was told it missed (`Lagged`), which must add up to
/// `ITEMS`.
macro_rules! pump_broadcast {
    ($rt:expr, $broadcast:path) => {{
        use $broadcast as broadcast;
        $rt.block_on(async {
            let (tx, rx) = broadcast::channel::<u64>(CAP);
            let cs: Vec<_> = (0..4)
                .map(|_| {
                    let mut rx = rx.resubscribe();
                    tokio::spawn(async move {
                        let mut n = 0;
                        loop {
                            match rx.recv().await {
                                Ok(_) => n += 1,
                                Err(broadcast::error::RecvError::Lagged(k)) => n += k,
                                Err(broadcast::error::RecvError::Closed) => break n,
                            }
                        }
                    })
                })
                .collect();
            drop(rx);
            tokio::spawn(async move {
                for i in 0..ITEMS {
                    tx.send(i).unwrap();
                    if i % 64 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
            })
            .await
            .unwrap();
            for c in cs {
                assert_eq!(c.await.unwrap(), ITEMS);
            }
        })
    }};
}

fn broadcast(c: &mut Criterion) {
    let rt = rt2();
    let mut g = c.benchmark_group("broadcast_1x4");
    config(&mut g);
    g.throughput(Throughput::Elements(ITEMS));
    g.bench_function("coro::sync::broadcast", |b| {
        b.iter(|| pump_broadcast!(rt, coro::sync::broadcast))
    });
    g.bench_function("tokio::sync::broadcast", |b| {
        b.iter(|| pump_broadcast!(rt, tokio::sync::broadcast))
    });
    g.finish();
}

criterion_group!(
    benches,
    uncontended_lock,
    contended_lock,
    semaphore,
    channels,
    oneshot,
    broadcast
);
criterion_main!(benches);
