//! TCP: [`TcpListener`] (bind, accept) and [`TcpStream`] (connect, owned-buffer
//! I/O, `futures_io` traits, socket options).
//!
//! # Examples
//!
//! ```
//! use coro_io::IoScheduler;
//! use coro_net::tcp::{TcpListener, TcpStream};
//! use futures::io::{AsyncReadExt, AsyncWriteExt};
//!
//! // The inherent owned-buffer `read`/`write`/`write_all` take precedence
//! // over the `futures` extension methods of the same name: call those
//! // through their trait (or use `read_exact`, `read_to_end`, `flush`, ...),
//! // or on the halves of `into_split`, which have no owned-buffer methods.
//!
//! let sched = IoScheduler::new(Default::default())?;
//! let listener = TcpListener::bind(&sched, "[::1]:0").or_else(|_| TcpListener::bind(&sched, "127.0.0.1:0"))?;
//! let addr = listener.local_addr()?;
//! let s = sched.clone();
//! let echo = sched.spawn(async move {
//!     let (mut conn, _) = listener.accept().await?;
//!     let mut buf = [0u8; 5];
//!     conn.read_exact(&mut buf).await?;
//!     AsyncWriteExt::write_all(&mut conn, &buf).await?;
//!     conn.flush().await
//! });
//! let reply = coro_core::sync_wait(sched.spawn(async move {
//!     let mut c = TcpStream::connect(&s, addr).await?;
//!     AsyncWriteExt::write_all(&mut c, b"hello").await?;
//!     let mut got = Vec::new();
//!     c.read_to_end(&mut got).await?;
//!     std::io::Result::Ok(got)
//! }))
//! .unwrap()?;
//! assert_eq!(reply, b"hello");
//! coro_core::sync_wait(echo).unwrap()?;
//! # std::io::Result::Ok(())
//! ```

mod happy;
mod listener;
mod socket;
mod stream;

pub use listener::{ListenOptions, TcpListener};
pub use socket::TcpSocket;
pub use stream::{OwnedReadHalf, OwnedWriteHalf, TcpStream};
