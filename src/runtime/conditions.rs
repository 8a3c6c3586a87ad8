//! Typed condition reasons (`Reason`, declared with `reasons!`) and the one way a controller
//! builds a condition (`Stamp`). Pure.

use crate::api::condition::{Condition, ConditionStatus};

/// A condition or Event reason: a CamelCase word, written by its variant's name.
pub trait Reason: Copy + std::fmt::Debug + Send + Sync + 'static {
    fn as_str(self) -> &'static str;
}

/// Declares an enum of reasons; each variant is written as its own name.
macro_rules! reasons {
    ($(#[$meta:meta])* $vis:vis enum $name:ident { $($(#[$vmeta:meta])* $variant:ident,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $crate::runtime::conditions::Reason for $name {
            fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => stringify!($variant),)+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str($crate::runtime::conditions::Reason::as_str(*self))
            }
        }
    };
}
pub(crate) use reasons;

reasons! {
    /// Reasons every controller shares (Flux's `meta` reasons where it has one).
    pub enum Common {
        /// `Reconciling=True`: working on a new revision or spec.
        Progressing,
        /// `Reconciling=True`: retrying after a failure.
        ProgressingWithRetry,
        /// `Ready=True`.
        Succeeded,
        /// `Ready=False`, `Stalled=True`: only a spec change helps.
        InvalidSpec,
        /// `Ready=False`: the reconcile panicked; the agent caught it and retries with backoff.
        ReconcilePanicked,
        /// `Ready=False`, `Stalled=True`: a reference leaves the object's namespace on an agent
        /// that refuses it (`--no-cross-namespace-refs`).
        AccessDenied,
    }
}

/// What every condition written in one reconcile shares: the generation it is about and the time.
#[derive(Debug, Clone, Copy)]
pub struct Stamp<'a> {
    pub generation: Option<i64>,
    pub now: &'a str,
}

impl Stamp<'_> {
    pub fn condition(
        &self,
        type_: &str,
        status: impl Into<ConditionStatus>,
        reason: impl Reason,
        message: impl Into<String>,
    ) -> Condition {
        Condition {
            type_: type_.into(),
            status: status.into(),
            observed_generation: self.generation,
            last_transition_time: self.now.into(),
            reason: reason.as_str().into(),
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    reasons! {
        enum Sample {
            BuildFailed,
            /// Documented variants work too.
            HealthCheckFailed,
        }
    }

    #[test]
    fn reasons_are_written_as_their_names() {
        assert_eq!(Sample::BuildFailed.as_str(), "BuildFailed");
        assert_eq!(Sample::HealthCheckFailed.to_string(), "HealthCheckFailed");
        assert_eq!(Common::ReconcilePanicked.as_str(), "ReconcilePanicked");
    }

    #[test]
    fn a_stamp_fills_generation_and_time() {
        let stamp = Stamp {
            generation: Some(4),
            now: "2026-01-01T00:00:00Z",
        };
        let c = stamp.condition("Ready", false, Sample::BuildFailed, "a.yaml:3: bad");
        assert_eq!(c.status, ConditionStatus::False);
        assert_eq!(
            (c.reason.as_str(), c.observed_generation),
            ("BuildFailed", Some(4))
        );
        assert_eq!(c.last_transition_time, "2026-01-01T00:00:00Z");
    }
}
