//! docs/MIGRATING.md cannot rot silently.
//!
//! rustdoc resolves every `[`coro::...`]` link in it (the file is the
//! `coro::migrating` page; `RUSTDOCFLAGS="-D warnings" cargo doc
//! --all-features` in `scripts/test` fails on a broken one). This test makes
//! sure that check covers everything: each libcoro README item and each tokio
//! item has a row, every coro name is written as a link (not as plain code
//! rustdoc would not check), and each linked name still occurs in the
//! sources, so a rename shows up in `cargo test` too.

use std::fs;
use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The public names of libcoro's README, as its first column writes them.
const LIBCORO: &[&str] = &[
    "coro::task<T>",
    "co_await task",
    "coro::sync_wait",
    "coro::when_all(range)",
    "coro::when_all(a, b, ...)",
    "return_value()",
    "coro::when_any(range)",
    "coro::when_any(a, b, ...)",
    "coro::generator<T>",
    "std::stop_source",
    "coro::expected",
    "coro::event",
    "e.set()",
    "coro::latch",
    "count_down()",
    "coro::mutex",
    "coro::condition_variable",
    "m.scoped_lock()",
    "coro::scoped_lock",
    "coro::shared_mutex",
    "lock_shared()",
    "coro::semaphore",
    "acquire_result::acquired",
    "s.release()",
    "coro::ring_buffer<T, N>",
    "rb.produce(v)",
    "rb.consume()",
    "rb.shutdown_drain(tp)",
    "coro::queue<T>",
    "q.push(v)",
    "q.pop()",
    "q.shutdown_notify_waiters_drain(tp)",
    "coro::thread_pool",
    "coro::thread_pool::options",
    ".thread_count",
    ".on_thread_start_functor",
    ".on_thread_stop_functor",
    "tp.schedule()",
    "tp.spawn(task)",
    "tp.schedule(task)",
    "tp.yield()",
    "coro::io_scheduler",
    "coro::io_scheduler::make_shared",
    "coro::io_scheduler::options",
    ".thread_strategy",
    "thread_strategy_t::spawn",
    ".execution_strategy",
    "process_tasks_inline",
    "process_tasks_on_thread_pool",
    ".pool",
    ".on_io_thread_start_functor",
    "s->schedule()",
    "s->spawn(task)",
    "s->schedule(task)",
    "s->schedule(stop_source, task, timeout)",
    "coro::timeout_status",
    "s->schedule_after(d)",
    "s->schedule_at(t)",
    "s->yield()",
    "s->yield_for(d)",
    "s->yield_until(t)",
    "s->process_events(timeout)",
    "s->poll(fd, op, timeout)",
    "coro::poll_op::read",
    "coro::poll_status::event",
    "coro::task_container",
    "coro::net::tcp::server",
    "server.accept()",
    "coro::net::tcp::client",
    "client.connect()",
    "client.poll(op)",
    "client.recv(span)",
    "client.send(span)",
    "coro::net::recv_status",
    "client.socket().is_valid()",
    "coro::net::tls::server",
    "coro::net::tls::client",
    "coro::net::udp::peer",
    "coro::net::dns::resolver",
];

/// What a tokio user reaches for.
const TOKIO: &[&str] = &[
    "#[tokio::main]",
    "#[tokio::test]",
    "tokio::runtime::Builder",
    "tokio::spawn",
    "tokio::task::spawn_local",
    "tokio::task::spawn_blocking",
    "tokio::task::JoinHandle",
    "tokio::task::JoinError",
    "tokio::task::JoinSet",
    "tokio::task::yield_now",
    "tokio::time::sleep",
    "tokio::time::sleep_until",
    "tokio::time::timeout",
    "tokio::time::interval",
    "tokio::time::pause",
    "tokio::sync::Mutex",
    "tokio::sync::RwLock",
    "tokio::sync::Semaphore",
    "tokio::sync::Notify",
    "tokio::sync::Barrier",
    "tokio::sync::mpsc::channel",
    "tokio::sync::mpsc::unbounded_channel",
    "tokio::sync::oneshot",
    "tokio::select!",
    "tokio::join!",
    "tokio::try_join!",
    "tokio::net::TcpListener",
    "tokio::net::TcpStream",
    "tokio::net::UdpSocket",
    "tokio::net::UnixListener",
    "tokio::net::lookup_host",
    "tokio_rustls::TlsAcceptor",
    "AsyncReadExt::read",
    "AsyncWriteExt::write_all",
    "tokio::io::{AsyncRead, AsyncWrite}",
    "tokio::fs::File",
];

/// Written as plain code until `coro-net/src/tls` lands; then they must
/// become links like the rest (the test says so).
const PENDING_TLS: &[&str] = &[
    "coro::net::tls::TlsAcceptor",
    "coro::net::tls::TlsConnector",
    "coro::net::tls::TlsStream",
];

fn guide() -> String {
    fs::read_to_string(Path::new(ROOT).join("docs/MIGRATING.md")).expect("docs/MIGRATING.md")
}

