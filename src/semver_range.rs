//! Semver ranges as Flux users write them (Masterminds syntax) mapped onto the `semver` crate, and
//! tags read as versions: the one parser behind `GitRepository.spec.ref.semver` and
//! `ImagePolicy.spec.policy.semver.range`. Pure, no I/O.

use semver::{Version, VersionReq};

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("semver range {range:?} is not valid: {reason}")]
pub struct RangeError {
    pub range: String,
    pub reason: String,
}

/// A semver constraint as Flux users write it: comparators separated by spaces or commas,
/// alternatives separated by `||`, hyphen ranges, `x` wildcards, `~` and `^`.
#[derive(Debug, Clone)]
pub struct SemverRange {
    alternatives: Vec<VersionReq>,
}

impl SemverRange {
    pub fn parse(range: &str) -> Result<Self, RangeError> {
        let fail = |reason: String| RangeError {
            range: range.to_owned(),
            reason,
        };
        let mut alternatives = Vec::new();
        for alt in range.split("||") {
            let comparators = normalise_alternative(alt).map_err(fail)?;
            let req =
                VersionReq::parse(&comparators.join(", ")).map_err(|e| fail(e.to_string()))?;
            alternatives.push(req);
        }
        Ok(SemverRange { alternatives })
    }

    pub fn matches(&self, v: &Version) -> bool {
        self.alternatives.iter().any(|r| r.matches(v))
    }

    /// The tag with the highest version that satisfies the range.
    pub fn highest<'a>(&self, tags: impl IntoIterator<Item = &'a str>) -> Option<String> {
        tags.into_iter()
            .filter_map(|t| parse_tag_version(t).map(|v| (v, t)))
            .filter(|(v, _)| self.matches(v))
            .max_by(|a, b| a.0.cmp(&b.0).then_with(|| b.1.cmp(a.1)))
            .map(|(_, t)| t.to_owned())
    }
}

/// Parses a tag as a version: an optional `v`, then `X`, `X.Y` or `X.Y.Z` with optional
/// pre-release and build parts.
pub fn parse_tag_version(tag: &str) -> Option<Version> {
    let t = tag.strip_prefix('v').unwrap_or(tag);
    if let Ok(v) = Version::parse(t) {
        return Some(v);
    }
    let (core, rest) = match t.find(['-', '+']) {
        Some(i) => t.split_at(i),
        None => (t, ""),
    };
    let parts: Vec<&str> = core.split('.').collect();
    if parts.is_empty()
        || parts.len() > 2
        || parts
            .iter()
            .any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    let padded = format!("{}{}{rest}", core, ".0".repeat(3 - parts.len()));
    Version::parse(&padded).ok()
}

/// Turns one `||` alternative into comparators the semver crate reads with Masterminds meaning:
/// a bare version is exact (not caret), `1.2 - 1.4` is inclusive, `v` prefixes are dropped.
fn normalise_alternative(alt: &str) -> Result<Vec<String>, String> {
    let tokens: Vec<&str> = alt
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|t| !t.is_empty())
        .collect();
    if tokens.is_empty() {
        return Err("empty constraint".into());
    }
    let mut out = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let mut tok = tokens[i].to_owned();
        // An operator written apart from its version: `>= 1.2.0`.
        if tok.bytes().all(|b| b"<>=~^!".contains(&b)) {
            let next = tokens
                .get(i + 1)
                .ok_or_else(|| format!("operator {tok:?} has no version"))?;
            tok.push_str(next);
            i += 1;
        }
        // Hyphen range: `A - B`.
        if tokens.get(i + 1) == Some(&"-") {
            let upper = tokens
                .get(i + 2)
                .ok_or_else(|| "hyphen range has no upper bound".to_owned())?;
            out.push(format!(">={}", strip_v(&tok)));
            out.push(format!("<={}", strip_v(upper)));
            i += 3;
            continue;
        }
        let op_len = tok.bytes().take_while(|b| b"<>=~^!".contains(b)).count();
        let (op, ver) = tok.split_at(op_len);
        let ver = strip_v(ver);
        if ver.is_empty() {
            return Err(format!("{tok:?} has no version"));
        }
        if op == "!=" {
            return Err("`!=` is not supported; use `||` alternatives".into());
        }
        let op = match op {
            "" if ver == "*" || ver.eq_ignore_ascii_case("x") => "",
            "" => "=",
            "==" => "=",
            "~>" => "~",
            o => o,
        };
        out.push(format!("{op}{ver}"));
        i += 1;
    }
    Ok(out)
}

fn strip_v(s: &str) -> &str {
    s.strip_prefix('v').unwrap_or(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_as_flux_users_write_them() {
        let tags = [
            "v0.9.0",
            "v1.1.9",
            "v1.2.0",
            "v1.2.7",
            "1.3.0",
            "v1.10.2",
            "v2.0.0",
            "v2.1.0-rc.1",
            "latest",
            "v3.0.1",
        ];
        let best = |r: &str| SemverRange::parse(r).unwrap().highest(tags);
        assert_eq!(best(">=1.2.0 <2.0.0").as_deref(), Some("v1.10.2"));
        assert_eq!(best(">=1.2.0, <2.0.0").as_deref(), Some("v1.10.2"));
        assert_eq!(best(">= 1.2.0, < 1.3").as_deref(), Some("v1.2.7"));
        assert_eq!(best("~1.2").as_deref(), Some("v1.2.7"));
        assert_eq!(best("^1").as_deref(), Some("v1.10.2"));
        assert_eq!(best("1.2.x").as_deref(), Some("v1.2.7"));
        assert_eq!(best("*").as_deref(), Some("v3.0.1"));
        assert_eq!(best("1.2.0").as_deref(), Some("v1.2.0"));
        assert_eq!(best("<1.0.0 || >=2.0.0 <3.0.0").as_deref(), Some("v2.0.0"));
        assert_eq!(best("1.2 - 1.3").as_deref(), Some("1.3.0"));
        assert_eq!(best(">=4.0.0"), None);
    }

    #[test]
    fn ranges_that_parse_to_nothing_are_errors() {
        for bad in ["", "   ", ">=", "not-a-version", ">=1.2.0 ||", "!=1.2.0"] {
            assert!(SemverRange::parse(bad).is_err(), "{bad:?} parsed");
        }
    }
}
