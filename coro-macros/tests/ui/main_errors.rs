// Every way to misuse #[coro::main]; each function is checked on its own.

#[coro::main]
fn not_async() {}

#[coro::main]
async fn with_args(n: u32) {
    let _ = n;
}

#[coro::main]
async fn generic<T>() {}

#[coro::main(drivr = "epoll")]
async fn unknown_key() {}

#[coro::main(driver = "epol")]
async fn bad_driver() {}

#[coro::main(driver = epoll)]
async fn driver_not_a_string() {}

#[coro::main(threads = 0)]
async fn zero_threads() {}

#[coro::main(threads = 4097)]
async fn too_many_threads() {}

#[coro::main(threads = 2, inline)]
async fn threads_and_inline() {}

#[coro::main(driver = "epoll", driver = "uring")]
async fn duplicate() {}

#[coro::main(driver = "epoll", entries = 64)]
async fn entries_on_epoll() {}

#[coro::main(both_drivers)]
async fn both_drivers_on_main() {}

#[coro::main(inline = true)]
async fn flag_with_value() {}

#[coro::main]
struct NotAFunction;

fn main() {}
