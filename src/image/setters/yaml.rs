//! Where the values of a YAML text are, byte for byte: a comment- and position-keeping read of
//! the text with granit-parser's event stream (spans with byte offsets, comment events), and the
//! spelling of a new value in an existing scalar's quoting style. Nothing here re-serialises a
//! document: callers replace the bytes of one scalar and leave every other byte as it was. Pure.

use std::ops::Range;

use granit_parser::{Event, Parser, Placement, ScalarStyle};

/// A comment at the end of a line (`key: value # comment`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineComment {
    /// The text after `#`.
    pub text: String,
    /// 1-based line.
    pub line: usize,
    /// Byte offset of `#`.
    pub start: usize,
}

/// A node that is a value (not a mapping key), as the last thing on its line before a comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueNode {
    Scalar(ScalarValue),
    /// `*name`: the value lives at its anchor.
    Alias,
}

/// A scalar value and the bytes that spell it, quotes included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScalarValue {
    pub value: String,
    pub style: Style,
    pub bytes: Range<usize>,
    /// Inside a flow collection (`[...]`, `{...}`), where `,[]{}` end a plain scalar.
    pub in_flow: bool,
}

/// A scalar's quoting style.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Plain,
    SingleQuoted,
    DoubleQuoted,
    /// `|` or `>`.
    Block,
}

/// The text's line comments, each with the value node that ends last on its line before it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scan {
    pub comments: Vec<(LineComment, Option<ValueNode>)>,
}

/// Why a text could not be read as YAML.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {reason}")]
pub struct YamlError {
    pub line: usize,
    pub column: usize,
    pub reason: String,
}

#[derive(Debug, Clone, Copy)]
enum Frame {
    Mapping { expect_key: bool, flow: bool },
    Sequence { flow: bool },
}

/// Reads every document of `text` and pairs each end-of-line comment with the value before it.
pub fn scan(text: &str) -> Result<Scan, YamlError> {
    let mut stack: Vec<Frame> = Vec::new();
    // Value nodes in source order: (end byte, end line, node).
    let mut values: Vec<(usize, usize, ValueNode)> = Vec::new();
    let mut comments: Vec<LineComment> = Vec::new();
    for next in Parser::new_from_str(text) {
        let (event, span) = next.map_err(|e| {
            let at = e.marker();
            YamlError {
                line: at.line(),
                column: at.col() + 1,
                reason: e.to_string(),
            }
        })?;
        let bytes = span.byte_range().unwrap_or(0..0);
        let in_flow = matches!(
            stack.last(),
            Some(Frame::Mapping { flow: true, .. } | Frame::Sequence { flow: true })
        );
        let node = matches!(
            event,
            Event::Scalar(..)
                | Event::Alias(_)
                | Event::MappingStart(..)
                | Event::SequenceStart(..)
        );
        // Advances the parent mapping past this node.
        let key = node && is_key(&mut stack);
        match event {
            Event::Comment(body, Placement::Right) => comments.push(LineComment {
                text: body.into_owned(),
                line: span.start.line(),
                start: bytes.start,
            }),
            Event::Scalar(value, style, _, _) if !key && !bytes.is_empty() => {
                let bytes = with_quotes(text, bytes, style);
                let style = match style {
                    ScalarStyle::Plain => Style::Plain,
                    ScalarStyle::SingleQuoted => Style::SingleQuoted,
                    ScalarStyle::DoubleQuoted => Style::DoubleQuoted,
                    _ => Style::Block,
                };
                let node = ValueNode::Scalar(ScalarValue {
                    value: value.into_owned(),
                    style,
                    bytes: bytes.clone(),
                    in_flow,
                });
                values.push((bytes.end, span.end.line(), node));
            }
            Event::Alias(_) if !key => {
                values.push((bytes.end, span.end.line(), ValueNode::Alias));
            }
            Event::MappingStart(style, ..) => stack.push(Frame::Mapping {
                expect_key: true,
                flow: style == granit_parser::StructureStyle::Flow,
            }),
            Event::SequenceStart(style, ..) => stack.push(Frame::Sequence {
                flow: style == granit_parser::StructureStyle::Flow,
            }),
            Event::MappingEnd | Event::SequenceEnd => {
                stack.pop();
            }
            Event::DocumentStart(..) | Event::DocumentEnd => stack.clear(),
            _ => {}
        }
    }
    let paired = comments
        .into_iter()
        .map(|comment| {
            let node = values
                .iter()
                .rev()
                .find(|(end, line, _)| *end <= comment.start && *line == comment.line)
                .map(|(_, _, node)| node.clone());
            (comment, node)
        })
        .collect();
    Ok(Scan { comments: paired })
}

/// Whether the node an event opens (or is) sits in a key position; advances its parent mapping.
fn is_key(stack: &mut [Frame]) -> bool {
    match stack.last_mut() {
        Some(Frame::Mapping { expect_key, .. }) => {
            let key = *expect_key;
            *expect_key = !key;
            key
        }
        _ => false,
    }
}

/// A quoted scalar's span with its quotes, whichever way the parser reports it.
fn with_quotes(text: &str, bytes: Range<usize>, style: ScalarStyle) -> Range<usize> {
    let quote = match style {
        ScalarStyle::SingleQuoted => b'\'',
        ScalarStyle::DoubleQuoted => b'"',
        _ => return bytes,
    };
    let src = text.as_bytes();
    if src.get(bytes.start) == Some(&quote) {
        return bytes;
    }
    let start = bytes.start.saturating_sub(1);
    let end = if src.get(bytes.end) == Some(&quote) {
        bytes.end + 1
    } else {
        bytes.end
    };
    start..end
}

