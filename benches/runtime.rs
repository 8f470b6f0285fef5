//! Runtime micro-benchmarks: coro's `ThreadPool` against tokio (multi-thread
//! and current-thread) and async-executor, in the same run.
//!
//! Rows: spawn+join of one empty task, spawn 100,000 then join all, `yield_now`
//! ping-pong between two tasks, and a chain of 10,000 spawns (each task spawns
//! the next). Every measured loop runs *inside* the runtime (in a task), as a
//! program using it would; multi-threaded runtimes get 2 workers (the machine
//! has 2 cores).
//!
//! ```text
//! cargo bench --bench runtime -- --warm-up-time 1 --measurement-time 3
//! ```

#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::future::Future;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use coro::io::thread_pool::{ThreadPool, ThreadPoolOptions};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

const WORKERS: usize = 2;
const MANY: usize = 100_000;
const CHAIN: usize = 10_000;
const YIELDS: usize = 1_000;

/// One runtime under test: runs a `'static` future to completion inside itself.
trait Runtime {
    fn name(&self) -> &'static str;
    /// Run `f()` as a task of the runtime and wait for its output.
    fn run<F, Fut>(&self, f: F) -> Duration
    where
        F: FnOnce(Spawner) -> Fut + Send + 'static,
        Fut: Future<Output = Duration> + Send + 'static;
}

/// What a task needs to spawn siblings, per runtime.
#[derive(Clone)]
enum Spawner {
    Coro(ThreadPool),
    Tokio,
    Executor(Arc<async_executor::Executor<'static>>),
}

impl Spawner {
    /// Spawn and return a future of the output (panics propagate).
    fn spawn<F>(&self, fut: F) -> impl Future<Output = F::Output> + Send + 'static + use<F>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        // Generic so that coro's handle type need not be named.
        enum H<C, T, E> {
            C(C),
            T(T),
            E(E),
        }
        let h = match self {
            Spawner::Coro(p) => H::C(p.spawn(fut)),
            Spawner::Tokio => H::T(tokio::spawn(fut)),
            Spawner::Executor(ex) => H::E(ex.spawn(fut)),
        };
        async move {
            match h {
                H::C(h) => h.await.unwrap(),
                H::T(h) => h.await.unwrap(),
                H::E(h) => h.await,
            }
        }
    }

    fn spawn_detached<F>(&self, fut: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        match self {
            Spawner::Coro(p) => p.spawn(fut).detach(),
            Spawner::Tokio => drop(tokio::spawn(fut)),
            Spawner::Executor(ex) => ex.spawn(fut).detach(),
        }
    }

    async fn yield_now(&self) {
        match self {
            Spawner::Coro(p) => p.yield_now().await,
            Spawner::Tokio => tokio::task::yield_now().await,
            Spawner::Executor(_) => futures_lite_yield().await,
        }
    }
}

/// async-executor has no yield of its own; any executor-agnostic one does.
fn futures_lite_yield() -> impl Future<Output = ()> {
    coro::yield_now()
}

struct Coro(ThreadPool);
struct TokioMt(tokio::runtime::Runtime);
struct TokioCt(tokio::runtime::Runtime);
struct Executor {
    ex: Arc<async_executor::Executor<'static>>,
    stop: Option<async_channel::Sender<()>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Runtime for Coro {
    fn name(&self) -> &'static str {
        "coro ThreadPool"
    }
    fn run<F, Fut>(&self, f: F) -> Duration
    where
        F: FnOnce(Spawner) -> Fut + Send + 'static,
        Fut: Future<Output = Duration> + Send + 'static,
    {
        let s = Spawner::Coro(self.0.clone());
        coro::sync_wait(self.0.spawn(async move { f(s).await })).unwrap()
    }
}

impl Runtime for TokioMt {
    fn name(&self) -> &'static str {
        "tokio multi-thread"
    }
    fn run<F, Fut>(&self, f: F) -> Duration
    where
        F: FnOnce(Spawner) -> Fut + Send + 'static,
        Fut: Future<Output = Duration> + Send + 'static,
    {
        self.0
            .block_on(self.0.spawn(async move { f(Spawner::Tokio).await }))
            .unwrap()
    }
}

