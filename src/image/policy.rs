//! Which tag an ImagePolicy chooses: a semver range (the same parser as
//! `GitRepository.spec.ref.semver`), alphabetical or numerical order, after `filterTags` (a
//! regular expression, with `extract` naming what of a tag is compared). Pure.

use std::cmp::Ordering;

use regex::Regex;

use crate::api::image_policy::{ImagePolicyChoice, TagFilter};
use crate::semver_range::{RangeError, SemverRange, parse_tag_version};

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum PolicyError {
    #[error("spec.policy: set exactly one of semver, alphabetical or numerical")]
    Choice,
    #[error("spec.policy.semver.range: {0}")]
    Range(#[from] RangeError),
    #[error("spec.policy.{kind}.order: {order:?} is neither asc nor desc")]
    Order { kind: &'static str, order: String },
    #[error("spec.filterTags.pattern {pattern:?} is not a valid regular expression: {reason}")]
    Pattern { pattern: String, reason: String },
}

/// Which end of an order wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// The highest value wins.
    Asc,
    /// The lowest value wins.
    Desc,
}

impl Order {
    pub fn parse(kind: &'static str, order: Option<&str>) -> Result<Order, PolicyError> {
        match order.map(str::trim).unwrap_or("asc") {
            "" | "asc" => Ok(Order::Asc),
            "desc" => Ok(Order::Desc),
            other => Err(PolicyError::Order {
                kind,
                order: other.to_owned(),
            }),
        }
    }
}

/// How tags are ordered.
#[derive(Debug, Clone)]
pub enum Policy {
    /// The highest version in the range; pre-releases only when the range names one.
    Semver(SemverRange),
    /// Byte-wise string order.
    Alphabetical(Order),
    /// Tags read as numbers (integers or decimals); tags that are not numbers never win.
    Numerical(Order),
}

/// A compiled `filterTags`.
#[derive(Debug, Clone)]
pub struct Filter {
    pattern: Regex,
    /// `$name`, `${name}` or `$1` expansions of the pattern's groups; the whole tag when empty.
    extract: Option<String>,
}

impl Filter {
    pub fn new(pattern: &str, extract: Option<&str>) -> Result<Filter, PolicyError> {
        let compiled = Regex::new(pattern).map_err(|e| PolicyError::Pattern {
            pattern: pattern.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(Filter {
            pattern: compiled,
            extract: extract.filter(|e| !e.is_empty()).map(str::to_owned),
        })
    }

    /// What of `tag` is compared, or `None` when the tag does not take part.
    pub fn apply(&self, tag: &str) -> Option<String> {
        let captures = self.pattern.captures(tag)?;
        Some(match &self.extract {
            None => tag.to_owned(),
            Some(template) => {
                let mut out = String::new();
                captures.expand(template, &mut out);
                out
            }
        })
    }
}

/// A policy with its optional filter: chooses the latest of a list of tags.
#[derive(Debug, Clone)]
pub struct Selector {
    pub policy: Policy,
    pub filter: Option<Filter>,
}

impl Selector {
    /// Compiles a spec's `policy` and `filterTags`.
    pub fn from_spec(
        choice: &ImagePolicyChoice,
        filter: Option<&TagFilter>,
    ) -> Result<Selector, PolicyError> {
        let policy = match (&choice.semver, &choice.alphabetical, &choice.numerical) {
            (Some(s), None, None) => Policy::Semver(SemverRange::parse(&s.range)?),
            (None, Some(a), None) => {
                Policy::Alphabetical(Order::parse("alphabetical", a.order.as_deref())?)
            }
            (None, None, Some(n)) => {
                Policy::Numerical(Order::parse("numerical", n.order.as_deref())?)
            }
            _ => return Err(PolicyError::Choice),
        };
        let filter = filter
            .filter(|f| !f.pattern.is_empty())
            .map(|f| Filter::new(&f.pattern, f.extract.as_deref()))
            .transpose()?;
        Ok(Selector { policy, filter })
    }

    /// The tag the policy chooses among `tags`, or `None` when no tag qualifies.
    pub fn latest<'a>(&self, tags: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
        let candidates = tags.into_iter().filter_map(|tag| {
            let value = match &self.filter {
                Some(f) => f.apply(tag)?,
                None => tag.to_owned(),
            };
            Some((tag, value))
        });
        match &self.policy {
            Policy::Semver(range) => candidates
                .filter_map(|(tag, value)| Some((tag, parse_tag_version(&value)?)))
                .filter(|(_, version)| range.matches(version))
                .max_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0.cmp(a.0)))
                .map(|(tag, _)| tag),
            Policy::Alphabetical(order) => {
                best(candidates, *order, |a: &String, b: &String| a.cmp(b))
            }
            Policy::Numerical(order) => best(
                candidates.filter_map(|(tag, value)| Some((tag, parse_number(&value)?))),
                *order,
                |a: &f64, b: &f64| a.total_cmp(b),
            ),
        }
    }
}

