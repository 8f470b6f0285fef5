//! Host name checks done before a query is sent.

use super::Error;

/// Longest name in presentation form without the trailing dot (RFC 1035:
/// 255 octets on the wire).
const MAX_NAME: usize = 253;
/// Longest label (RFC 1035).
const MAX_LABEL: usize = 63;

/// Accept what can be a host name: dot-separated labels of ASCII letters,
/// digits, `-` and `_` (service labels), 1..=63 bytes each, 253 bytes in
/// all; one trailing dot (fully qualified) is allowed.
pub(crate) fn check_host(host: &str) -> Result<(), Error> {
    let name = host.strip_suffix('.').unwrap_or(host);
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(Error::BadName);
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > MAX_LABEL {
            return Err(Error::BadName);
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(Error::BadName);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_names() {
        for n in [
            "localhost",
            "example.com",
            "example.com.",
            "a-b.c_d.e",
            "_sip._udp.example.org",
            "xn--bcher-kva.example",
            "1.2.3.4.in-addr.arpa",
        ] {
            assert_eq!(check_host(n), Ok(()), "{n}");
        }
        let label = "a".repeat(63);
        let long = [label.as_str(); 3].join(".") + "." + &"b".repeat(61);
        assert_eq!(long.len(), 253);
        assert_eq!(check_host(&long), Ok(()));
    }

    #[test]
    fn bad_names() {
        let long_label = "a".repeat(64);
        let label = "a".repeat(63);
        let too_long = [label.as_str(); 4].join(".");
        for n in [
            "",
            ".",
            "..",
            "a..b",
            ".a",
            "a b",
            "a\0b",
            "bücher.example",
            "a/b",
            "a:b",
            "a.b..",
            long_label.as_str(),
            too_long.as_str(),
        ] {
            assert_eq!(check_host(n), Err(Error::BadName), "{n:?}");
        }
    }
}
