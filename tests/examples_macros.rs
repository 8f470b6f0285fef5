//! Runs the `macros` example and checks that the guide's "Attribute macros"
//! snippet (docs/GUIDE.md, linked from README) is that example's code, so the
//! snippet compiles.

mod common;
use common::example_bin;

use std::path::Path;
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

#[test]
fn macros_example() {
    let out = Command::new(example_bin("macros"))
        .output()
        .expect("run the macros example");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "answer = 42\n");
}

#[test]
fn readme_snippet_is_the_example() {
    let example = std::fs::read_to_string(Path::new(ROOT).join("examples/macros.rs")).unwrap();
    // The code after the `//!` header.
    let code: String = example
        .lines()
        .skip_while(|l| l.starts_with("//!") || l.is_empty())
        .map(|l| format!("{l}\n"))
        .collect();
    let docs = std::fs::read_to_string(Path::new(ROOT).join("README.md")).unwrap()
        + &std::fs::read_to_string(Path::new(ROOT).join("docs/GUIDE.md")).unwrap();
    assert!(
        docs.contains(&format!("```rust\n{code}```")),
        "the guide's Attribute macros snippet differs from examples/macros.rs:\n{code}"
    );
}
