//! Thread-per-core server start-up shared by the example servers: one inline
//! `IoScheduler` (its own event-loop thread) per core, each with its own
//! `SO_REUSEPORT` listener on the same port, so the kernel spreads
//! connections and no task ever migrates between threads.

use std::future::Future;
use std::net::SocketAddr;

use coro::io::{DriverKind, IoScheduler, IoSchedulerOptions};
use coro::net::tcp::{ListenOptions, TcpListener};

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
        let threads = args.get("threads", cores).max(1);
        let port: u16 = args.get("port", default_port);
        let host: std::net::IpAddr = args.get("host", std::net::IpAddr::from([127, 0, 0, 1]));
        let driver = parse_driver(&args.get("driver", "auto".to_owned()));
        ServerArgs {
            threads,
            addr: SocketAddr::new(host, port),
            driver,
            stats_file: args.opt("stats-file").map(str::to_owned),
        }
    }
}

/// Start `args.threads` schedulers, each running `serve(sched, listener)`;
/// print where it listens (with `scheme`) and block until killed.
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
    let mut running = Vec::new();
    for _ in 0..args.threads {
        let sched = IoScheduler::new(IoSchedulerOptions {
            driver: args.driver,
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
    let kind = running[0].1.driver_kind();
    println!(
        "{name}: listening on {scheme}{addr} ({} thread{}, {kind:?} driver); press Ctrl-C to stop",
        args.threads,
        if args.threads == 1 { "" } else { "s" },
    );
    use std::io::Write;
    let _ = std::io::stdout().flush();
    if let Some(path) = &args.stats_file {
        // Off the event loops: one snapshot a second, written whole.
        let scheds: Vec<IoScheduler> = running.iter().map(|(_, s)| s.clone()).collect();
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
                let _ = std::fs::rename(&tmp, path);
            }
            std::thread::sleep(std::time::Duration::from_secs(1));
        }
    }
    for (h, _sched) in running {
        let _ = coro::sync_wait(h);
    }
    std::process::exit(0)
}

/// An accept loop that spawns `conn` for every connection, forever.
pub async fn accept_loop<F, Fut>(sched: IoScheduler, listener: TcpListener, conn: F)
where
    F: Fn(IoScheduler, coro::net::tcp::TcpStream) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    loop {
        match listener.accept().await {
            Ok((stream, _peer)) => drop(sched.spawn(conn(sched.clone(), stream))),
            // Only errors about the listener itself get here (EMFILE and
            // friends are paused on inside accept): report, pause, go on.
            Err(e) => {
                eprintln!("accept: {e}");
                sched.sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}
