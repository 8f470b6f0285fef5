//! Thread-per-core server start-up shared by the example servers: one inline
//! `IoScheduler` (its own event-loop thread) per core, each with its own
//! `SO_REUSEPORT` listener on the same port, so the kernel spreads
//! connections and no task ever migrates between threads.
//!
//! Graceful shutdown, on Ctrl-C (`SIGINT`) or `SIGTERM`:
//! 1. stop accepting (every accept loop ends and drops its listener);
//! 2. let the open connections finish, for at most `--drain-ms`;
//! 3. `shutdown()` every scheduler (what is still open is cancelled and
//!    its socket closed), print a summary, exit 0.

use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant};

use coro::io::{DriverKind, IoScheduler, IoSchedulerOptions};
use coro::net::tcp::{ListenOptions, TcpListener};
use coro::signal::{Signal, SignalKind};
use coro::sync::Event;
use futures::FutureExt;

use crate::args::Args;

/// `--threads N --port P --host H --driver epoll|uring|auto`.
pub struct ServerArgs {
    /// Schedulers (threads); default: the cores this process may run on.
    pub threads: usize,
    /// Address to listen on.
    pub addr: SocketAddr,
    /// Driver of every scheduler.
    pub driver: DriverKind,
    /// `--stats-file PATH`: rewrite PATH every second with the live task
    /// count, ops in flight and open fds (for soak tests; off by default).
    pub stats_file: Option<String>,
    /// `--drain-ms`: how long a graceful shutdown waits for the open
    /// connections to finish (default 2000).
    pub drain: Duration,
    /// `--recv-queue on|off`: io_uring's multishot receive queue for the
    /// connections (`UringOptions::multishot_recv`, default on); off
    /// compares it with one receive op per read.
    pub recv_queue: bool,
    /// `--recv-buffers N`: the receive queue's provided buffers per
    /// scheduler (`UringOptions::recv_buffers`; default the library's).
    pub recv_buffers: Option<u16>,
}

/// What every scheduler of the server shares to shut down gracefully.
pub struct Stop {
    /// Set on the signal: accept loops end.
    stopping: Event,
    /// Connections accepted so far, and those still open.
    accepted: AtomicU64,
    open: AtomicUsize,
}

/// The server's one `Stop`.
pub fn stop() -> &'static Stop {
    static STOP: OnceLock<Stop> = OnceLock::new();
    STOP.get_or_init(|| Stop {
        stopping: Event::new(false),
        accepted: AtomicU64::new(0),
        open: AtomicUsize::new(0),
    })
}

/// Counts a connection as open while it lives.
struct Open;

impl Open {
    fn new() -> Open {
        let s = stop();
        s.accepted.fetch_add(1, Ordering::Relaxed);
        s.open.fetch_add(1, Ordering::Relaxed);
        Open
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        stop().open.fetch_sub(1, Ordering::Relaxed);
    }
}

pub fn parse_driver(s: &str) -> DriverKind {
    match s {
        "epoll" => DriverKind::Epoll,
        "uring" | "io_uring" => DriverKind::IoUring,
        "auto" => DriverKind::Auto,
        other => {
            eprintln!("error: --driver {other:?}: expected epoll, uring or auto");
            std::process::exit(2);
        }
    }
}

impl ServerArgs {
    pub fn from(args: &Args, default_port: u16) -> ServerArgs {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let threads = args.get_in("threads", cores.min(4096), 1..=4096);
        let port: u16 = args.get("port", default_port);
        let host: std::net::IpAddr = args.get("host", std::net::IpAddr::from([127, 0, 0, 1]));
        let driver = parse_driver(&args.get("driver", "auto".to_owned()));
        ServerArgs {
            threads,
            addr: SocketAddr::new(host, port),
            driver,
            stats_file: args.opt("stats-file").map(str::to_owned),
            drain: Duration::from_millis(args.get("drain-ms", 2000u64)),
            recv_queue: match args.opt("recv-queue").unwrap_or("on") {
                "on" => true,
                "off" => false,
                other => {
                    eprintln!("error: --recv-queue {other:?}: expected on or off");
                    std::process::exit(2);
                }
            },
            recv_buffers: args.opt("recv-buffers").map(|n| {
                n.parse().unwrap_or_else(|_| {
                    eprintln!("error: --recv-buffers {n:?}: expected a count up to 32768");
                    std::process::exit(2);
                })
            }),
        }
    }
}

