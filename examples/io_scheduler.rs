//! libcoro's `io_scheduler` example: an I/O scheduler with its own event
//! thread and a two-worker pool runs a TCP server task and a client task
//! that exchange one request and one response.
//!
//! Run with `cargo run --example io_scheduler`. The three start lines may
//! come in any order (three threads start at once), and a worker that is
//! slow to start may print its line after the tasks' lines; the stop lines
//! too come in any order.

use std::sync::Arc;

use coro::io::{
    ExecutionStrategy, IoScheduler, IoSchedulerOptions, PollOp, PollStatus, ThreadPoolOptions,
    ThreadStrategy,
};
use coro::net::tcp::{TcpListener, TcpStream};

fn main() -> std::io::Result<()> {
    let scheduler = IoScheduler::new(IoSchedulerOptions {
        // The scheduler spawns a dedicated event-processing thread. This is the
        // default; `ThreadStrategy::Manual` lets you drive it with `process_events()`.
        thread_strategy: ThreadStrategy::Spawn,
        // Called on that thread when it starts and when it stops.
        on_io_thread_start: Some(Arc::new(|| {
            println!("io_scheduler::process event thread start")
        })),
        on_io_thread_stop: Some(Arc::new(|| {
            println!("io_scheduler::process event thread stop")
        })),
        // Tasks run on a thread pool of two workers; `ExecutionStrategy::Inline`
        // runs them on the event thread instead (best for short tasks).
        execution: ExecutionStrategy::ThreadPool(ThreadPoolOptions {
            thread_count: 2,
            on_thread_start: Some(Arc::new(|i| {
                println!("io_scheduler::thread_pool worker {i} starting")
            })),
            on_thread_stop: Some(Arc::new(|i| {
                println!("io_scheduler::thread_pool worker {i} stopping")
            })),
            ..Default::default()
        }),
        ..Default::default()
    })?;

    // Create the server before either task runs, so that it listens by the
    // time the client connects: this creates the socket, binds and listens.
    // (Port 0: the kernel picks a free port; the client asks the listener.)
    let server = TcpListener::bind(&scheduler, "127.0.0.1:0")?;
    let addr = server.local_addr()?;

    let make_server_task = async move {
        // Wait for an incoming connection and accept it.
        if server.poll(None).await != PollStatus::Event {
            return; // Handle error, see PollStatus for the states.
        }
        let Ok((client, _peer)) = server.accept().await else {
            return; // Handle error.
        };

        // Wait for the client's message; it is small enough to arrive in one read.
        if client.poll(PollOp::Read, None).await != PollStatus::Event {
            return;
        }
        // The buffer moves into the read and comes back with the result.
        let (status, request) = client.read(Vec::with_capacity(256)).await;
        if status.is_err() {
            return; // Handle error.
        }
        println!("server: {}", String::from_utf8_lossy(&request));

        // Make sure the socket can be written to, then send the response.
        // `write_all` loops over partial sends (libcoro's example does it by hand).
        if client.poll(PollOp::Write, None).await != PollStatus::Event {
            return;
        }
        let (status, _) = client.write_all(b"Hello from server.".as_slice()).await;
        if let Err(e) = status {
            eprintln!("server: send failed: {e}"); // Handle error.
        }
    };

    let sched = scheduler.clone();
    let make_client_task = async move {
        // Omitting error checking for the client: each step should check the
        // status and the number of bytes sent or received.
        let client = TcpStream::connect(&sched, addr).await.expect("connect");
        client.poll(PollOp::Write, None).await;
        let _ = client.write(b"Hello from client.".as_slice()).await;
        client.poll(PollOp::Read, None).await;
        let (_, response) = client.read(Vec::with_capacity(256)).await;
        println!("client: {}", String::from_utf8_lossy(&response));
    };

    // Spawn both onto the scheduler and wait for them to complete.
    let tasks = vec![
        scheduler.spawn(make_server_task),
        scheduler.spawn(make_client_task),
    ];
    for r in coro::sync_wait(coro::when_all(tasks)) {
        r.expect("task panicked");
    }
    // Stop the event thread and the pool (libcoro does this in the destructor).
    scheduler.shutdown();
    Ok(())
}
