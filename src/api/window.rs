//! Release windows: when a Canary may promote, a Kustomization may apply and an
//! ImageUpdateAutomation may commit. Types only; `runtime::window` evaluates them. No I/O.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Annotation that opens a Kustomization's release windows by hand until the time it holds
/// (RFC 3339), e.g. set by `sluice reconcile kustomization NAME --outside-window 1h`.
pub const OPEN_UNTIL_ANNOTATION: &str = "sluice.dev/release-window-open-until";

/// A window that opens at every time `schedule` names and stays open for `duration`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseWindow {
    /// When the window opens: a crontab expression of five fields (minute, hour, day of month,
    /// month, day of week; Sunday is 0 or 7), or `@daily`, `@weekly`, ...
    pub schedule: String,
    /// How long it stays open, e.g. `8h` or `30m`.
    #[schemars(pattern(super::duration::PATTERN))]
    pub duration: String,
    /// The IANA time zone the schedule is read in, e.g. `Europe/Berlin` (default `UTC`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
}
