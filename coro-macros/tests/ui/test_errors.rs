// Misuse specific to #[coro::test].

#[coro::test(both_drivers, driver = "epoll")]
async fn both_drivers_and_driver() {}

#[coro::test]
async fn test_with_args(n: u32) {
    let _ = n;
}

#[coro::test(both_drivers)]
async fn too_many_args(a: coro::io::DriverKind, b: u32) {
    let _ = (a, b);
}

#[coro::test]
#[test]
async fn doubled_test_attribute() {}

#[coro::test]
fn sync_test() {}

fn main() {}
