//! Compile errors on misuse of the macros, with their spans (trybuild).
//! Regenerate the expected output with `TRYBUILD=overwrite cargo test -p
//! coro-macros --test ui` and review the diff.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/main_errors.rs");
    t.compile_fail("tests/ui/test_errors.rs");
}
