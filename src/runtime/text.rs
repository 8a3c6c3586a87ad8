//! Text for people: error chains on one line and messages cut to what Kubernetes fields hold. Pure.

/// An error and its sources on one line, `a: b: c`, skipping a source whose text its wrapper
/// already printed.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}

/// `s` cut to at most `max` bytes on a character boundary, with `…` when cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer: {0}")]
    struct Repeats(#[source] std::io::Error);

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Wraps(#[source] std::io::Error);

    #[test]
    fn chains_skip_what_the_wrapper_printed() {
        let io = || std::io::Error::other("disk full");
        assert_eq!(error_chain(&Repeats(io())), "outer: disk full");
        assert_eq!(error_chain(&Wraps(io())), "outer: disk full");
    }

    #[test]
    fn truncation_respects_characters() {
        assert_eq!(truncate("héllo", 2), "h…");
        assert_eq!(truncate("short", 10), "short");
    }
}
