//! Release windows evaluated: whether one of an object's `releaseWindows` is open at a given
//! time, when it closes and when the next one opens. The schedules are crontab expressions read
//! in their window's time zone (daylight saving time included). Pure: the time is an argument.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use k8s_openapi::jiff::Timestamp;

use crate::api::duration;
use crate::api::window::ReleaseWindow;

/// A window that cannot be read; `field` names it (`releaseWindows[1].timeZone`).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum WindowError {
    #[error("{schedule:?} is not a crontab schedule: {reason}")]
    Schedule {
        index: usize,
        schedule: String,
        reason: String,
    },
    #[error("{source}")]
    Duration {
        index: usize,
        source: duration::ParseDurationError,
    },
    #[error("must be longer than zero")]
    Empty { index: usize },
    #[error("{zone:?} is not a time zone of the IANA database (like Europe/Berlin or UTC)")]
    TimeZone { index: usize, zone: String },
}

impl WindowError {
    /// The field at fault, under the spec.
    pub fn field(&self) -> String {
        let (index, field) = match self {
            WindowError::Schedule { index, .. } => (index, "schedule"),
            WindowError::Duration { index, .. } | WindowError::Empty { index } => {
                (index, "duration")
            }
            WindowError::TimeZone { index, .. } => (index, "timeZone"),
        };
        format!("releaseWindows[{index}].{field}")
    }

    /// `spec.<field>: <what is wrong>`.
    pub fn message(&self) -> String {
        format!("spec.{}: {self}", self.field())
    }
}

/// One window, parsed.
#[derive(Debug, Clone, PartialEq)]
struct Window {
    cron: Cron,
    length: TimeDelta,
    zone: Tz,
}

/// An object's release windows; none means always open.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Windows(Vec<Window>);

/// Where the windows stand at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// No windows: changes go out at any time.
    Always,
    /// Open; closes then (`None`: windows follow each other without a gap as far as is looked).
    Open { closes: Option<Timestamp> },
    /// Closed; the next opens then (`None`: the schedules never match again).
    Closed { opens: Option<Timestamp> },
}

impl State {
    pub fn is_open(&self) -> bool {
        !matches!(self, State::Closed { .. })
    }

    /// How long from `now` until the next window opens, when closed.
    pub fn opens_in(&self, now: Timestamp) -> Option<Duration> {
        match self {
            State::Closed { opens: Some(t) } => {
                Some(Duration::try_from(t.duration_since(now)).unwrap_or_default())
            }
            _ => None,
        }
    }

    /// "the release window opens at …", for messages; `None` unless closed.
    pub fn closed_message(&self) -> Option<String> {
        match self {
            State::Closed { opens: Some(t) } => {
                Some(format!("outside the release window, the next opens at {t}"))
            }
            State::Closed { opens: None } => {
                Some("outside the release window, and no window opens again".into())
            }
            _ => None,
        }
    }
}

/// How many windows that follow each other without a gap are followed to find where they end.
const CHAIN_LIMIT: usize = 1000;

pub fn parse(windows: &[ReleaseWindow]) -> Result<Windows, WindowError> {
    // Five fields, as crontab: no seconds, no year; Sunday is 0 (or 7).
    let parser = CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build();
    windows
        .iter()
        .enumerate()
        .map(|(index, w)| {
            let cron = parser
                .parse(&w.schedule)
                .map_err(|e| WindowError::Schedule {
                    index,
                    schedule: w.schedule.clone(),
                    reason: e.to_string(),
                })?;
            let length = duration::parse(&w.duration)
                .map_err(|source| WindowError::Duration { index, source })?;
            if length.is_zero() {
                return Err(WindowError::Empty { index });
            }
            let zone = match w.time_zone.as_deref() {
                None | Some("") => Tz::UTC,
                Some(name) => name.parse::<Tz>().map_err(|_| WindowError::TimeZone {
                    index,
                    zone: name.into(),
                })?,
            };
            Ok(Window {
                cron,
                length: TimeDelta::from_std(length).expect("durations are bounded to a year"),
                zone,
            })
        })
        .collect::<Result<_, _>>()
        .map(Windows)
}