/// How `value` is written where a scalar of `style` was: in the same style when that style can
/// say it and a plain scalar would still read as a string; otherwise double-quoted. `None` for
/// block scalars.
pub fn spell(value: &str, style: Style, in_flow: bool) -> Option<String> {
    match style {
        Style::Plain if plain_reads_as_string(value, in_flow) => Some(value.to_owned()),
        Style::SingleQuoted if !value.contains(['\n', '\r']) && is_printable(value) => {
            Some(format!("'{}'", value.replace('\'', "''")))
        }
        Style::Block => None,
        _ => Some(double_quoted(value)),
    }
}

fn is_printable(value: &str) -> bool {
    !value.chars().any(|c| c.is_control() && c != '\t')
}

fn double_quoted(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Whether `value`, written plain, reads back as the same string (not a number, boolean or null,
/// and not cut short by YAML syntax).
fn plain_reads_as_string(value: &str, in_flow: bool) -> bool {
    let Some(first) = value.chars().next() else {
        return false;
    };
    let syntax_free = !value.starts_with(char::is_whitespace)
        && !value.ends_with(char::is_whitespace)
        && !"-?:,[]{}#&*!|>'\"%@`".contains(first)
        && !value.contains(": ")
        && !value.contains(" #")
        && !value.ends_with(':')
        && is_printable(value)
        && !value.contains(['\t'])
        && !(in_flow && value.contains([',', '[', ']', '{', '}']));
    syntax_free && !resolves_to_non_string(value)
}

/// YAML 1.1 and 1.2 core-schema scalars that are not strings.
fn resolves_to_non_string(value: &str) -> bool {
    const WORDS: [&str; 12] = [
        "null", "~", "true", "false", "yes", "no", "on", "off", "y", "n", ".inf", ".nan",
    ];
    let lower = value.to_ascii_lowercase();
    let unsigned = lower.trim_start_matches(['+', '-']);
    if WORDS.contains(&lower.as_str()) || WORDS.contains(&unsigned) {
        return true;
    }
    let digits = unsigned.replace('_', "");
    let number = digits.parse::<f64>().is_ok() && !digits.contains(['i', 'n']);
    let radix = ["0x", "0o", "0b"].iter().any(|p| {
        digits
            .strip_prefix(p)
            .is_some_and(|r| !r.is_empty() && r.chars().all(|c| c.is_ascii_hexdigit()))
    });
    // YAML 1.1 sexagesimal: 1:30 or 1:30:00.
    let sexagesimal = digits.contains(':')
        && digits
            .split(':')
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit() || c == '.'));
    number || radix || sexagesimal
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scalar_at(text: &str, line: usize) -> ScalarValue {
        let scan = scan(text).unwrap();
        let (_, node) = scan
            .comments
            .into_iter()
            .find(|(c, _)| c.line == line)
            .expect("a comment on that line");
        match node {
            Some(ValueNode::Scalar(s)) => s,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn spans_cover_exactly_the_value_in_every_style() {
        let text = "a: plain:1 # c\nb: 'single' # c\nc: \"double\" # c\nd: &anchor anchored # c\n\
                    e: {x: 1, y: flow} # c\nf: [1, last] # c\ng: !!str tagged # c\r\nh:   spaced   # c\n";
        let cases = [
            (1, "plain:1"),
            (2, "'single'"),
            (3, "\"double\""),
            (4, "anchored"),
            (5, "flow"),
            (6, "last"),
            (7, "tagged"),
            (8, "spaced"),
        ];
        for (line, spelled) in cases {
            let s = scalar_at(text, line);
            assert_eq!(&text[s.bytes.clone()], spelled, "line {line}");
        }
        assert!(scalar_at(text, 5).in_flow);
        assert!(!scalar_at(text, 1).in_flow);
    }

    #[test]
    fn keys_aliases_and_empty_values_are_not_targets() {
        let text = "a: &x 1\nb: *x # c\nc: # c\n  d: 2\n? k # c\n: v\n";
        let scan = scan(text).unwrap();
        let by_line = |line| {
            scan.comments
                .iter()
                .find(|(c, _)| c.line == line)
                .unwrap()
                .1
                .clone()
        };
        assert_eq!(by_line(2), Some(ValueNode::Alias));
        assert_eq!(by_line(3), None);
        assert_eq!(by_line(5), None, "a key is not a value");
    }

    #[test]
    fn errors_say_where() {
        let e = scan("a: [1, 2\nb: c\n").unwrap_err();
        assert!(e.line >= 1, "{e}");
        assert!(scan("a: b\n---\nc: d\n").is_ok(), "multi-documents");
    }

    #[test]
    fn new_values_keep_the_style_when_it_can_say_them() {
        assert_eq!(
            spell("reg/app:1.2.3", Style::Plain, false).as_deref(),
            Some("reg/app:1.2.3")
        );
        assert_eq!(
            spell("1.20", Style::Plain, false).as_deref(),
            Some("\"1.20\""),
            "a plain 1.20 would be a number"
        );
        for not_strings in ["true", "null", "1e3", "0x1f", "12:30", "~", "-5"] {
            assert!(
                spell(not_strings, Style::Plain, false)
                    .unwrap()
                    .starts_with('"'),
                "{not_strings}"
            );
        }
        assert_eq!(spell("a,b", Style::Plain, true).as_deref(), Some("\"a,b\""));
        assert_eq!(spell("a,b", Style::Plain, false).as_deref(), Some("a,b"));
        assert_eq!(
            spell("it's", Style::SingleQuoted, false).as_deref(),
            Some("'it''s'")
        );
        assert_eq!(
            spell("a\"b\\", Style::DoubleQuoted, false).as_deref(),
            Some("\"a\\\"b\\\\\"")
        );
        assert_eq!(spell("x", Style::Block, false), None);
    }
}
