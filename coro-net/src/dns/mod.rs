//! Asynchronous DNS on c-ares, driven by the [`IoScheduler`] (feature `dns`).
//!
//! * [`Resolver`] with [`lookup_ip`](Resolver::lookup_ip),
//!   [`lookup_ipv4`](Resolver::lookup_ipv4), [`lookup_ipv6`](Resolver::lookup_ipv6)
//!   and [`reverse`](Resolver::reverse), configured by [`ResolverOptions`]
//!   (servers, per-try timeout, tries, rotation, hosts file);
//! * [`Lookup`], the future they return, and [`Error`], why one failed.
//!
//! # How it runs
//!
//! No thread and no blocking call: c-ares' sockets are watched with
//! [`coro_io::op::poll_fd`] on the scheduler's driver (epoll or io_uring),
//! readiness is fed to `ares_process_fds`, and c-ares' retry timeouts are
//! scheduler timers ([`IoScheduler::sleep`]). c-ares measures them on the
//! real clock; on a paused clock (`start_paused`) a lookup ends with
//! [`Error::Timeout`] once `advance` moved past its bound (4 × `timeout`
//! × `tries` × servers, and a second), which a running clock does not
//! have. The lookup future does that
//! itself while it is polled, so it needs no task of its own and works from
//! any executor as long as the scheduler runs (a `Manual` one must be driven
//! with `process_events`).
//!
//! c-ares can only cancel all the queries of a channel at once, so each
//! in-flight lookup has a channel to itself (a *lane*); the resolver keeps
//! up to 64 idle ones for reuse. Dropping a lookup cancels its queries in
//! c-ares and returns the lane. Lookups in flight at once each hold a lane
//! and its socket (an fd), with no cap of the resolver's: a burst of
//! thousands of lookups holds thousands of sockets, and a server near its
//! fd limit should bound them (a `coro::sync::Semaphore` around the
//! lookups). Each lane also keeps its own parse of the hosts file: small
//! for a usual one, megabytes per lane for a block list of 100,000 names
//! (turn [`ResolverOptions::hosts_file`] off there).
//!
//! Names are looked up like `getaddrinfo` does: the hosts file first (unless
//! [`ResolverOptions::hosts_file`] is off), then DNS, with the search domains
//! and `ndots` of `resolv.conf`. Creating a channel reads `/etc/resolv.conf`
//! and the hosts file (small local files), so a lane costs a few syscalls the
//! first time. Like glibc's resolver, a lookup sees an edited `resolv.conf`:
//! each lookup `stat`s it, and idle lanes made from an older version are
//! dropped rather than reused (c-ares reads the hosts file again itself when
//! it changes). c-ares takes a file it cannot open as an empty one (and asks
//! 127.0.0.1:53, as glibc does with no file): so a lookup that needs a new
//! lane while the process is out of fds fails, rather than make a lane that
//! would ask 127.0.0.1:53 for the rest of its life, and a lane whose lookup
//! found no server to ask is not kept.
//!
//! c-ares opens its sockets itself and marks them close-on-exec with a
//! second call, not atomically: a child process spawned on another thread
//! in that moment inherits the lookup's socket (it holds the port, or the
//! TCP connection to the server, while the child lives; nothing is read
//! from it). Every other socket of coro is opened close-on-exec at once.
//!
//! The c-ares C library is built from the sources the `c-ares-sys` crate
//! vendors (1.34.9 at the time of writing, which has the fixes for the
//! advisories before 1.34.8); [`c_ares_version`] reports what is linked.
//!
//! # Examples
//!
//! ```
//! use coro_io::IoScheduler;
//! use coro_net::dns::{Resolver, ResolverOptions};
//!
//! let sched = IoScheduler::new(Default::default())?;
//! let resolver = Resolver::new(&sched, ResolverOptions::default())?;
//! // `localhost` never leaves the machine: hosts file or c-ares' built-in.
//! let ips = coro_core::sync_wait(resolver.lookup_ip("localhost"))?;
//! assert!(ips.iter().all(|ip| ip.is_loopback()));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod error;
mod lane;
mod name;
mod query;

