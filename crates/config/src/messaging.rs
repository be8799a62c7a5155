//! The messaging keys: `publish`, `max_message_size` and
//! `max_publish_rate` on apps, services and subscriptions, and the
//! `[[subscriptions]]` entries themselves.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;

use serde::Deserialize;
use serverless_messaging::{RetryPolicy, Topic, TopicPattern};
use toml::Spanned;

use crate::fields::{AppName, ByteSize, EnvName, EnvValue, MountValue, Timeout};
use crate::raw::{RawOutbound, Resolved, default_name, env_table, mounts, resolve_component};
use crate::{
    AppConfig, AppLimits, ComponentSource, ConfigError, Location, MessagingRules,
    SubscriptionConfig,
};

/// A subscription handles one message at a time unless it says otherwise,
/// which keeps the order of each topic.
const DEFAULT_SUBSCRIPTION_CONCURRENCY: u32 = 1;

/// The most deliveries a subscription may ask for.
const MOST_ATTEMPTS: u32 = 100;

type At<'a> = &'a dyn Fn(Range<usize>, String) -> ConfigError;

/// An entry's `publish`, `max_message_size` and `max_publish_rate`,
/// checked: each pattern is an error at itself when it does not parse.
pub(crate) fn rules(
    publish: Option<Vec<Spanned<String>>>,
    max_message_size: Option<ByteSize>,
    max_publish_rate: Option<Spanned<u32>>,
    at: At<'_>,
    locate: &dyn Fn(usize) -> Location,
) -> Result<MessagingRules, ConfigError> {
    let defaults = MessagingRules::default();
    let publish = publish
        .unwrap_or_default()
        .into_iter()
        .map(|entry| {
            let pattern = TopicPattern::new(entry.get_ref())
                .map_err(|error| at(entry.span(), format!("invalid publish entry: {error}")))?;
            Ok((pattern, locate(entry.span().start)))
        })
        .collect::<Result<Vec<_>, ConfigError>>()?;
    if let Some(rate) = max_publish_rate
        .as_ref()
        .filter(|rate| *rate.get_ref() == 0)
    {
        return Err(at(
            rate.span(),
            "max_publish_rate must be at least 1 message a second; remove it for no cap, or remove `publish` to send nothing".to_owned(),
        ));
    }
    Ok(MessagingRules {
        publish,
        max_message_size: max_message_size.map_or(defaults.max_message_size, |size| size.0),
        max_publish_rate: max_publish_rate.map(Spanned::into_inner),
    })
}

/// One `[[subscriptions]]` entry as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSubscription {
    name: Option<Spanned<AppName>>,
    topic: Spanned<String>,
    file_path: Spanned<String>,
    #[serde(default)]
    env: BTreeMap<EnvName, Spanned<EnvValue>>,
    files: Option<BTreeMap<Spanned<String>, Spanned<MountValue>>>,
    allowed_tcp: Option<Vec<Spanned<String>>>,
    allowed_http: Option<Vec<Spanned<String>>>,
    tcp_connect_timeout: Option<Timeout>,
    tcp_io_timeout: Option<Timeout>,
    max_tcp_connections: Option<u32>,
    timeout: Option<Timeout>,
    max_memory: Option<ByteSize>,
    fuel: Option<Spanned<u64>>,
    max_concurrency: Option<Spanned<u32>>,
    max_attempts: Option<Spanned<u32>>,
    retry_backoff: Option<Timeout>,
    max_retry_backoff: Option<Timeout>,
    dead_letter: Option<Spanned<String>>,
    publish: Option<Vec<Spanned<String>>>,
    max_message_size: Option<ByteSize>,
    max_publish_rate: Option<Spanned<u32>>,
}

impl RawSubscription {
    /// Its explicit name and where it is written.
    pub(crate) fn name(&self) -> Option<(&str, Range<usize>)> {
        self.name
            .as_ref()
            .map(|name| (name.get_ref().0.as_str(), name.span()))
    }
}

/// What a subscription takes from the file's top level.
pub(crate) struct Context<'a> {
    pub(crate) base: &'a Path,
    pub(crate) limits: AppLimits,
    pub(crate) max_request_body: u64,
    pub(crate) lookup_env: &'a dyn Fn(&str) -> Option<String>,
    pub(crate) at: At<'a>,
    pub(crate) locate: &'a dyn Fn(usize) -> Location,
}

