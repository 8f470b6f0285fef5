//! README's (and the guide's) snippets are the marked regions of the
//! examples they name (`// README-BEGIN` .. `// README-END`), and their
//! output blocks are what those examples print, so neither can drift from
//! code that compiles and runs.

mod common;
use common::example_bin;

use std::path::Path;
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// README.md and the guide it links (docs/GUIDE.md), which hold the
/// snippets and outputs between them.
fn readme() -> String {
    let read = |f: &str| std::fs::read_to_string(Path::new(ROOT).join(f)).unwrap();
    read("README.md") + &read("docs/GUIDE.md")
}

/// `(marker argument, fenced block body)` for every `<!-- kind: x -->`.
fn blocks(readme: &str, kind: &str) -> Vec<(String, String)> {
    let tag = format!("<!-- {kind}: ");
    let mut out = Vec::new();
    let mut rest = readme;
    while let Some(i) = rest.find(&tag) {
        rest = &rest[i + tag.len()..];
        let end = rest.find(" -->").expect("unterminated marker");
        let what = rest[..end].to_string();
        let fence = rest.find("```").expect("a fenced block after the marker");
        let body_start = fence + rest[fence..].find('\n').unwrap() + 1;
        let body_end = body_start + rest[body_start..].find("```").unwrap();
        out.push((what, rest[body_start..body_end].to_string()));
        rest = &rest[body_end..];
    }
    out
}

fn region(example: &str) -> String {
    let src = std::fs::read_to_string(Path::new(ROOT).join(example)).unwrap();
    let lines: Vec<&str> = src.lines().collect();
    let a = lines
        .iter()
        .position(|l| l.starts_with("// README-BEGIN"))
        .unwrap_or_else(|| panic!("{example} has no README-BEGIN marker"));
    let b = lines
        .iter()
        .position(|l| l.starts_with("// README-END"))
        .unwrap_or_else(|| panic!("{example} has no README-END marker"));
    lines[a + 1..b].iter().map(|l| format!("{l}\n")).collect()
}

#[test]
fn snippets_are_the_examples_marked_code() {
    let r = readme();
    let snippets = blocks(&r, "snippet");
    assert!(
        snippets.len() >= 15,
        "only {} snippets found",
        snippets.len()
    );
    for (example, body) in &snippets {
        assert_eq!(
            body,
            &region(example),
            "README's snippet of {example} differs from the example's marked region"
        );
    }
    // Every marked example appears in README.
    for entry in std::fs::read_dir(Path::new(ROOT).join("examples")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "rs") {
            let src = std::fs::read_to_string(&path).unwrap();
            if src.contains("// README-BEGIN") {
                let name = format!("examples/{}", path.file_name().unwrap().to_string_lossy());
                assert!(
                    snippets.iter().any(|(e, _)| *e == name),
                    "{name} is marked for README but not shown there"
                );
            }
        }
    }
}

#[test]
fn outputs_are_what_the_examples_print() {
    let r = readme();
    let outputs = blocks(&r, "output");
    assert!(outputs.len() >= 5, "only {} outputs found", outputs.len());
    for (example, body) in outputs {
        let name = example
            .trim_start_matches("examples/")
            .trim_end_matches(".rs");
        let out = Command::new(example_bin(name)).output().unwrap();
        assert!(out.status.success(), "{name} failed");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            body,
            "README's output of {example} differs from what it prints"
        );
    }
}
