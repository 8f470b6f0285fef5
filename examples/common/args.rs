//! A tiny `--flag value` parser for the example servers and their tokio twins
//! in `bench/` (no CLI crate: they take a few flags).

use std::str::FromStr;

/// Command-line flags of the form `--name value`.
#[derive(Debug, Default)]
pub struct Args {
    pairs: Vec<(String, String)>,
}

impl Args {
    /// Reads `std::env::args()`; exits with a usage message on a malformed line.
    pub fn from_env(usage: &str) -> Args {
        match Args::parse(std::env::args().skip(1)) {
            Ok(a) => a,
            Err(e) => {
                eprintln!("error: {e}\nusage: {usage}");
                std::process::exit(2);
            }
        }
    }

    /// Parses `--name value` pairs.
    pub fn parse(it: impl IntoIterator<Item = String>) -> Result<Args, String> {
        let mut pairs = Vec::new();
        let mut it = it.into_iter();
        while let Some(flag) = it.next() {
            let Some(name) = flag.strip_prefix("--") else {
                return Err(format!("unexpected argument {flag:?}"));
            };
            let value = it.next().ok_or_else(|| format!("--{name} needs a value"))?;
            pairs.push((name.to_owned(), value));
        }
        Ok(Args { pairs })
    }

    /// The value of `--name` parsed as `T`, or `default`; exits on a bad value.
    pub fn get<T: FromStr>(&self, name: &str, default: T) -> T {
        match self.pairs.iter().rev().find(|(n, _)| n == name) {
            None => default,
            Some((_, v)) => v.parse().unwrap_or_else(|_| {
                eprintln!("error: bad value {v:?} for --{name}");
                std::process::exit(2);
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Args;

    #[test]
    fn parses_pairs_and_defaults() {
        let a = Args::parse(["--port", "8080", "--threads", "2"].map(String::from)).unwrap();
        assert_eq!(a.get("port", 0u16), 8080);
        assert_eq!(a.get("threads", 1usize), 2);
        assert_eq!(a.get("conns", 64usize), 64);
    }

    #[test]
    fn rejects_missing_value_and_stray_words() {
        assert!(Args::parse(["--port"].map(String::from)).is_err());
        assert!(Args::parse(["port"].map(String::from)).is_err());
    }
}
