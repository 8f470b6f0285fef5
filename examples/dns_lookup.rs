//! Forward and reverse DNS lookups, all at once, on the I/O scheduler
//! (ioucontext's `iou_dns`, on c-ares). Needs the `dns` feature:
//!
//! ```text
//! cargo run --features dns --example dns_lookup -- [--server IP:PORT]... \
//!     [--timeout MS] [--tries N] NAME-OR-ADDRESS...
//! ```
//!
//! A name is looked up forward (A and AAAA), an address in reverse (PTR).
//! Without arguments it resolves `localhost` (c-ares answers it itself) and
//! `127.0.0.1` (from the hosts file on most machines). Without `--server` the
//! servers of `/etc/resolv.conf` are asked. Exits with status 1 if a lookup
//! failed, 2 on bad usage. On a machine whose hosts file maps 127.0.0.1 to
//! `localhost`:
//!
//! ```text
//! $ dns_lookup
//! localhost -> ::1 127.0.0.1
//! 127.0.0.1 <- localhost
//! ```

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use coro::io::IoScheduler;
use coro::net::dns::{Resolver, ResolverOptions};

const USAGE: &str =
    "usage: dns_lookup [--server IP:PORT]... [--timeout MS] [--tries N] NAME-OR-ADDRESS...";

fn parse_args(
    args: impl Iterator<Item = String>,
) -> Result<(ResolverOptions, Vec<String>), String> {
    let mut opts = ResolverOptions::default();
    let mut targets = Vec::new();
    let mut args = args.peekable();
    while let Some(a) = args.next() {
        let mut value = |what: &str| args.next().ok_or(format!("{a} needs {what}"));
        match a.as_str() {
            "--server" => {
                let v = value("IP:PORT")?;
                let s: SocketAddr = v.parse().map_err(|_| format!("bad --server {v:?}"))?;
                opts.servers.push(s);
            }
            "--timeout" => {
                let v = value("milliseconds")?;
                let ms: u64 = v.parse().map_err(|_| format!("bad --timeout {v:?}"))?;
                opts.timeout = Duration::from_millis(ms);
            }
            "--tries" => {
                let v = value("a count")?;
                opts.tries = v.parse().map_err(|_| format!("bad --tries {v:?}"))?;
            }
            "-h" | "--help" => return Err(String::new()),
            s if s.starts_with("--") => return Err(format!("unknown option {s}")),
            _ => targets.push(a),
        }
    }
    if targets.is_empty() {
        targets = vec!["localhost".into(), "127.0.0.1".into()];
    }
    Ok((opts, targets))
}

// README-BEGIN: the code README shows (tests/readme.rs checks it)
/// One line of output: `name -> addresses`, `address <- names`, or the error.
async fn resolve(resolver: Resolver, target: String) -> (String, bool) {
    match target.parse::<IpAddr>() {
        Ok(ip) => match resolver.reverse(ip).await {
            Ok(names) => (format!("{target} <- {}", names.join(" ")), true),
            Err(e) => (format!("{target}: {e}"), false),
        },
        Err(_) => match resolver.lookup_ip(&target).await {
            Ok(ips) => {
                let ips: Vec<String> = ips.iter().map(IpAddr::to_string).collect();
                (format!("{target} -> {}", ips.join(" ")), true)
            }
            Err(e) => (format!("{target}: {e}"), false),
        },
    }
}
// README-END

fn main() -> ExitCode {
    let (opts, targets) = match parse_args(std::env::args().skip(1)) {
        Ok(v) => v,
        Err(msg) => {
            if !msg.is_empty() {
                eprintln!("dns_lookup: {msg}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let sched = match IoScheduler::new(Default::default()) {
        Ok(s) => s,
        Err(e) => {
            // A bad CORO_DRIVER, say: an error, not a panic.
            eprintln!("dns_lookup: cannot start the I/O scheduler: {e}");
            return ExitCode::from(2);
        }
    };
    let resolver = match Resolver::new(&sched, opts) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("dns_lookup: {e}");
            return ExitCode::from(2);
        }
    };
    // Every lookup in flight at once, each on the scheduler; results in
    // argument order.
    let handles: Vec<_> = targets
        .into_iter()
        .map(|t| sched.spawn(resolve(resolver.clone(), t)))
        .collect();
    let mut ok = true;
    for line in coro::sync_wait(coro::when_all(handles)) {
        let (text, good) = line.expect("lookup task panicked");
        println!("{text}");
        ok &= good;
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
