//! Runs the `macros` example and checks that README's "Attribute macros"
//! snippet is that example's code, so the snippet compiles.

use std::path::{Path, PathBuf};
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// `target/<profile>/deps/<test>-<hash>` -> `target/<profile>/examples/<name>`.
fn example_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>");
    profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX))
}

#[test]
fn macros_example() {
    let out = Command::new(example_path("macros"))
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
    let readme = std::fs::read_to_string(Path::new(ROOT).join("README.md")).unwrap();
    assert!(
        readme.contains(&format!("```rust\n{code}```")),
        "README's Attribute macros snippet differs from examples/macros.rs:\n{code}"
    );
}
