//! What several subcommands share: the compile cache flags, the engine
//! they build from a configuration, and the parsers of the rule and time
//! flags (so that every time flag takes the same forms).

use std::path::{Path, PathBuf};

use serverless_config::Config;
use serverless_runtime::{CompileCache, Runtime, RuntimeSettings};

use crate::default_config;

/// Where compiled components are kept between starts.
#[derive(clap::Args)]
pub(crate) struct CacheArgs {
    /// The compile cache folder. Entries are keyed by the component's
    /// content and the engine's settings, and checked before use. Default:
    /// `$XDG_CACHE_HOME/serverless-wasm/compiled`, or
    /// `~/.cache/serverless-wasm/compiled`.
    #[arg(long, value_name = "DIR", env = "SERVERLESS_WASM_CACHE_DIR")]
    pub(crate) cache_dir: Option<PathBuf>,

    /// Compiles every component at startup without reading or writing the
    /// compile cache.
    #[arg(long, conflicts_with = "cache_dir")]
    pub(crate) no_cache: bool,
}

/// The configuration file, or the bundled samples with the folder holding
/// their site (which must outlive the server).
pub(crate) fn load_config(
    path: Option<&Path>,
) -> anyhow::Result<(Config, Option<tempfile::TempDir>)> {
    // Configuration errors are complete messages with file, line and
    // column; they are reported as they are.
    Ok(match path {
        Some(path) => {
            let config = Config::load(path)?;
            log_warnings(&config);
            (config, None)
        }
        None => {
            let samples = default_config::samples()?;
            (samples.config, Some(samples.site))
        }
    })
}

/// Logs what the configuration does that works but deserves attention.
pub(crate) fn log_warnings(config: &Config) {
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
}

/// The largest `max_memory` of the apps: the pool is sized for the most
/// demanding one.
pub(crate) fn max_memory(config: &Config) -> u64 {
    config
        .apps()
        .map(|app| app.limits.max_memory)
        .chain(config.services.iter().map(|service| service.max_memory))
        .chain(
            config
                .subscriptions
                .iter()
                .map(|entry| entry.app.limits.max_memory),
        )
        .max()
        .unwrap_or(0)
}

/// The engine for `config`, with the compile cache unless `--no-cache`.
/// `host compile` and `host serve` build it the same way, so that the
/// cache entries one writes are the ones the other finds.
pub(crate) fn prepare_runtime(
    config: &Config,
    max_instances: u32,
    cache: &CacheArgs,
) -> anyhow::Result<Runtime> {
    let max_memory = max_memory(config);
    let mut runtime = Runtime::new(RuntimeSettings {
        max_instances,
        max_memory_bytes: usize::try_from(max_memory).unwrap_or(usize::MAX),
        fuel: config
            .apps()
            .chain(config.subscriptions.iter().map(|entry| &entry.app))
            .any(|app| app.limits.fuel.is_some()),
    })?;
    if !cache.no_cache {
        match cache_dir(cache) {
            Some(dir) => runtime.use_compile_cache(CompileCache::open(dir)?),
            None => tracing::warn!(
                "no compile cache: neither XDG_CACHE_HOME nor HOME is set; pass --cache-dir to keep compiled components"
            ),
        }
    }
    Ok(runtime)
}

