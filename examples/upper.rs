//! `tr a-z A-Z` with async standard streams: reads stdin line by line,
//! writes each line upper-cased to stdout, and the line count to stderr.
//! Stdin may be a terminal, a pipe or a file; a closed stdout (`| head`)
//! is reported, not a crash.
//!
//! ```text
//! printf 'one\ntwo\n' | cargo run --example upper
//! ```

use futures::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

#[coro::main]
async fn main() -> std::io::Result<()> {
    let mut input = BufReader::new(coro::io::stdin());
    let mut out = coro::io::stdout();
    let (mut line, mut lines) = (String::new(), 0u64);
    while input.read_line(&mut line).await? > 0 {
        out.write_all(line.to_uppercase().as_bytes()).await?;
        line.clear();
        lines += 1;
    }
    out.flush().await?;
    let mut err = coro::io::stderr();
    err.write_all(format!("{lines} lines\n").as_bytes()).await?;
    err.flush().await
}