pub use error::Error;

use std::fmt;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use c_ares::AddressFamily;
use coro_io::IoScheduler;
use coro_io::driver::Handle;

use lane::Lane;
use query::{Answer, Query, Request};

/// Idle lanes (c-ares channels) a resolver keeps for reuse.
const MAX_IDLE_LANES: usize = 64;

/// The version of the c-ares library linked in, as `(major, minor, patch)`.
///
/// # Examples
///
/// ```
/// let (major, minor, _) = coro_net::dns::c_ares_version();
/// assert!((major, minor) >= (1, 34));
/// ```
pub fn c_ares_version() -> (u32, u32, u32) {
    let (_, v) = c_ares::version();
    ((v >> 16) & 0xff, (v >> 8) & 0xff, v & 0xff)
}

/// Options of [`Resolver::new`]; every field has a default.
///
/// `timeout`, `tries` and `rotate` always apply, also when the servers come
/// from `resolv.conf` (they replace its `timeout:`, `attempts:` and `rotate`
/// options).
///
/// # Examples
///
/// ```
/// use coro_net::dns::ResolverOptions;
/// use std::time::Duration;
///
/// let opts = ResolverOptions {
///     servers: vec!["127.0.0.1:5353".parse().unwrap()],
///     timeout: Duration::from_millis(500),
///     tries: 2,
///     ..Default::default()
/// };
/// assert!(opts.hosts_file);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolverOptions {
    /// DNS servers (UDP, and TCP on the same port for truncated answers).
    /// Empty (the default): the `nameserver`s of `/etc/resolv.conf` (or of
    /// [`resolv_conf_path`](Self::resolv_conf_path)).
    pub servers: Vec<SocketAddr>,
    /// The longest one try waits for a server's answer (whole
    /// milliseconds, at least 1 ms); it does not grow between tries.
    /// c-ares shortens a try once it has three answers from that server
    /// on a lane: to 5 times the server's average answer time, not below
    /// 250 ms (nor above this). So a server that answers in 1 ms as a rule
    /// gets 250 ms for a slow answer; raise `tries` where servers answer
    /// slowly now and then. Default 2 s.
    pub timeout: Duration,
    /// Tries per server before the lookup fails (at least 1). Default 3.
    pub tries: u32,
    /// Spread queries over the servers at random instead of trying them in
    /// order. Default `false`.
    pub rotate: bool,
    /// Answer from the hosts file before asking DNS (c-ares lookups `"fb"`;
    /// off: `"b"`, DNS only). Default `true`. Off, `localhost` and
    /// `*.localhost` fail with [`Error::ConnectionRefused`]: c-ares answers
    /// them itself only in the hosts file step, and never sends them.
    pub hosts_file: bool,
    /// The hosts file; `None` (the default): `/etc/hosts`.
    pub hosts_path: Option<PathBuf>,
    /// The resolver configuration read for servers (when
    /// [`servers`](Self::servers) is empty), search domains and `ndots`;
    /// `None` (the default): `/etc/resolv.conf`.
    pub resolv_conf_path: Option<PathBuf>,
}

impl Default for ResolverOptions {
    fn default() -> Self {
        ResolverOptions {
            servers: Vec::new(),
            timeout: Duration::from_secs(2),
            tries: 3,
            rotate: false,
            hosts_file: true,
            hosts_path: None,
            resolv_conf_path: None,
        }
    }
}

/// [`ResolverOptions`] checked and in the shape c-ares takes.
#[derive(Debug)]
pub(crate) struct Config {
    pub(crate) servers: Vec<String>,
    pub(crate) timeout: Duration,
    pub(crate) tries: u32,
    pub(crate) rotate: bool,
    pub(crate) hosts_file: bool,
    pub(crate) hosts_path: Option<String>,
    pub(crate) resolv_conf_path: Option<String>,
}