/// The compile cache folder: `--cache-dir`, or the user's cache folder.
fn cache_dir(cache: &CacheArgs) -> Option<PathBuf> {
    if let Some(dir) = &cache.cache_dir {
        return Some(dir.clone());
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
    Some(base.join("serverless-wasm/compiled"))
}

/// What a bare number means in a time flag: the unit the flag took before
/// it took durations, or nothing for a flag that never took numbers.
#[derive(Clone, Copy, Debug)]
enum BareNumber {
    Seconds,
    Milliseconds,
    Refused,
}

/// The one parser of every time flag: a duration as the configuration
/// writes it (`250ms`, `5s`, `2m`, `1h`), or a bare number in the flag's
/// old unit. `zero` says whether zero ("do not wait") is allowed. Clap
/// names the flag in front of the error.
fn parse_time_flag(
    text: &str,
    bare: BareNumber,
    zero: bool,
) -> Result<std::time::Duration, String> {
    let forms = match bare {
        BareNumber::Seconds => "250ms, 5s, 2m, 1h, or a number of seconds",
        BareNumber::Milliseconds => "250ms, 5s, 2m, 1h, or a number of milliseconds",
        BareNumber::Refused => "a whole number with a unit: 250ms, 5s, 2m or 1h",
    };
    let number = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    let parsed = match bare {
        BareNumber::Seconds if number => text
            .parse::<f64>()
            .ok()
            .and_then(|seconds| std::time::Duration::try_from_secs_f64(seconds).ok()),
        BareNumber::Milliseconds if number => text
            .parse::<u64>()
            .ok()
            .map(std::time::Duration::from_millis),
        _ => serverless_config::parse_duration_or_zero(text),
    };
    match parsed {
        Some(duration) if duration.is_zero() && !zero => Err(format!(
            "{text:?} is zero; the time must be longer; write {forms}"
        )),
        Some(duration) => Ok(duration),
        None => Err(format!("{text:?} is not a duration; write {forms}")),
    }
}

/// `host run --timeout`: seconds when bare, as before; more than zero.
pub(crate) fn parse_seconds_flag(text: &str) -> Result<std::time::Duration, String> {
    parse_time_flag(text, BareNumber::Seconds, false)
}

/// `--drain-timeout`: seconds when bare, as before; zero does not wait.
pub(crate) fn parse_drain_flag(text: &str) -> Result<std::time::Duration, String> {
    parse_time_flag(text, BareNumber::Seconds, true)
}

/// `--queue-timeout`: milliseconds when bare, as before; zero does not
/// wait.
pub(crate) fn parse_queue_flag(text: &str) -> Result<std::time::Duration, String> {
    parse_time_flag(text, BareNumber::Milliseconds, true)
}

/// `--idle-timeout`: a duration with its unit; more than zero.
pub(crate) fn parse_idle_flag(text: &str) -> Result<std::time::Duration, String> {
    parse_time_flag(text, BareNumber::Refused, false)
}

/// Parses one `--allow-tcp` value; clap reports the error before anything
/// starts.
pub(crate) fn parse_tcp_rule(text: &str) -> Result<serverless_outbound::TcpRule, String> {
    text.parse()
        .map_err(|e: serverless_outbound::AllowlistError| e.to_string())
}

/// Parses one `--allow-http` value.
pub(crate) fn parse_http_rule(text: &str) -> Result<serverless_outbound::HttpRule, String> {
    text.parse()
        .map_err(|e: serverless_outbound::HttpRuleError| e.to_string())
}

/// `rows` under `header` as a table for people: columns as wide as their
/// widest cell, two spaces apart, no trailing spaces.
pub(crate) fn table<const N: usize>(header: [&str; N], rows: &[[String; N]]) -> String {
    use std::fmt::Write as _;
    let widths: Vec<usize> = (0..N)
        .map(|column| {
            rows.iter()
                .map(|row| row[column].chars().count())
                .chain([header[column].chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    let mut line = |cells: [&str; N]| {
        let mut text = String::new();
        for (column, cell) in cells.iter().enumerate() {
            let _ = write!(text, "{cell:<width$}  ", width = widths[column]);
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(header);
    for row in rows {
        line(row.each_ref().map(String::as_str));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn every_time_flag_takes_durations_and_its_old_bare_unit() {
        let ok = |parse: fn(&str) -> Result<Duration, String>, text: &str| parse(text).unwrap();
        assert_eq!(ok(parse_seconds_flag, "250ms"), Duration::from_millis(250));
        assert_eq!(ok(parse_seconds_flag, "2"), Duration::from_secs(2));
        assert_eq!(ok(parse_seconds_flag, "0.5"), Duration::from_millis(500));
        assert_eq!(ok(parse_drain_flag, "30"), Duration::from_secs(30));
        assert_eq!(ok(parse_drain_flag, "2m"), Duration::from_secs(120));
        assert_eq!(ok(parse_drain_flag, "0"), Duration::ZERO);
        assert_eq!(ok(parse_queue_flag, "200"), Duration::from_millis(200));
        assert_eq!(ok(parse_queue_flag, "1s"), Duration::from_secs(1));
        assert_eq!(ok(parse_queue_flag, "0ms"), Duration::ZERO);
        assert_eq!(ok(parse_idle_flag, "1h"), Duration::from_secs(3600));
    }

    #[test]
    fn bad_time_flags_are_refused_with_the_forms() {
        let seconds = "250ms, 5s, 2m, 1h, or a number of seconds";
        for bad in [
            "inf", "-1", "nan", "NaN", "1e400", "", "1.5s", "1d", "1.2.3", "5 x",
        ] {
            assert_eq!(
                parse_seconds_flag(bad),
                Err(format!("{bad:?} is not a duration; write {seconds}")),
            );
        }
        assert_eq!(
            parse_seconds_flag("0"),
            Err(format!(
                "\"0\" is zero; the time must be longer; write {seconds}"
            ))
        );
        assert_eq!(
            parse_seconds_flag("99999999999999999999999"),
            Err(format!(
                "\"99999999999999999999999\" is not a duration; write {seconds}"
            ))
        );
        assert_eq!(
            parse_queue_flag("0.5"),
            Err(
                "\"0.5\" is not a duration; write 250ms, 5s, 2m, 1h, or a number of milliseconds"
                    .to_owned()
            )
        );
        assert_eq!(
            parse_idle_flag("30"),
            Err(
                "\"30\" is not a duration; write a whole number with a unit: 250ms, 5s, 2m or 1h"
                    .to_owned()
            )
        );
        assert_eq!(
            parse_idle_flag("0s"),
            Err("\"0s\" is zero; the time must be longer; write a whole number with a unit: 250ms, 5s, 2m or 1h".to_owned())
        );
    }
}