fn to_chrono(t: Timestamp) -> DateTime<Utc> {
    DateTime::from_timestamp(t.as_second(), t.subsec_nanosecond().max(0) as u32)
        .unwrap_or(DateTime::UNIX_EPOCH)
}

fn to_jiff(t: DateTime<Utc>) -> Timestamp {
    Timestamp::new(t.timestamp(), t.timestamp_subsec_nanos() as i32)
        .unwrap_or(Timestamp::UNIX_EPOCH)
}

impl Window {
    /// `None` when closed at `now`; else when it closes (`None`: not within `CHAIN_LIMIT`).
    fn closes(&self, now: DateTime<Utc>) -> Option<Option<DateTime<Utc>>> {
        let local = now.with_timezone(&self.zone);
        let start = self.cron.find_previous_occurrence(&local, true).ok()?;
        let mut end = start + self.length;
        if end <= local {
            return None;
        }
        // A window that opens again before it closes carries on.
        let mut from = start;
        for _ in 0..CHAIN_LIMIT {
            match self.cron.find_next_occurrence(&from, false) {
                Ok(next) if next <= end => {
                    end = end.max(next + self.length);
                    from = next;
                }
                _ => return Some(Some(end.with_timezone(&Utc))),
            }
        }
        Some(None)
    }

    fn opens(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = now.with_timezone(&self.zone);
        self.cron
            .find_next_occurrence(&local, false)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }
}

