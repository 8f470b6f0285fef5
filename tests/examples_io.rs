//! The `cat` example copies files, pipes and redirected stdin to stdout on
//! both drivers, byte for byte, and reports a missing file clearly; the
//! `upper` example runs coro's async standard streams.

mod common;
use common::example_bin;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

fn data() -> (PathBuf, Vec<u8>) {
    // 1 MiB + a bit of varied bytes, not a multiple of the chunk size.
    let bytes: Vec<u8> = (0..(1 << 20) + 4097u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let path = std::env::temp_dir().join(format!("coro-cat-{}.bin", std::process::id()));
    std::fs::write(&path, &bytes).unwrap();
    (path, bytes)
}

#[test]
fn cat_copies_files_pipes_and_redirects_on_both_drivers() {
    let (path, bytes) = data();
    for driver in ["epoll", "uring"] {
        // Two file arguments, one after the other.
        let out = Command::new(example_bin("cat"))
            .args(["--driver", driver, "--chunk", "4096"])
            .arg(&path)
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.stdout.len(), 2 * bytes.len(), "{driver}");
        assert!(
            out.stdout == [bytes.as_slice(), bytes.as_slice()].concat(),
            "{driver}"
        );

        // stdin a pipe.
        let mut child = Command::new(example_bin("cat"))
            .args(["--driver", driver])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let feed = bytes.clone();
        let writer = std::thread::spawn(move || stdin.write_all(&feed).unwrap());
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.stdout == bytes, "{driver}: pipe copy differs");

        // stdin and stdout regular files (positional I/O on both ends).
        let copy = path.with_extension(format!("{driver}.out"));
        let status = Command::new(example_bin("cat"))
            .args(["--driver", driver])
            .stdin(std::fs::File::open(&path).unwrap())
            .stdout(std::fs::File::create(&copy).unwrap())
            .status()
            .unwrap();
        assert!(status.success());
        assert!(
            std::fs::read(&copy).unwrap() == bytes,
            "{driver}: redirect differs"
        );
        std::fs::remove_file(&copy).unwrap();

        // Two runs into one shared redirection (`{ cat a; cat b; } > out`),
        // then a read of stdin that a later command goes on reading: each
        // leaves the shared offset where it got to, as `cat` does (the
        // second run wrote over the first, positional writes moved nothing).
        let shared = path.with_extension(format!("{driver}.shared"));
        let out_file = std::fs::File::create(&shared).unwrap();
        for _ in 0..2 {
            let status = Command::new(example_bin("cat"))
                .args(["--driver", driver])
                .arg(&path)
                .stdout(out_file.try_clone().unwrap())
                .status()
                .unwrap();
            assert!(status.success());
        }
        assert!(
            std::fs::read(&shared).unwrap() == [bytes.as_slice(), bytes.as_slice()].concat(),
            "{driver}: the second run wrote over the first"
        );
        let inp = std::fs::File::open(&path).unwrap();
        let status = Command::new(example_bin("cat"))
            .args(["--driver", driver])
            .stdin(inp.try_clone().unwrap())
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
        let mut inp = inp;
        assert_eq!(
            std::io::Seek::stream_position(&mut inp).unwrap(),
            bytes.len() as u64,
            "{driver}: stdin's shared offset"
        );
        std::fs::remove_file(&shared).unwrap();

        // A missing file: exit 1, the name and the OS reason on stderr.
        let out = Command::new(example_bin("cat"))
            .args(["--driver", driver, "/nonexistent/coro-cat"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("/nonexistent/coro-cat") && err.contains("No such file"),
            "{err}"
        );
    }
    std::fs::remove_file(&path).unwrap();
}

/// The `upper` example: coro's async stdin/stdout/stderr over a pipe and
/// over regular files, with more than one blocking read's worth of input,
/// and a stdout closed early reported as an error instead of a crash.
#[test]
fn upper_uses_async_standard_streams() {
    let text: String = (0..40_000).map(|i| format!("line {i} abc\n")).collect();
    let want = text.to_uppercase();

    // Pipes on both ends.
    let mut child = Command::new(example_bin("upper"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let feed = text.clone();
    let writer = std::thread::spawn(move || stdin.write_all(feed.as_bytes()).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout == want.as_bytes(), "pipe output differs");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "40000 lines\n");

    // Regular files on both ends.
    let input = std::env::temp_dir().join(format!("coro-upper-{}.txt", std::process::id()));
    let output = input.with_extension("out");
    std::fs::write(&input, &text).unwrap();
    let status = Command::new(example_bin("upper"))
        .stdin(std::fs::File::open(&input).unwrap())
        .stdout(std::fs::File::create(&output).unwrap())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    assert!(std::fs::read(&output).unwrap() == want.as_bytes());
    std::fs::remove_file(&input).unwrap();
    std::fs::remove_file(&output).unwrap();

    // The reader of stdout goes away: the writer sees BrokenPipe, exits 1.
    let mut child = Command::new(example_bin("upper"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let mut stdin = child.stdin.take().unwrap();
    let _ = stdin.write_all(text.as_bytes());
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Broken pipe"), "{err}");
}