impl Runtime for TokioCt {
    fn name(&self) -> &'static str {
        "tokio current-thread"
    }
    fn run<F, Fut>(&self, f: F) -> Duration
    where
        F: FnOnce(Spawner) -> Fut + Send + 'static,
        Fut: Future<Output = Duration> + Send + 'static,
    {
        self.0
            .block_on(self.0.spawn(async move { f(Spawner::Tokio).await }))
            .unwrap()
    }
}

impl Executor {
    fn new() -> Self {
        let ex = Arc::new(async_executor::Executor::new());
        let (tx, rx) = async_channel::bounded::<()>(1);
        let threads = (0..WORKERS)
            .map(|_| {
                let ex = ex.clone();
                let rx = rx.clone();
                std::thread::spawn(move || {
                    let _ = futures::executor::block_on(ex.run(rx.recv()));
                })
            })
            .collect();
        Executor {
            ex,
            stop: Some(tx),
            threads,
        }
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        drop(self.stop.take());
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Runtime for Executor {
    fn name(&self) -> &'static str {
        "async-executor"
    }
    fn run<F, Fut>(&self, f: F) -> Duration
    where
        F: FnOnce(Spawner) -> Fut + Send + 'static,
        Fut: Future<Output = Duration> + Send + 'static,
    {
        let s = Spawner::Executor(self.ex.clone());
        futures::executor::block_on(self.ex.spawn(async move { f(s).await }))
    }
}

fn bench_all<R: Runtime>(c: &mut Criterion, rt: &R) {
    let name = rt.name();

    c.benchmark_group("spawn_join_empty")
        .bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter_custom(|iters| {
                rt.run(move |s| async move {
                    let start = Instant::now();
                    for _ in 0..iters {
                        s.spawn(async { black_box(()) }).await;
                    }
                    start.elapsed()
                })
            })
        });

    c.benchmark_group("spawn_100k_join_all")
        .sample_size(10)
        .bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter_custom(|iters| {
                rt.run(move |s| async move {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let hs: Vec<_> = (0..MANY)
                            .map(|i| s.spawn(async move { black_box(i) }))
                            .collect();
                        for h in hs {
                            h.await;
                        }
                    }
                    start.elapsed()
                })
            })
        });

    c.benchmark_group("yield_ping_pong_1000").bench_function(
        BenchmarkId::from_parameter(name),
        |b| {
            b.iter_custom(|iters| {
                rt.run(move |s| async move {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let task = |s: Spawner| async move {
                            for _ in 0..YIELDS {
                                s.yield_now().await;
                            }
                        };
                        let a = s.spawn(task(s.clone()));
                        let b = s.spawn(task(s.clone()));
                        a.await;
                        b.await;
                    }
                    start.elapsed()
                })
            })
        },
    );

    c.benchmark_group("chained_spawn_10k")
        .sample_size(20)
        .bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter_custom(|iters| {
                rt.run(move |s| async move {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let (tx, rx) = futures::channel::oneshot::channel();
                        chain(s.clone(), CHAIN, tx);
                        rx.await.unwrap();
                    }
                    start.elapsed()
                })
            })
        });
}

/// Each task spawns the next; the last one signals.
fn chain(s: Spawner, n: usize, done: futures::channel::oneshot::Sender<()>) {
    let s2 = s.clone();
    s.spawn_detached(async move {
        if n == 0 {
            let _ = done.send(());
        } else {
            chain(s2, n - 1, done);
        }
    });
}

fn runtime(c: &mut Criterion) {
    bench_all(
        c,
        &Coro(ThreadPool::new(ThreadPoolOptions {
            thread_count: WORKERS,
            ..Default::default()
        })),
    );
    bench_all(
        c,
        &TokioMt(
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(WORKERS)
                .build()
                .unwrap(),
        ),
    );
    bench_all(
        c,
        &TokioCt(
            tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap(),
        ),
    );
    bench_all(c, &Executor::new());
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = runtime
}
criterion_main!(benches);
