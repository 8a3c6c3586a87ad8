//! The `hey` command lines Flagger users give their load tester (`hey -z 1m -q 10 -c 2
//! http://podinfo-canary:9898/`), read into a load to generate: sluice runs no shell and no
//! `hey` binary, it generates the load itself. Pure.

use std::time::Duration;

use crate::api::duration;

/// A load to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct Load {
    pub url: String,
    /// Run this long (`-z`); otherwise send `requests` (`-n`).
    pub duration: Option<Duration>,
    pub requests: u64,
    /// Workers sending at once (`-c`).
    pub workers: u32,
    /// Time between the starts of two requests of one worker (`-q`, requests per second per
    /// worker); `None`: as fast as answers come.
    pub gap: Option<Duration>,
    pub method: String,
    pub headers: Vec<(String, String)>,
    pub host: Option<String>,
    pub body: Option<String>,
    pub timeout: Duration,
    /// A new connection per request (`-disable-keepalive`): with plain Services, connections
    /// are what kube-proxy spreads.
    pub disable_keepalive: bool,
}

/// The most workers (`-c`) one load may run.
pub const MAX_WORKERS: u32 = 10_000;

/// Reads a `hey` command line.
pub fn parse(command: &str) -> Result<Load, String> {
    let words = shlex::split(command).ok_or_else(|| format!("{command:?}: unbalanced quotes"))?;
    let mut words = words.into_iter();
    match words.next().as_deref() {
        Some("hey") => {}
        Some(other) => {
            return Err(format!(
                "{other:?} is not run: sluice loadtester generates load from hey command lines itself and runs no other commands"
            ));
        }
        None => return Err("the command is empty".into()),
    }
    let mut load = Load {
        url: String::new(),
        duration: None,
        requests: 200,
        workers: 50,
        gap: None,
        method: "GET".into(),
        headers: Vec::new(),
        host: None,
        body: None,
        timeout: Duration::from_secs(20),
        disable_keepalive: false,
    };
    let mut rest = Vec::new();
    while let Some(word) = words.next() {
        let mut value = |flag: &str| {
            words
                .next()
                .ok_or_else(|| format!("hey {flag} needs a value"))
        };
        let number = |flag: &str, text: String| -> Result<f64, String> {
            text.parse()
                .map_err(|_| format!("hey {flag}: {text:?} is not a number"))
        };
        match word.as_str() {
            "-z" => {
                let text = value("-z")?;
                load.duration = Some(duration::parse(&text).map_err(|e| format!("hey -z: {e}"))?);
            }
            "-n" => load.requests = number("-n", value("-n")?)? as u64,
            "-c" => {
                let workers = number("-c", value("-c")?)?;
                if workers > f64::from(MAX_WORKERS) {
                    return Err(format!(
                        "hey -c: {workers} workers are more than the limit of {MAX_WORKERS}"
                    ));
                }
                load.workers = (workers as u32).max(1);
            }
            "-q" => {
                let text = value("-q")?;
                let rate = number("-q", text.clone())?;
                // NaN, negative and infinite rates are not rates; 0 is no limit, as in hey.
                if !(0.0..f64::INFINITY).contains(&rate) {
                    return Err(format!(
                        "hey -q: {text} is not a rate (requests a second per worker)"
                    ));
                }
                load.gap = if rate == 0.0 {
                    None
                } else {
                    let gap = Duration::try_from_secs_f64(1.0 / rate)
                        .ok()
                        .filter(|gap| *gap <= duration::MAX)
                        .ok_or_else(|| {
                            format!("hey -q: {text} requests a second is slower than one a year")
                        })?;
                    (!gap.is_zero()).then_some(gap)
                };
            }
            "-t" => {
                let text = value("-t")?;
                // As in hey, 0 means no timeout: the longest duration sluice knows.
                let timeout = number("-t", text.clone())?;
                load.timeout = if timeout == 0.0 {
                    duration::MAX
                } else {
                    Duration::try_from_secs_f64(timeout)
                        .ok()
                        .filter(|t| !t.is_zero() && *t <= duration::MAX)
                        .ok_or_else(|| {
                            format!("hey -t: {text} is not a number of seconds up to 8760h (0: no timeout)")
                        })?
                };
            }
            "-m" => load.method = value("-m")?.to_uppercase(),
            "-H" => {
                let header = value("-H")?;
                let (name, value) = header
                    .split_once(':')
                    .ok_or_else(|| format!("hey -H {header:?}: not `Name: value`"))?;
                load.headers
                    .push((name.trim().to_string(), value.trim().to_string()));
            }
            "-host" => load.host = Some(value("-host")?),
            "-d" => load.body = Some(value("-d")?),
            "-T" => load.headers.push(("Content-Type".into(), value("-T")?)),
            "-disable-keepalive" => load.disable_keepalive = true,
            "-disable-compression" | "-disable-redirects" | "-h2" => {}
            flag if flag.starts_with('-') => {
                return Err(format!("hey {flag} is not supported"));
            }
            _ => rest.push(word),
        }
    }
    match rest.as_slice() {
        [url] if url.starts_with("http://") || url.starts_with("https://") => {
            load.url = url.clone();
            Ok(load)
        }
        [] => Err("hey needs a URL".into()),
        other => Err(format!("hey takes one URL, not {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flaggers_examples_parse() {
        let load = parse("hey -z 1m -q 10 -c 2 http://podinfo-canary.test:9898/").unwrap();
        assert_eq!(load.duration, Some(Duration::from_secs(60)));
        assert_eq!(
            (load.gap, load.workers),
            (Some(Duration::from_millis(100)), 2)
        );
        assert_eq!(load.url, "http://podinfo-canary.test:9898/");
        let ab = parse("hey -z 2m -q 10 -c 2 -host app.example.com -H 'X-Canary: insider' -disable-keepalive http://10.96.0.9/").unwrap();
        assert_eq!(ab.host.as_deref(), Some("app.example.com"));
        assert_eq!(
            ab.headers,
            [("X-Canary".to_string(), "insider".to_string())]
        );
        assert!(ab.disable_keepalive);
        let count = parse("hey -n 100 -m POST -d '{}' -T application/json http://x/").unwrap();
        assert_eq!(
            (count.requests, count.duration, count.method.as_str()),
            (100, None, "POST")
        );
    }

    #[test]
    fn anything_but_hey_is_refused_with_the_reason() {
        assert!(
            parse("curl -s http://x/ | grep ok")
                .unwrap_err()
                .contains("runs no other commands")
        );
        assert!(parse("hey -z soon http://x/").unwrap_err().contains("-z"));
        assert!(parse("hey -z 1m").unwrap_err().contains("URL"));
        assert!(parse("hey -x http://x/").unwrap_err().contains("-x"));
        assert!(parse("hey 'http://x/").unwrap_err().contains("quotes"));
    }

    #[test]
    fn numbers_no_clock_can_hold_are_refused_not_panicked_on() {
        for (flags, says) in [
            (
                "-t 1e300",
                "hey -t: 1e300 is not a number of seconds up to 8760h",
            ),
            ("-t inf", "hey -t: inf is not a number of seconds"),
            ("-t NaN", "hey -t: NaN is not a number of seconds"),
            ("-t -1", "hey -t: -1 is not a number of seconds"),
            ("-t 1e-20", "hey -t: 1e-20 is not a number of seconds"),
            (
                "-q 1e-300",
                "hey -q: 1e-300 requests a second is slower than one a year",
            ),
            ("-q -5", "hey -q: -5 is not a rate"),
            ("-q NaN", "hey -q: NaN is not a rate"),
            ("-q inf", "hey -q: inf is not a rate"),
            (
                "-c 1e12",
                "hey -c: 1000000000000 workers are more than the limit of 10000",
            ),
        ] {
            let err = parse(&format!("hey {flags} http://x/")).unwrap_err();
            assert!(err.starts_with(says), "{flags}: {err}");
        }
        let ok = |flags: &str| parse(&format!("hey {flags} http://x/")).unwrap();
        assert_eq!(
            ok("-t 0").timeout,
            duration::MAX,
            "0 is no timeout, as in hey"
        );
        assert_eq!(ok("-t 1.5").timeout, Duration::from_millis(1500));
        assert_eq!(ok("-q 0").gap, None);
        assert_eq!(ok("-q 1e300").gap, None, "faster than a clock tick: no gap");
        assert_eq!(ok("-q 0.5").gap, Some(Duration::from_secs(2)));
        assert_eq!(ok("-c 0").workers, 1);
    }
}