/// A path c-ares can take, to a file that can be read: c-ares takes a
/// missing file as an empty one (no hosts; for `resolv.conf`, no servers,
/// so it asks 127.0.0.1:53), which would hide a mistyped path.
fn path_str(p: &Option<PathBuf>, what: &str) -> Result<Option<String>, Error> {
    let Some(p) = p else {
        return Ok(None);
    };
    match p.to_str() {
        Some(s) if !s.is_empty() && !s.contains('\0') => {
            if let Err(e) = std::fs::File::open(p) {
                return Err(Error::InvalidOptions(format!(
                    "{what} {} cannot be read: {e}",
                    p.display()
                )));
            }
            Ok(Some(s.to_owned()))
        }
        _ => Err(Error::InvalidOptions(format!(
            "{what} {} is not a usable path",
            p.display()
        ))),
    }
}

impl Config {
    fn new(o: &ResolverOptions) -> Result<Config, Error> {
        if o.tries == 0 {
            return Err(Error::InvalidOptions("tries must be at least 1".into()));
        }
        if o.timeout.is_zero() {
            return Err(Error::InvalidOptions("timeout must not be zero".into()));
        }
        let mut servers = Vec::with_capacity(o.servers.len());
        for s in &o.servers {
            if s.port() == 0 || s.ip().is_unspecified() {
                return Err(Error::InvalidOptions(format!(
                    "server {s} is not an address to send queries to"
                )));
            }
            // c-ares' `host:port` syntax; IPv6 in brackets (the Display of SocketAddr).
            servers.push(s.to_string());
        }
        Ok(Config {
            servers,
            // c-ares takes whole milliseconds and reads 0 as "not set"
            // (its default of 2 s, growing to 5 s): below 1 ms is 1 ms.
            timeout: o.timeout.max(Duration::from_millis(1)),
            tries: o.tries,
            rotate: o.rotate,
            hosts_file: o.hosts_file,
            hosts_path: path_str(&o.hosts_path, "hosts_path")?,
            resolv_conf_path: path_str(&o.resolv_conf_path, "resolv_conf_path")?,
        })
    }
}

/// What the resolver's handles and lookups share.
pub(crate) struct Shared {
    pub(crate) sched: IoScheduler,
    pub(crate) driver: Handle,
    config: Config,
    /// The `resolv.conf` lanes read (the option's, or the system's).
    conf_path: PathBuf,
    idle: Mutex<Vec<Lane>>,
}

/// Which version of a file a lane was configured from: a hash of its
/// identity, size and change times (or of "cannot be `stat`ed", e.g.
/// missing). An edit in place changes the times, a rewrite by rename the
/// inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp(u64);

impl Stamp {
    pub(crate) fn of(path: &Path) -> Stamp {
        use std::hash::{Hash, Hasher};
        use std::os::unix::fs::MetadataExt;
        let id = std::fs::metadata(path).ok().map(|m| {
            (
                m.dev(),
                m.ino(),
                m.size(),
                (m.mtime(), m.mtime_nsec()),
                (m.ctime(), m.ctime_nsec()),
            )
        });
        let mut h = std::collections::hash_map::DefaultHasher::new();
        id.hash(&mut h);
        Stamp(h.finish())
    }
}

/// A new lane for `config`, configured from `conf_path` as it is now.
///
/// c-ares takes a configuration file it cannot open as an empty one (and
/// then asks 127.0.0.1:53). That is right for a file that is missing or
/// that this user may not read (glibc does the same), but not for a
/// process out of fds or memory for a moment: a lane made then would ask
/// 127.0.0.1:53 for the rest of its life. So the file is read here first,
/// and such an error fails this lookup instead; and when the servers come
/// from the file, a lane that has none of the file's `nameserver`s (c-ares
/// failed to open it, or the `nsswitch.conf` files, in the gap after this
/// read) is not made either. The lookup fails; the next makes a new lane.
fn new_lane(config: &Config, driver: &Handle, conf_path: &Path) -> Result<Lane, Error> {
    let stamp = Stamp::of(conf_path);
    let text = match std::fs::read_to_string(conf_path) {
        Ok(text) => Some(text),
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EMFILE | libc::ENFILE | libc::ENOMEM)
            ) =>
        {
            return Err(Error::Other(format!(
                "the resolver configuration {} cannot be read now: {e}",
                conf_path.display()
            )));
        }
        Err(_) => None,
    };
    let lane = Lane::new(config, driver, stamp)?;
    if config.servers.is_empty() {
        let named = text.as_deref().map(nameservers).unwrap_or_default();
        let got = lane.channel.servers();
        if !named.is_empty()
            && !got
                .iter()
                .any(|s| server_ip(s).is_some_and(|ip| named.contains(&ip)))
        {
            return Err(Error::Other(format!(
                "c-ares could not read the resolver configuration {} now: it asks {got:?}, \
                 the file names {named:?}",
                conf_path.display()
            )));
        }
    }
    Ok(lane)
}

