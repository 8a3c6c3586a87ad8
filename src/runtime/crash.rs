//! Fault injection for crash-safety tests: `SLUICE_CRASH_AT=<point>` makes the process abort at
//! that named point, as a kill -9 would. Unset (always, outside tests), it does nothing.

/// Aborts the process when `SLUICE_CRASH_AT` names this point.
pub fn point(name: &str) {
    if std::env::var("SLUICE_CRASH_AT").is_ok_and(|wanted| wanted == name) {
        eprintln!("crash point {name}: aborting");
        std::process::abort();
    }
}