/// The winner of `candidates` by `cmp` in `order`; ties go to the alphabetically first tag.
fn best<'a, V>(
    candidates: impl Iterator<Item = (&'a str, V)>,
    order: Order,
    cmp: impl Fn(&V, &V) -> Ordering,
) -> Option<&'a str> {
    candidates
        .max_by(|a, b| {
            let by_value = cmp(&a.1, &b.1);
            let by_value = match order {
                Order::Asc => by_value,
                Order::Desc => by_value.reverse(),
            };
            by_value.then_with(|| b.0.cmp(a.0))
        })
        .map(|(tag, _)| tag)
}

/// A tag read as a number: digits with an optional sign, fraction and exponent.
fn parse_number(value: &str) -> Option<f64> {
    let looks_numeric = !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b))
        && value.bytes().any(|b| b.is_ascii_digit());
    looks_numeric
        .then(|| value.parse::<f64>().ok())
        .flatten()
        .filter(|n| n.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::image_policy::{OrderPolicy, SemVerPolicy};

    const TAGS: [&str; 9] = [
        "1.0.0",
        "1.1.0",
        "1.2.0-rc.1",
        "2.0.0",
        "latest",
        "build-20261130-7",
        "build-20261201-3",
        "build-20261130-12",
        "v1.5.0",
    ];

    fn semver(range: &str) -> ImagePolicyChoice {
        ImagePolicyChoice {
            semver: Some(SemVerPolicy {
                range: range.into(),
            }),
            ..Default::default()
        }
    }

    fn order(kind: &str, order: &str) -> ImagePolicyChoice {
        let o = Some(OrderPolicy {
            order: Some(order.into()),
        });
        match kind {
            "alphabetical" => ImagePolicyChoice {
                alphabetical: o,
                ..Default::default()
            },
            _ => ImagePolicyChoice {
                numerical: o,
                ..Default::default()
            },
        }
    }

    fn filter(pattern: &str, extract: &str) -> TagFilter {
        TagFilter {
            pattern: pattern.into(),
            extract: Some(extract.into()),
        }
    }

    fn pick(choice: ImagePolicyChoice, f: Option<TagFilter>) -> Option<&'static str> {
        Selector::from_spec(&choice, f.as_ref())
            .unwrap()
            .latest(TAGS)
    }

    #[test]
    fn semver_picks_the_highest_release_in_range() {
        assert_eq!(pick(semver(">=1.0.0"), None), Some("2.0.0"));
        assert_eq!(pick(semver("1.x"), None), Some("v1.5.0"));
        assert_eq!(pick(semver("~1.1"), None), Some("1.1.0"));
        assert_eq!(pick(semver(">=3"), None), None);
        // Pre-releases only when the range asks for one.
        assert_eq!(pick(semver(">=1.2.0-0 <1.3.0"), None), Some("1.2.0-rc.1"));
        assert_eq!(pick(semver(">=1.2.0 <1.3.0"), None), None);
    }

    #[test]
    fn orders_with_filters_and_extracts() {
        let builds = || Some(filter(r"^build-(?P<ts>\d{8})-(\d+)$", "$ts"));
        // Alphabetical on the date: both 20261130 builds tie and lose to 20261201.
        assert_eq!(
            pick(order("alphabetical", "asc"), builds()),
            Some("build-20261201-3")
        );
        assert_eq!(
            pick(order("alphabetical", "desc"), builds()),
            Some("build-20261130-12"),
            "ties go to the alphabetically first tag"
        );
        // Numerical on the build number: 12 beats 7 (alphabetically it would not).
        let numbers = Some(filter(r"^build-\d{8}-(\d+)$", "$1"));
        assert_eq!(
            pick(order("numerical", "asc"), numbers.clone()),
            Some("build-20261130-12")
        );
        assert_eq!(
            pick(order("numerical", "desc"), numbers),
            Some("build-20261201-3")
        );
        // Without a filter, numerical ignores tags that are not numbers.
        assert_eq!(
            Selector::from_spec(&order("numerical", "asc"), None)
                .unwrap()
                .latest(["10", "9", "latest", "1e400", "2.5"]),
            Some("10")
        );
        assert_eq!(pick(order("alphabetical", "asc"), None), Some("v1.5.0"));
        // The whole tag when extract is empty; a filter alone narrows the set.
        let rc = Some(filter(r"-rc\.", ""));
        assert_eq!(pick(order("alphabetical", "asc"), rc), Some("1.2.0-rc.1"));
    }

    #[test]
    fn bad_specs_are_named() {
        let e = Selector::from_spec(&semver(">= nothing"), None).unwrap_err();
        assert!(e.to_string().starts_with("spec.policy.semver.range"), "{e}");
        let e = Selector::from_spec(&order("numerical", "up"), None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "spec.policy.numerical.order: \"up\" is neither asc nor desc"
        );
        let e = Selector::from_spec(&semver("1"), Some(&filter("(", ""))).unwrap_err();
        assert!(matches!(e, PolicyError::Pattern { .. }));
        let both = ImagePolicyChoice {
            alphabetical: Some(OrderPolicy::default()),
            ..semver("1")
        };
        assert_eq!(
            Selector::from_spec(&both, None).unwrap_err(),
            PolicyError::Choice
        );
    }
}