/// The addresses of the `nameserver` lines of a `resolv.conf` that c-ares
/// surely keeps, read conservatively (a line left out only weakens the
/// check; one c-ares drops but kept here would refuse every lane): lines
/// that are just `nameserver`, spaces, and a plain literal: IPv4, or IPv6
/// with no dotted part and no `%scope`, and not link-local (kept by c-ares
/// only with an interface it finds), site-local (`fec0::/10`, deprecated)
/// or IPv4-compatible. A file naming only others may rightly leave c-ares
/// with its default.
fn nameservers(text: &str) -> Vec<IpAddr> {
    text.lines()
        .filter_map(|line| {
            // ASCII whitespace only, as c-ares: a line starting with a
            // no-break space is no nameserver line to it, and a server it
            // never asks must not be one the lane check looks for.
            let addr = line
                .trim_matches(|c: char| c.is_ascii_whitespace())
                .strip_prefix("nameserver ")?
                .trim_start_matches(' ');
            if addr.is_empty()
                || addr.contains(|c: char| !(c.is_ascii_hexdigit() || c == '.' || c == ':'))
            {
                return None;
            }
            if let Ok(v4) = addr.parse::<Ipv4Addr>() {
                return Some(IpAddr::V4(v4));
            }
            if addr.contains('.') {
                return None;
            }
            let v6: Ipv6Addr = addr.parse().ok()?;
            let s = v6.segments();
            let link_or_site_local = s[0] & 0xffc0 == 0xfe80 || s[0] & 0xffc0 == 0xfec0;
            let v4_compatible = s[..6] == [0; 6] && !v6.is_loopback() && !v6.is_unspecified();
            (!link_or_site_local && !v4_compatible).then_some(IpAddr::V6(v6))
        })
        .collect()
}

/// The address of a server as c-ares lists it (`host[:port]`, IPv6 in
/// brackets with a port, maybe with a `%scope`).
fn server_ip(s: &str) -> Option<IpAddr> {
    let unscoped: String = match s.find('%') {
        Some(i) => {
            let end = s[i..].find(']').map_or(s.len(), |j| i + j);
            format!("{}{}", &s[..i], &s[end..])
        }
        None => s.to_owned(),
    };
    unscoped
        .parse::<SocketAddr>()
        .map(|a| a.ip())
        .or_else(|_| unscoped.parse::<IpAddr>())
        .ok()
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("config", &self.config)
            .field("idle_lanes", &self.idle_lanes())
            .finish()
    }
}

impl Shared {
    pub(crate) fn config(&self) -> &Config {
        &self.config
    }

    fn idle_lanes(&self) -> usize {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// An idle lane configured from the current `resolv.conf`, or a new
    /// one. Idle lanes from an older version of it are dropped.
    pub(crate) fn take_lane(&self) -> Result<Lane, Error> {
        let now = Stamp::of(&self.conf_path);
        let mut stale = Vec::new();
        let found = {
            let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                match idle.pop() {
                    Some(l) if l.stamp == now => break Some(l),
                    Some(l) => stale.push(l),
                    None => break None,
                }
            }
        };
        // Dropped outside the lock: `ares_destroy` calls back into the driver.
        drop(stale);
        match found {
            Some(l) => Ok(l),
            None => new_lane(&self.config, &self.driver, &self.conf_path),
        }
    }