/// Checks one `[[subscriptions]]` entry; `taken` holds the names already
/// used by apps, services and subscriptions, and gets this one's. Also
/// returns where its `dead_letter` is written, for [`dead_letter_cycles`].
pub(crate) fn subscription(
    raw: RawSubscription,
    index: usize,
    taken: &mut std::collections::HashSet<String>,
    cx: &Context<'_>,
) -> Result<(SubscriptionConfig, Option<Range<usize>>), ConfigError> {
    let dead_letter_span = raw.dead_letter.as_ref().map(Spanned::span);
    let at = cx.at;
    let topic_span = raw.topic.span();
    let topic = TopicPattern::new(raw.topic.get_ref())
        .map_err(|error| at(topic_span.clone(), error.to_string()))?;
    if topic.as_str().starts_with('_') {
        return Err(at(
            topic_span,
            format!(
                "topic `{topic}` starts with `_`, which marks the host's own topics (reply inboxes); name a topic that does not"
            ),
        ));
    }
    let file_span = raw.file_path.span();
    let file = match resolve_component(cx.base, raw.file_path.get_ref())
        .map_err(|message| at(file_span.clone(), message))?
    {
        Resolved::NextToConfig(file) | Resolved::InWorkingDirectory { file, .. } => file,
    };
    let name = match raw.name {
        Some(name) => name.into_inner().0,
        None => default_name(&file, index, taken),
    };
    let (env, secrets) = env_table(
        raw.env,
        &format!("subscription `{name}`"),
        cx.lookup_env,
        at,
    )?;
    let files = match raw.files {
        None => Vec::new(),
        Some(files) => mounts(cx.base, files).map_err(|(span, message)| at(span, message))?,
    };
    for (value, key) in [
        (
            raw.max_concurrency
                .as_ref()
                .map(|v| (u64::from(*v.get_ref()), v.span())),
            "max_concurrency",
        ),
        (
            raw.max_attempts
                .as_ref()
                .map(|v| (u64::from(*v.get_ref()), v.span())),
            "max_attempts",
        ),
        (raw.fuel.as_ref().map(|v| (*v.get_ref(), v.span())), "fuel"),
    ] {
        if let Some((0, span)) = value {
            return Err(at(
                span,
                format!("{key} must be at least 1; remove it for the default"),
            ));
        }
    }
    if let Some(attempts) = raw
        .max_attempts
        .as_ref()
        .filter(|a| *a.get_ref() > MOST_ATTEMPTS)
    {
        return Err(at(
            attempts.span(),
            format!(
                "max_attempts may be at most {MOST_ATTEMPTS}; a message that fails that often needs a dead_letter topic, not more attempts"
            ),
        ));
    }
    let dead_letter = match raw.dead_letter {
        None => None,
        Some(written) => {
            let span = written.span();
            let dead = Topic::new(written.get_ref())
                .map_err(|error| at(span.clone(), format!("invalid dead_letter: {error}")))?;
            if topic.matches(&dead) {
                return Err(at(
                    span,
                    format!(
                        "dead_letter `{dead}` matches this subscription's own topic `{topic}`, so a failed message would come back to it; name a topic outside `{topic}`"
                    ),
                ));
            }
            Some(dead)
        }
    };
    let defaults = RetryPolicy::default();
    let retry = RetryPolicy {
        attempts: raw
            .max_attempts
            .map_or(defaults.attempts, Spanned::into_inner),
        backoff: raw.retry_backoff.map_or(defaults.backoff, |t| t.0),
        max_backoff: raw.max_retry_backoff.map_or(defaults.max_backoff, |t| t.0),
        dead_letter,
    };
    let app = AppConfig {
        name: name.clone(),
        component: ComponentSource::File(file),
        env,
        secrets,
        files,
        max_request_body: cx.max_request_body,
        limits: AppLimits {
            timeout: raw.timeout.map_or(cx.limits.timeout, |t| t.0),
            max_memory: raw.max_memory.map_or(cx.limits.max_memory, |s| s.0),
            fuel: raw.fuel.map(Spanned::into_inner),
            max_concurrency: None,
            ..cx.limits
        },
        location: Some((cx.locate)(file_span.start)),
        outbound: RawOutbound {
            allowed_tcp: raw.allowed_tcp,
            allowed_http: raw.allowed_http,
            connect_timeout: raw.tcp_connect_timeout,
            io_timeout: raw.tcp_io_timeout,
            max_connections: raw.max_tcp_connections,
        }
        .validate(at, cx.locate)?,
        world: None,
        world_location: None,
        function: None,
        messaging: rules(
            raw.publish,
            raw.max_message_size,
            raw.max_publish_rate,
            at,
            cx.locate,
        )?,
    };
    Ok((
        SubscriptionConfig {
            app,
            topic,
            max_concurrency: raw
                .max_concurrency
                .map_or(DEFAULT_SUBSCRIPTION_CONCURRENCY, Spanned::into_inner),
            retry,
            location: Some((cx.locate)(topic_span.start)),
        },
        dead_letter_span,
    ))
}