/// `(first column, coro column)` of every table row under `heading`, up to
/// the next `## ` heading.
fn rows(guide: &str, heading: &str) -> Vec<(String, String)> {
    let start = guide
        .find(heading)
        .unwrap_or_else(|| panic!("no {heading:?}"));
    let section = &guide[start + heading.len()..];
    let section = &section[..section.find("\n## ").unwrap_or(section.len())];
    section
        .lines()
        .filter(|l| l.starts_with('|') && !l.starts_with("|---"))
        .map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').split(" | ").collect();
            assert!(cells.len() >= 2, "a row without a coro column: {l}");
            (cells[0].trim().to_owned(), cells[1].trim().to_owned())
        })
        .filter(|(from, _)| from != "libcoro" && from != "tokio")
        .collect()
}

/// Every `` `coro::...` `` span in `text`, and whether it is a `[..]` link.
fn coro_names(text: &str) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("`coro::") {
        let after = &rest[i + 1..];
        let end = after.find('`').expect("unclosed backtick");
        let linked = rest[..i].ends_with('[') && after[end + 1..].starts_with(']');
        out.push((after[..end].to_owned(), linked));
        rest = &after[end + 1..];
    }
    out
}

fn sources() -> String {
    fn walk(dir: &Path, out: &mut String) {
        for entry in fs::read_dir(dir).unwrap() {
            let p: PathBuf = entry.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|e| e == "rs") {
                out.push_str(&fs::read_to_string(&p).unwrap());
            }
        }
    }
    let mut all = String::new();
    for dir in [
        "src",
        "coro-core/src",
        "coro-sync/src",
        "coro-io/src",
        "coro-net/src",
        "coro-macros/src",
    ] {
        walk(&Path::new(ROOT).join(dir), &mut all);
    }
    all
}

fn has_ident(src: &str, ident: &str) -> bool {
    src.match_indices(ident).any(|(i, _)| {
        let before = src[..i].chars().next_back();
        let after = src[i + ident.len()..].chars().next();
        let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
        !word(before) && !word(after)
    })
}

#[test]
fn every_libcoro_item_has_a_row() {
    let rows = rows(&guide(), "## libcoro → coro");
    let firsts: String = rows.iter().map(|(f, _)| f.as_str()).collect();
    let missing: Vec<_> = LIBCORO.iter().filter(|n| !firsts.contains(*n)).collect();
    assert!(
        missing.is_empty(),
        "libcoro items without a row: {missing:?}"
    );
}

#[test]
fn every_tokio_item_has_a_row() {
    let rows = rows(&guide(), "## tokio → coro");
    let firsts: String = rows.iter().map(|(f, _)| f.as_str()).collect();
    let missing: Vec<_> = TOKIO.iter().filter(|n| !firsts.contains(*n)).collect();
    assert!(missing.is_empty(), "tokio items without a row: {missing:?}");
}

#[test]
fn every_coro_name_is_a_checked_link() {
    let guide = guide();
    let tls_landed = Path::new(ROOT).join("coro-net/src/tls").exists();
    let mut coro_column = String::new();
    for heading in ["## libcoro → coro", "## tokio → coro"] {
        for (_, to) in rows(&guide, heading) {
            coro_column.push_str(&to);
            coro_column.push('\n');
        }
    }
    let mut plain = Vec::new();
    for (name, linked) in coro_names(&coro_column) {
        let pending = PENDING_TLS.contains(&name.as_str());
        if linked {
            assert!(!pending || tls_landed, "{name} links before TLS exists");
        } else if !pending || tls_landed {
            plain.push(name);
        }
    }
    assert!(
        plain.is_empty(),
        "coro names written as plain code, which rustdoc does not check \
         (write them as [`coro::...`] links{}): {plain:?}",
        if tls_landed {
            "; coro-net/src/tls exists now"
        } else {
            ""
        }
    );
    // Every row says something about coro: a link, or words for "none".
    for heading in ["## libcoro → coro", "## tokio → coro"] {
        for (from, to) in rows(&guide, heading) {
            assert!(!to.is_empty(), "empty coro column for {from}");
        }
    }
}

#[test]
fn linked_names_exist_in_the_sources() {
    if !Path::new(ROOT).join("coro-core/src").exists() {
        // The packaged `coro` crate has no sibling crates to search.
        eprintln!("not in the coro workspace; skipped");
        return;
    }
    let src = sources();
    let missing: Vec<String> = coro_names(&guide())
        .into_iter()
        .filter(|(_, linked)| *linked)
        .map(|(name, _)| name)
        .filter(|name| {
            let last = name
                .trim_end_matches("()")
                .trim_end_matches('!')
                .rsplit("::")
                .next()
                .unwrap();
            !has_ident(&src, last)
        })
        .collect();
    assert!(
        missing.is_empty(),
        "not found in any source file: {missing:?}"
    );
}

#[test]
fn the_guide_is_a_rustdoc_page() {
    let lib = fs::read_to_string(Path::new(ROOT).join("src/lib.rs")).unwrap();
    assert!(
        lib.contains(r#"include_str!("../docs/MIGRATING.md")"#),
        "src/lib.rs must include docs/MIGRATING.md, or rustdoc checks none of its links"
    );
}