    /// Back to the pool after a lookup; `keep: false` (the lookup found
    /// no server to ask) drops it: a lane configured while the process was
    /// out of fds asks c-ares' default server, and must not serve later
    /// lookups. A lane that is right costs one more channel next time.
    pub(crate) fn put_lane(&self, lane: Lane, keep: bool) {
        if !keep || !lane.is_idle() {
            return; // dropped: ares_destroy ends whatever is left
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE_LANES {
            idle.push(lane);
        } else {
            drop(idle);
            drop(lane);
        }
    }
}

/// An asynchronous DNS resolver on c-ares, driven by an [`IoScheduler`].
///
/// Cheap to clone (a handle); `Send + Sync`. Lookups may run concurrently,
/// each on a c-ares channel of its own (see the [module docs](self)). A
/// resolver holds a clone of its scheduler.
///
/// # Examples
///
/// ```
/// use coro_io::IoScheduler;
/// use coro_net::dns::{Resolver, ResolverOptions};
///
/// let sched = IoScheduler::new(Default::default())?;
/// let resolver = Resolver::new(&sched, ResolverOptions::default())?;
/// let r = resolver.clone();
/// let h = sched.spawn(async move { r.lookup_ipv4("localhost").await });
/// let v4 = coro_core::sync_wait(h)??;
/// assert!(v4.contains(&std::net::Ipv4Addr::LOCALHOST));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct Resolver {
    shared: Arc<Shared>,
}

impl Resolver {
    /// A resolver for `sched`, configured by `opts`.
    ///
    /// Creates its first c-ares channel now, so configuration errors show
    /// here rather than at the first lookup. Reads `resolv.conf` and the
    /// hosts file (small local files, read synchronously).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOptions`] for `tries == 0`, a zero `timeout`, a
    /// server with port 0 or an unspecified address, or a
    /// `resolv_conf_path`/`hosts_path` that is empty, holds a NUL byte, is
    /// not valid UTF-8 or cannot be read; [`Error::Other`] when the
    /// process cannot read `resolv.conf` right now (out of fds or memory),
    /// or c-ares could not (it would ask 127.0.0.1:53 instead of the
    /// file's nameservers; lookups fail the same way then); other variants
    /// when c-ares refuses the configuration.
    pub fn new(sched: &IoScheduler, opts: ResolverOptions) -> Result<Resolver, Error> {
        let config = Config::new(&opts)?;
        let driver = sched.driver().clone();
        let conf_path = opts
            .resolv_conf_path
            .clone()
            .unwrap_or_else(|| PathBuf::from("/etc/resolv.conf"));
        let first = new_lane(&config, &driver, &conf_path)?;
        Ok(Resolver {
            shared: Arc::new(Shared {
                sched: sched.clone(),
                driver,
                config,
                conf_path,
                idle: Mutex::new(vec![first]),
            }),
        })
    }

    fn addrs<T>(
        &self,
        host: &str,
        family: AddressFamily,
        convert: fn(Answer) -> Result<T, Error>,
    ) -> Lookup<T> {
        let shared = self.shared.clone();
        let query = if let Ok(ip) = host.parse::<IpAddr>() {
            // A literal needs no query (and c-ares would accept only some forms).
            Query::early(shared, Ok(Answer::Addrs(vec![ip])))
        } else if let Err(e) = name::check_host(host) {
            Query::early(shared, Err(e))
        } else {
            Query::new(
                shared,
                Request::Addrs {
                    host: host.to_owned(),
                    family,
                },
            )
        };
        Lookup { query, convert }
    }

