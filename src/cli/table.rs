//! Text for the terminal: aligned tables and kubectl-style ages (`45s`, `12m`, `3h`, `5d`). Pure.

/// Rows (the first is the header) with columns padded to their widest cell, separated by three
/// spaces; the last column is not padded.
pub fn render(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(cell);
                line.push_str(&" ".repeat(widths[c] - cell.chars().count() + 3));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// How long ago `then` (RFC 3339) was, from `now`, as kubectl shows it; `-` when unreadable.
pub fn age(then: Option<&str>, now: k8s_openapi::jiff::Timestamp) -> String {
    let Some(then) = then.and_then(|t| t.parse::<k8s_openapi::jiff::Timestamp>().ok()) else {
        return "-".into();
    };
    let seconds = (now.as_second() - then.as_second()).max(0);
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 3600 * 2 => format!("{}m", s / 60),
        s if s < 86400 * 2 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

/// `text` on one line and cut to `max` characters (with `…`), for a table cell.
pub fn cell(text: &str, max: usize) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() <= max {
        return line;
    }
    let cut: String = line.chars().take(max.saturating_sub(1)).collect();
    format!("{cut}…")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_on_the_widest_cell() {
        let rows = vec![
            vec!["NAME".to_string(), "READY".into(), "MESSAGE".into()],
            vec!["a-long-name".into(), "True".into(), "ok".into()],
        ];
        assert_eq!(
            render(&rows),
            "NAME          READY   MESSAGE\na-long-name   True    ok\n"
        );
    }

    #[test]
    fn ages_read_like_kubectl() {
        let now: k8s_openapi::jiff::Timestamp = "2026-01-03T00:00:00Z".parse().unwrap();
        assert_eq!(age(Some("2026-01-02T23:59:15Z"), now), "45s");
        assert_eq!(age(Some("2026-01-02T23:30:00Z"), now), "30m");
        assert_eq!(age(Some("2026-01-02T20:00:00Z"), now), "4h");
        assert_eq!(age(Some("2025-12-29T00:00:00Z"), now), "5d");
        assert_eq!(age(None, now), "-");
    }

    #[test]
    fn cells_are_one_line_and_bounded() {
        assert_eq!(cell("a\n  b", 10), "a b");
        assert_eq!(cell("abcdefgh", 5), "abcd…");
    }
}