impl Windows {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Where the windows stand at `now` for an object opened by hand until `open_until` (the
    /// value of `api::window::OPEN_UNTIL_ANNOTATION`): open while that time is ahead.
    pub fn at_opened(&self, open_until: Option<&str>, now: Timestamp) -> State {
        match open_until.and_then(|t| t.trim().parse::<Timestamp>().ok()) {
            Some(until) if until > now && !self.0.is_empty() => State::Open {
                closes: Some(until),
            },
            _ => self.at(now),
        }
    }

    /// Where the windows stand at `now`: open when any is.
    pub fn at(&self, now: Timestamp) -> State {
        if self.0.is_empty() {
            return State::Always;
        }
        let now = to_chrono(now);
        let open: Vec<Option<DateTime<Utc>>> =
            self.0.iter().filter_map(|w| w.closes(now)).collect();
        if !open.is_empty() {
            let closes = open
                .iter()
                .copied()
                .collect::<Option<Vec<_>>>()
                .and_then(|ends| ends.into_iter().max());
            return State::Open {
                closes: closes.map(to_jiff),
            };
        }
        let opens = self.0.iter().filter_map(|w| w.opens(now)).min();
        State::Closed {
            opens: opens.map(to_jiff),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(schedule: &str, duration: &str, zone: Option<&str>) -> ReleaseWindow {
        ReleaseWindow {
            schedule: schedule.into(),
            duration: duration.into(),
            time_zone: zone.map(Into::into),
        }
    }

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn state(windows: &[ReleaseWindow], now: &str) -> State {
        parse(windows).unwrap().at(at(now))
    }

    #[test]
    fn no_windows_is_always_open() {
        assert_eq!(state(&[], "2026-12-02T03:00:00Z"), State::Always);
    }

    #[test]
    fn weekdays_are_read_as_crontab_reads_them() {
        // 09:00 to 17:00, Monday to Friday (1-5 as crontab counts: Sunday is 0).
        let office = [window("0 9 * * 1-5", "8h", None)];
        // 2026-12-02 is a Wednesday.
        assert_eq!(
            state(&office, "2026-12-02T10:30:00Z"),
            State::Open {
                closes: Some(at("2026-12-02T17:00:00Z"))
            }
        );
        assert_eq!(
            state(&office, "2026-12-02T17:00:00Z"),
            State::Closed {
                opens: Some(at("2026-12-03T09:00:00Z"))
            }
        );
        // Saturday 2026-12-05: the next opens Monday.
        assert_eq!(
            state(&office, "2026-12-05T10:00:00Z"),
            State::Closed {
                opens: Some(at("2026-12-07T09:00:00Z"))
            }
        );
        // Sunday as 0 and as 7.
        for sunday in ["0 9 * * 0", "0 9 * * 7", "0 9 * * SUN"] {
            assert_eq!(
                state(&[window(sunday, "1h", None)], "2026-12-06T09:30:00Z"),
                State::Open {
                    closes: Some(at("2026-12-06T10:00:00Z"))
                },
                "{sunday}"
            );
        }
    }

    #[test]
    fn the_schedule_is_read_in_its_time_zone_across_daylight_saving_time() {
        let berlin = [window("0 9 * * *", "1h", Some("Europe/Berlin"))];
        // Winter: UTC+1.
        assert_eq!(
            state(&berlin, "2026-12-02T08:15:00Z"),
            State::Open {
                closes: Some(at("2026-12-02T09:00:00Z"))
            }
        );
        // Summer: UTC+2.
        assert_eq!(
            state(&berlin, "2026-07-01T07:15:00Z"),
            State::Open {
                closes: Some(at("2026-07-01T08:00:00Z"))
            }
        );
        assert!(!state(&berlin, "2026-07-01T08:15:00Z").is_open());
    }

    #[test]
    fn windows_that_follow_each_other_close_at_the_end_of_the_last() {
        // Opens at the top of every hour from 08:00 to 10:00 for an hour: 08:00 to 11:00.
        let hours = [window("0 8-10 * * *", "1h", None)];
        assert_eq!(
            state(&hours, "2026-12-02T08:30:00Z"),
            State::Open {
                closes: Some(at("2026-12-02T11:00:00Z"))
            }
        );
        // Every minute for an hour: open, with no end in sight.
        assert_eq!(
            state(&[window("* * * * *", "1h", None)], "2026-12-02T08:30:00Z"),
            State::Open { closes: None }
        );
    }

    #[test]
    fn any_open_window_opens_and_the_earliest_next_one_counts() {
        let two = [
            window("0 9 * * *", "1h", None),
            window("0 14 * * *", "1h", Some("UTC")),
        ];
        assert!(state(&two, "2026-12-02T14:10:00Z").is_open());
        assert_eq!(
            state(&two, "2026-12-02T11:00:00Z"),
            State::Closed {
                opens: Some(at("2026-12-02T14:00:00Z"))
            }
        );
        let closed = State::Closed {
            opens: Some(at("2026-12-02T14:00:00Z")),
        };
        assert_eq!(
            closed.opens_in(at("2026-12-02T13:59:00Z")),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            closed.closed_message().unwrap(),
            "outside the release window, the next opens at 2026-12-02T14:00:00Z"
        );
    }

    #[test]
    fn opened_by_hand_until_a_time() {
        let windows = parse(&[window("0 9 * * *", "1h", None)]).unwrap();
        let now = at("2026-12-02T12:00:00Z");
        assert_eq!(
            windows.at_opened(Some("2026-12-02T13:00:00Z"), now),
            State::Open {
                closes: Some(at("2026-12-02T13:00:00Z"))
            }
        );
        for past_or_garbage in [Some("2026-12-02T11:00:00Z"), Some("soon"), None] {
            assert!(!windows.at_opened(past_or_garbage, now).is_open());
        }
    }

    #[test]
    fn bad_windows_name_the_field() {
        let err = |w: ReleaseWindow| parse(&[window("0 9 * * *", "1h", None), w]).unwrap_err();
        assert!(matches!(
            err(window("0 9 * *", "1h", None)),
            WindowError::Schedule { index: 1, .. }
        ));
        assert!(matches!(
            err(window("0 0 9 * * *", "1h", None)),
            WindowError::Schedule { index: 1, .. }
        ));
        assert!(matches!(
            err(window("61 9 * * *", "1h", None)),
            WindowError::Schedule { index: 1, .. }
        ));
        assert_eq!(
            err(window("0 9 * * *", "1h", Some("Mars/Olympus_Mons"))).message(),
            "spec.releaseWindows[1].timeZone: \"Mars/Olympus_Mons\" is not a time zone of the IANA database (like Europe/Berlin or UTC)"
        );
        assert_eq!(
            err(window("0 9 * * *", "soon", None)).message(),
            "spec.releaseWindows[1].duration: \"soon\" is not a duration like 30s, 5m or 1h30m"
        );
        assert_eq!(
            err(window("0 9 * * *", "0", None)),
            WindowError::Empty { index: 1 }
        );
    }
}