    /// The IPv4 and IPv6 addresses of `host` (hosts file, then A and AAAA
    /// queries in parallel), in c-ares' `getaddrinfo` order (RFC 6724
    /// sorting), without duplicates. An IP literal is returned as is; a
    /// scoped IPv6 literal (`fe80::1%eth0`) is [`Error::BadName`], as an
    /// [`IpAddr`] has no scope (parse it as a `SocketAddrV6` instead).
    ///
    /// The lookup starts when the future is first polled.
    ///
    /// # Errors
    ///
    /// [`Error::BadName`] for a string that cannot be a host name (checked
    /// before anything is sent), [`Error::NotFound`] / [`Error::NoData`] when
    /// the name has no address, [`Error::Timeout`] when no server answered
    /// in time (see [`ResolverOptions::timeout`]), and the other [`Error`]
    /// variants.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future cancels the lookup inside c-ares (`ares_cancel`
    /// on the lookup's own channel): its completion callback runs and is
    /// freed, its sockets are closed and deregistered from the driver, no
    /// timer is left behind. Nothing is lost that a retry would not redo.
    ///
    /// # Examples
    ///
    /// ```
    /// # use coro_net::dns::{Resolver, ResolverOptions};
    /// # let sched = coro_io::IoScheduler::new(Default::default())?;
    /// let resolver = Resolver::new(&sched, ResolverOptions::default())?;
    /// let ips = coro_core::sync_wait(resolver.lookup_ip("127.0.0.1"))?;
    /// assert_eq!(ips, ["127.0.0.1".parse::<std::net::IpAddr>()?]);
    /// let bad = coro_core::sync_wait(resolver.lookup_ip("no spaces.example"));
    /// assert_eq!(bad, Err(coro_net::dns::Error::BadName));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn lookup_ip(&self, host: &str) -> Lookup<Vec<IpAddr>> {
        self.addrs(host, AddressFamily::UNSPEC, |a| non_empty(addrs_of(a)?))
    }

    /// The IPv4 addresses of `host` (hosts file, then A records). An IPv4
    /// literal is returned as is; an IPv6 literal gives [`Error::NoData`].
    ///
    /// # Errors
    ///
    /// As [`lookup_ip`](Self::lookup_ip).
    ///
    /// # Cancel safety
    ///
    /// As [`lookup_ip`](Self::lookup_ip): dropping the future cancels the
    /// query in c-ares and leaves nothing behind.
    ///
    /// # Examples
    ///
    /// ```
    /// # use coro_net::dns::{Resolver, ResolverOptions};
    /// # let sched = coro_io::IoScheduler::new(Default::default())?;
    /// let resolver = Resolver::new(&sched, ResolverOptions::default())?;
    /// let v4 = coro_core::sync_wait(resolver.lookup_ipv4("localhost"))?;
    /// assert!(v4.iter().all(|ip| ip.is_loopback()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn lookup_ipv4(&self, host: &str) -> Lookup<Vec<Ipv4Addr>> {
        self.addrs(host, AddressFamily::INET, |a| {
            let v = addrs_of(a)?.into_iter().filter_map(|ip| match ip {
                IpAddr::V4(a) => Some(a),
                IpAddr::V6(_) => None,
            });
            non_empty(v.collect())
        })
    }

    /// The IPv6 addresses of `host` (hosts file, then AAAA records). An IPv6
    /// literal is returned as is; an IPv4 literal gives [`Error::NoData`].
    ///
    /// # Errors
    ///
    /// As [`lookup_ip`](Self::lookup_ip).
    ///
    /// # Cancel safety
    ///
    /// As [`lookup_ip`](Self::lookup_ip): dropping the future cancels the
    /// query in c-ares and leaves nothing behind.
    ///
    /// # Examples
    ///
    /// ```
    /// # use coro_net::dns::{Resolver, ResolverOptions};
    /// # let sched = coro_io::IoScheduler::new(Default::default())?;
    /// let resolver = Resolver::new(&sched, ResolverOptions::default())?;
    /// let v6 = coro_core::sync_wait(resolver.lookup_ipv6("::1"))?;
    /// assert_eq!(v6, [std::net::Ipv6Addr::LOCALHOST]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn lookup_ipv6(&self, host: &str) -> Lookup<Vec<Ipv6Addr>> {
        self.addrs(host, AddressFamily::INET6, |a| {
            let v = addrs_of(a)?.into_iter().filter_map(|ip| match ip {
                IpAddr::V6(a) => Some(a),
                IpAddr::V4(_) => None,
            });
            non_empty(v.collect())
        })
    }

    /// The names of `ip` (hosts file, then a PTR query under `in-addr.arpa`
    /// or `ip6.arpa`): the primary name first, then the others.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] when the address has no name, and the other
    /// variants as for [`lookup_ip`](Self::lookup_ip).
    ///
    /// # Cancel safety
    ///
    /// As [`lookup_ip`](Self::lookup_ip): dropping the future cancels the
    /// query in c-ares and leaves nothing behind.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use coro_net::dns::{Resolver, ResolverOptions};
    /// # let sched = coro_io::IoScheduler::new(Default::default())?;
    /// let resolver = Resolver::new(&sched, ResolverOptions::default())?;
    /// let names = coro_core::sync_wait(resolver.reverse("192.0.2.1".parse()?))?;
    /// println!("{names:?}");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn reverse(&self, ip: IpAddr) -> Lookup<Vec<String>> {
        Lookup {
            query: Query::new(self.shared.clone(), Request::Names(ip)),
            convert: |a| match a {
                Answer::Names(v) => non_empty(v),
                Answer::Addrs(_) => Err(Error::BadResponse),
            },
        }
    }

    /// The scheduler this resolver runs on.
    pub fn scheduler(&self) -> &IoScheduler {
        &self.shared.sched
    }
}