/// Start `args.threads` schedulers, each running `serve(sched, listener)`;
/// print where it listens (with `scheme`), and on Ctrl-C or `SIGTERM` shut
/// down gracefully (see the module docs) and exit 0.
pub fn run<F, Fut>(name: &str, scheme: &str, args: &ServerArgs, serve: F) -> !
where
    F: Fn(IoScheduler, TcpListener) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let opts = ListenOptions {
        backlog: 4096,
        reuse_port: true,
        ..Default::default()
    };
    let mut addr = args.addr;
    // Every listener shares the port through `SO_REUSEPORT`, which a second
    // server of the same user would share too, silently splitting the
    // connections with it: a plain bind first says whether the port is
    // taken.
    if addr.port() != 0 {
        if let Err(e) = std::net::TcpListener::bind(addr) {
            eprintln!("{name}: cannot listen on {addr}: {e}");
            std::process::exit(1);
        }
    }
    let mut running = Vec::new();
    for _ in 0..args.threads {
        let sched = IoScheduler::new(IoSchedulerOptions {
            driver: args.driver,
            uring: {
                let mut u = coro::io::UringOptions {
                    multishot_recv: args.recv_queue,
                    ..Default::default()
                };
                if let Some(n) = args.recv_buffers {
                    u.recv_buffers = n;
                }
                u
            },
            ..Default::default()
        })
        .unwrap_or_else(|e| {
            eprintln!("{name}: cannot start a {:?} scheduler: {e}", args.driver);
            std::process::exit(1);
        });
        // The first listener may pick the port (port 0); the others share it.
        let listener = TcpListener::bind_with(&sched, addr, opts).unwrap_or_else(|e| {
            eprintln!("{name}: {e}");
            std::process::exit(1);
        });
        addr = listener.local_addr().expect("bound");
        let fut = serve(sched.clone(), listener);
        running.push((sched.spawn(fut), sched));
    }
    // Handlers installed now, before "listening" is printed: a signal sent
    // as soon as that line shows is never the default (deadly) one.
    let s0 = running[0].1.clone();
    let signal = |k| {
        Signal::new(&s0, k).unwrap_or_else(|e| {
            eprintln!("{name}: {e}");
            std::process::exit(1);
        })
    };
    let (mut int, mut term) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    );
    let watcher = s0.spawn(async move {
        let first = coro::when_any!(
            async {
                int.recv().await;
                "SIGINT"
            },
            async {
                term.recv().await;
                "SIGTERM"
            },
        );
        first.await.1
    });
    let kind = running[0].1.driver_kind();
    println!(
        "{name}: listening on {scheme}{addr} ({} thread{}, {kind:?} driver); press Ctrl-C to stop",
        args.threads,
        if args.threads == 1 { "" } else { "s" },
    );
    use std::io::Write;
    let _ = std::io::stdout().flush();
    if let Some(path) = args.stats_file.clone() {
        // Off the event loops: one snapshot a second, written whole.
        let scheds: Vec<IoScheduler> = running.iter().map(|(_, s)| s.clone()).collect();
        std::thread::spawn(move || {
            loop {
                let (mut tasks, mut ops) = (0, 0);
                for s in &scheds {
                    let m = s.metrics();
                    tasks += m.live_tasks;
                    ops += m.ops_in_flight;
                }
                let fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count());
                let tmp = format!("{path}.tmp");
                if std::fs::write(&tmp, format!("tasks={tasks} ops={ops} fds={fds}\n")).is_ok() {
                    let _ = std::fs::rename(&tmp, &path);
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        });
    }
    let why = coro::sync_wait(watcher).unwrap_or("a failed signal watcher");
    let stop = stop();
    stop.stopping.set();
    let open = stop.open.load(Ordering::Relaxed);
    println!(
        "{name}: {why}: no new connections; waiting up to {:?} for {open} open one{}",
        args.drain,
        if open == 1 { "" } else { "s" }
    );
    let deadline = Instant::now() + args.drain;
    while stop.open.load(Ordering::Relaxed) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let left = stop.open.load(Ordering::Relaxed);
    for (h, sched) in running {
        sched.shutdown();
        let _ = coro::sync_wait(h);
    }
    println!(
        "{name}: stopped: {} connections served, {left} still open at the deadline were closed",
        stop.accepted.load(Ordering::Relaxed)
    );
    let _ = std::io::stdout().flush();
    std::process::exit(0)
}

/// An accept loop that spawns `conn` for every connection, until the
/// server stops (then it drops the listener: no new connections).
pub async fn accept_loop<F, Fut>(sched: IoScheduler, listener: TcpListener, conn: F)
where
    F: Fn(IoScheduler, coro::net::tcp::TcpStream) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let stop = stop();
    // One wait on the stop event for the loop's whole life, raced with each
    // accept: a wait made per accept would join and leave the event's
    // listener list (an allocation and two lock rounds) once per
    // connection, work the tokio twin in `bench/` does not do, and a cost
    // the `Connection: close` benchmark pays once per request.
    let mut stopping = pin!(stop.stopping.wait());
    loop {
        // The accept is dropped when the server stops: cancelled (on
        // io_uring a connection the kernel accepted for it meanwhile is
        // kept by the listener, and closed with it).
        let mut accept = pin!(listener.accept());
        let next = poll_fn(|cx| {
            if stopping.as_mut().poll(cx).is_ready() {
                return Poll::Ready(None);
            }
            accept.as_mut().poll(cx).map(Some)
        });
        let Some(accepted) = next.await else { return };
        match accepted {
            Ok((stream, _peer)) => {
                let open = Open::new();
                // `map`, not `async move { fut.await; drop(open) }`: an
                // async block keeps the future it captured and, separately,
                // the one it awaits, so every connection's task would be
                // twice the size of its future (it cost 544 B per idle
                // HTTP connection when found).
                let fut = conn(sched.clone(), stream).map(move |()| drop(open));
                drop(sched.spawn(fut))
            }
            // Only errors about the listener itself get here (EMFILE and
            // friends are paused on inside accept): report, pause, go on.
            Err(e) => {
                eprintln!("accept: {e}");
                sched.sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}