/// Refuses dead-letter topics that lead back round: subscription A's
/// `dead_letter` is taken by B, whose `dead_letter` is taken by A again,
/// so that a message that fails everywhere would go round for ever.
/// `spans` holds where each entry's `dead_letter` is written.
pub(crate) fn dead_letter_cycles(
    subscriptions: &[SubscriptionConfig],
    spans: &[Option<Range<usize>>],
    at: At<'_>,
) -> Result<(), ConfigError> {
    // Who takes each entry's dead letters.
    let next: Vec<Vec<usize>> = subscriptions
        .iter()
        .map(|entry| match &entry.retry.dead_letter {
            None => Vec::new(),
            Some(dead) => subscriptions
                .iter()
                .enumerate()
                .filter(|(_, other)| other.topic.matches(dead))
                .map(|(index, _)| index)
                .collect(),
        })
        .collect();
    for (start, span) in spans.iter().enumerate() {
        // Depth first from `start`, looking for the way back to it.
        let mut stack: Vec<(usize, Vec<usize>)> = vec![(start, vec![start])];
        let mut seen = vec![false; subscriptions.len()];
        while let Some((at_entry, path)) = stack.pop() {
            for &to in &next[at_entry] {
                if to == start {
                    let names: Vec<String> = path
                        .iter()
                        .chain(std::iter::once(&start))
                        .map(|&index| format!("`{}`", subscriptions[index].app.name))
                        .collect();
                    return Err(at(
                        span.clone().unwrap_or(0..0),
                        format!(
                            "dead letters go round: {}; a message that fails in each would never stop, so end the chain with a subscription without dead_letter",
                            names.join(" -> ")
                        ),
                    ));
                }
                if !seen[to] {
                    seen[to] = true;
                    let mut longer = path.clone();
                    longer.push(to);
                    stack.push((to, longer));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    fn parse(text: &str) -> crate::Config {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("gateway.wasm"), b"\0asm").unwrap();
        crate::Config::parse(text, &dir.path().join("serverless.toml")).unwrap()
    }

    #[test]
    fn a_subscription_takes_its_defaults_and_the_file_s_limits() {
        let config = parse(
            "timeout = \"5s\"\n[[subscriptions]]\ntopic = \"sensors.*\"\nfile_path = \"gateway.wasm\"\n",
        );
        let entry = &config.subscriptions[0];
        assert_eq!(entry.app.name, "gateway");
        assert_eq!(entry.topic.as_str(), "sensors.*");
        assert_eq!(entry.max_concurrency, 1);
        assert_eq!(entry.retry, serverless_messaging::RetryPolicy::default());
        assert_eq!(entry.app.limits.timeout, Duration::from_secs(5));
        assert!(entry.app.messaging.publish.is_empty(), "deny by default");
        assert_eq!(
            entry.app.messaging.max_message_size,
            serverless_messaging::policy::DEFAULT_MAX_MESSAGE_SIZE
        );
    }

    #[test]
    fn a_subscription_s_own_keys_are_read() {
        let config = parse(
            "[[subscriptions]]\nname = \"gw\"\ntopic = \"telemetry\"\nfile_path = \"gateway.wasm\"\nmax_concurrency = 4\nmax_attempts = 5\nretry_backoff = \"20ms\"\nmax_retry_backoff = \"1s\"\ndead_letter = \"telemetry-failed\"\npublish = [\"alerts.>\"]\nmax_message_size = \"4 KiB\"\nmax_publish_rate = 10\n",
        );
        let entry = &config.subscriptions[0];
        assert_eq!(entry.max_concurrency, 4);
        assert_eq!(
            entry.retry,
            serverless_messaging::RetryPolicy {
                attempts: 5,
                backoff: Duration::from_millis(20),
                max_backoff: Duration::from_secs(1),
                dead_letter: Some(serverless_messaging::Topic::new("telemetry-failed").unwrap()),
            }
        );
        let rules = &entry.app.messaging;
        assert_eq!(rules.publish.len(), 1);
        assert_eq!(rules.publish[0].0.as_str(), "alerts.>");
        assert_eq!(rules.publish[0].1.line, 10);
        assert_eq!(
            (rules.max_message_size, rules.max_publish_rate),
            (4096, Some(10))
        );
    }
}