fn addrs_of(a: Answer) -> Result<Vec<IpAddr>, Error> {
    match a {
        Answer::Addrs(v) => Ok(v),
        Answer::Names(_) => Err(Error::BadResponse),
    }
}

fn non_empty<T>(v: Vec<T>) -> Result<Vec<T>, Error> {
    if v.is_empty() {
        Err(Error::NoData)
    } else {
        Ok(v)
    }
}

/// The future of a [`Resolver`] lookup; resolves to `Result<T, Error>`.
///
/// `Send` and `'static` (it owns what it needs), so it can be spawned
/// directly. Lazy: nothing is sent before the first poll.
///
/// # Cancel safety
///
/// Dropping it cancels the lookup inside c-ares (its callback is run and
/// freed, its sockets closed and deregistered, its timer removed) and
/// returns its channel to the resolver's pool.
#[must_use = "futures do nothing unless you .await or poll them"]
pub struct Lookup<T> {
    query: Query,
    convert: fn(Answer) -> Result<T, Error>,
}

impl<T> fmt::Debug for Lookup<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lookup")
            .field("query", &self.query)
            .finish_non_exhaustive()
    }
}

impl<T> Future for Lookup<T> {
    type Output = Result<T, Error>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        this.query
            .poll_answer(cx)
            .map(|r| r.and_then(|a| (this.convert)(a)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nameservers_of_a_resolv_conf() {
        let text = "# comment\nnameserver 10.0.0.1\nsearch example.test\n  nameserver  ::1\n\
                    nameserver\t10.0.0.9\nnameserver 10.0.0.8\tfoo\nnameserver fe80::1%eth0\n\
                    nameserver fe80::2\nnameserver fec0::1\nnameserver ::1.2.3.4\n\
                    nameserver ::0.0.0.1\nnameserver ::ffff:10.0.0.7\nnameserver not-an-ip\n\
                    nameservers 1.1.1.1\nnameserver 10.0.0.6 # a comment\nnameserver 2001:db8::1\n\
                    nameserver 10.0.0.5\r\nnameserver 2001:DB8::2\nnameserver 010.0.0.4\n\
                    \u{a0}nameserver 10.0.0.3\nnameserver 10.0.0.2\u{a0}\n";
        let want: Vec<IpAddr> = ["10.0.0.1", "::1", "2001:db8::1", "10.0.0.5", "2001:db8::2"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        assert_eq!(nameservers(text), want);
    }

    #[test]
    fn server_addresses_as_c_ares_lists_them() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(server_ip("127.0.0.1:53"), Some(ip("127.0.0.1")));
        assert_eq!(server_ip("10.0.0.1"), Some(ip("10.0.0.1")));
        assert_eq!(server_ip("[::1]:5353"), Some(ip("::1")));
        assert_eq!(server_ip("[fe80::1%eth0]:53"), Some(ip("fe80::1")));
        assert_eq!(server_ip("fe80::1%eth0"), Some(ip("fe80::1")));
        assert_eq!(server_ip("dns.example"), None);
    }
}
