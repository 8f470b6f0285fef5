//! A tiny `--flag value` parser for the example servers and their tokio twins
//! in `bench/` (no CLI crate: they take a few flags).

use std::cell::RefCell;
use std::str::FromStr;

/// Command-line flags of the form `--name value`, and switches (`--name`
/// alone) for the names given to [`Args::from_env_with_switches`].
#[derive(Debug, Default)]
pub struct Args {
    pairs: Vec<(String, String)>,
    switches: Vec<String>,
    /// The names the program asked about (see [`Args::reject_unknown`]).
    asked: RefCell<Vec<String>>,
}

/// `--help` (or `-h`) anywhere on the line: the usage on stdout, exit 0.
fn help_if_asked(usage: &str) {
    if std::env::args().skip(1).any(|a| a == "--help" || a == "-h") {
        println!("usage: {usage}");
        std::process::exit(0);
    }
}

impl Args {
    /// Reads `std::env::args()`; exits with a usage message on a malformed line.
    pub fn from_env(usage: &str) -> Args {
        help_if_asked(usage);
        match Args::parse(std::env::args().skip(1)) {
            Ok(a) => a,
            Err(e) => {
                eprintln!("error: {e}\nusage: {usage}");
                std::process::exit(2);
            }
        }
    }

    /// Like [`Args::from_env`], with `switches` taking no value.
    pub fn from_env_with_switches(usage: &str, switches: &[&str]) -> Args {
        help_if_asked(usage);
        match Args::parse_with_switches(std::env::args().skip(1), switches) {
            Ok(a) => a,
            Err(e) => {
                eprintln!("error: {e}\nusage: {usage}");
                std::process::exit(2);
            }
        }
    }

    /// Parses `--name value` pairs.
    pub fn parse(it: impl IntoIterator<Item = String>) -> Result<Args, String> {
        Args::parse_with_switches(it, &[])
    }

    /// Parses `--name value` pairs and the `--switch`es named.
    pub fn parse_with_switches(
        it: impl IntoIterator<Item = String>,
        switches: &[&str],
    ) -> Result<Args, String> {
        let mut pairs = Vec::new();
        let mut on = Vec::new();
        let mut it = it.into_iter();
        while let Some(flag) = it.next() {
            let Some(name) = flag.strip_prefix("--") else {
                return Err(format!("unexpected argument {flag:?}"));
            };
            if switches.contains(&name) {
                on.push(name.to_owned());
                continue;
            }
            let value = it.next().ok_or_else(|| format!("--{name} needs a value"))?;
            pairs.push((name.to_owned(), value));
        }
        Ok(Args {
            pairs,
            switches: on,
            asked: RefCell::new(Vec::new()),
        })
    }

    fn ask(&self, name: &str) {
        let mut asked = self.asked.borrow_mut();
        if !asked.iter().any(|a| a == name) {
            asked.push(name.to_owned());
        }
    }

    /// Exits with a usage message if a flag was given that the program
    /// never asked about (nor names in `also`): a misspelled `--thread 1`
    /// must not run with the defaults as if it had been understood. Call
    /// it once every flag was read.
    pub fn reject_unknown(&self, usage: &str, also: &[&str]) {
        let asked = self.asked.borrow();
        let known = |n: &str| asked.iter().any(|a| a == n) || also.contains(&n);
        let given = self.pairs.iter().map(|(n, _)| n).chain(&self.switches);
        if let Some(bad) = given.into_iter().find(|n| !known(n)) {
            eprintln!("error: unknown flag --{bad}\nusage: {usage}");
            std::process::exit(2);
        }
    }

    /// Whether the switch `--name` was given.
    pub fn has(&self, name: &str) -> bool {
        self.ask(name);
        self.switches.iter().any(|s| s == name)
    }

    /// The value of `--name`, if given.
    pub fn opt(&self, name: &str) -> Option<&str> {
        self.ask(name);
        self.pairs
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Like [`get`](Args::get), and exits with a usage error unless the
    /// value is in `range` (a count of 0, or one no machine can hold, is
    /// a mistake to report, not to round to something that runs).
    pub fn get_in<T>(&self, name: &str, default: T, range: std::ops::RangeInclusive<T>) -> T
    where
        T: FromStr + PartialOrd + std::fmt::Display,
    {
        let v = self.get(name, default);
        if !range.contains(&v) {
            eprintln!(
                "error: --{name} must be from {} to {}, not {v}",
                range.start(),
                range.end()
            );
            std::process::exit(2);
        }
        v
    }

    /// The value of `--name` parsed as `T`, or `default`; exits on a bad value.
    pub fn get<T: FromStr>(&self, name: &str, default: T) -> T {
        self.ask(name);
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
    fn switches_take_no_value() {
        let a = Args::parse_with_switches(["--tls", "--port", "1"].map(String::from), &["tls"])
            .unwrap();
        assert!(a.has("tls"));
        assert_eq!(a.get("port", 0u16), 1);
        assert_eq!(a.opt("cert"), None);
        assert!(
            !Args::parse(["--port", "1"].map(String::from))
                .unwrap()
                .has("tls")
        );
    }

    #[test]
    fn knows_which_flags_were_asked_about() {
        let a = Args::parse(["--thread", "1"].map(String::from)).unwrap();
        assert_eq!(a.get("threads", 4usize), 4);
        let asked = a.asked.borrow();
        assert!(asked.iter().any(|n| n == "threads"));
        assert!(!asked.iter().any(|n| n == "thread"));
    }

    #[test]
    fn rejects_missing_value_and_stray_words() {
        assert!(Args::parse(["--port"].map(String::from)).is_err());
        assert!(Args::parse(["port"].map(String::from)).is_err());
    }
}
