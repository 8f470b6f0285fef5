//! Multi-producer, single-consumer channels with handles: the channel closes
//! when the last sender is dropped or when the receiver closes.
//!
//! - [`channel(cap)`](channel) gives a bounded [`Sender`] / [`Receiver`]
//!   pair: at most `cap` values are buffered (or reserved by
//!   [`Permit`]s), and [`Sender::send`] waits for a free slot.
//! - [`unbounded_channel()`](unbounded_channel) gives an [`UnboundedSender`]
//!   / [`UnboundedReceiver`] pair whose `send` never waits.
//!
//! Senders are `Clone`. When the last one is dropped the receiver still gets
//! every value already sent, then `recv()` returns `None`. When the receiver
//! is dropped or [`close`](Receiver::close)d, sends fail and hand the value
//! back in a [`SendError`](error::SendError); values already buffered can
//! still be received after a `close`.
//!
//! The names and semantics follow `tokio::sync::mpsc`, so code written for it
//! ports by changing the path. Where coro differs:
//!
//! - **Fairness of blocked senders.** Senders waiting for capacity are woken
//!   in FIFO order, but a woken sender competes with newcomers (`try_send`, a
//!   fresh `send`) for about a millisecond before it gets priority, as with
//!   [`Semaphore`](crate::Semaphore) (the slots *are* a `Semaphore`). tokio
//!   hands each freed slot straight to the oldest waiter.
//! - **A send that loses its receiver after taking a slot** returns
//!   `Err(SendError(value))`: the value comes back instead of being dropped
//!   with the channel.
//! - The futures are named types in [`crate::futures`] (`MpscSend`,
//!   `MpscRecv`, …) rather than `async fn`s; they are used the same way.
//! - Not provided (yet): `WeakSender`, owned permits (`reserve_owned`),
//!   `reserve_many`, `send_timeout` and the `blocking_*` methods.
//!
//! Every type works with any executor: the channel only ever sees a `Waker`.
//!
//! # Examples
//!
//! ```
//! use coro_sync::mpsc;
//!
//! # futures::executor::block_on(async {
//! let (tx, mut rx) = mpsc::channel(8);
//! for id in 0..3 {
//!     let tx = tx.clone();
//!     std::thread::spawn(move || {
//!         futures::executor::block_on(tx.send(id)).unwrap();
//!     });
//! }
//! drop(tx); // the channel closes once the three clones are gone too
//! let mut got = Vec::new();
//! while let Some(id) = rx.recv().await {
//!     got.push(id);
//! }
//! got.sort();
//! assert_eq!(got, [0, 1, 2]);
//! # });
//! ```

pub(crate) mod bounded;
pub(crate) mod chan;
pub mod error;
mod unbounded;

pub use bounded::{Permit, Receiver, Sender, channel};
pub use unbounded::{UnboundedReceiver, UnboundedSender, unbounded_channel};
