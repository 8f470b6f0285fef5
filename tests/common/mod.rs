//! What the example-running tests share: finding an example's binary.

use std::path::PathBuf;

/// The newest built binary of example `name`: `target/<profile>/examples/`
/// holds `name` and, from some cargo invocations, `name-<16 hex digits>`.
///
/// # Panics
///
/// If the example was not built (run `cargo test -p coro`, which builds the
/// examples, or `cargo build --examples`).
pub(crate) fn example_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test binary lives in target/<profile>/deps")
        .join("examples");
    let is_candidate = |file: &str| {
        file == name
            || file
                .strip_prefix(name)
                .and_then(|r| r.strip_prefix('-'))
                .is_some_and(|h| h.len() == 16 && h.bytes().all(|b| b.is_ascii_hexdigit()))
    };
    std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_str().is_some_and(is_candidate))
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .max()
        .map(|(_, p)| p)
        .unwrap_or_else(|| {
            panic!(
                "example {name} not built in {}: run `cargo test -p coro` \
                 (or `cargo build --examples`)",
                dir.display()
            )
        })
}
