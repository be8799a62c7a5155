//! Topic names and patterns.
//!
//! A topic is one or more tokens separated by `.`; a token is 1 to 64
//! letters, digits, `_` or `-`. The whole name is at most 255 bytes. These
//! are NATS subjects without their wildcards, so a topic means the same on
//! the embedded broker and on NATS.
//!
//! A pattern is a topic whose tokens may also be `*` (exactly one token)
//! or, as the last token only, `>` (one or more tokens): `sensors.*`
//! matches `sensors.kitchen` but not `sensors` or `sensors.a.b`;
//! `sensors.>` matches both of the latter but not `sensors`.
//!
//! Topics whose first token starts with `_` belong to the host (reply
//! inboxes, `_inbox.*`): a wildcard in a pattern's first token does not
//! match them, so a subscription on `>` does not see every reply.

use std::fmt;

/// The longest topic name, in bytes.
pub const MAX_TOPIC: usize = 255;

/// The longest token, in bytes.
const MAX_TOKEN: usize = 64;

/// A topic name or pattern that is not valid, with how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TopicError(String);

/// A topic a message is published on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Topic(String);

/// A pattern of topics, for subscriptions and for the rules that allow
/// publishing and subscribing.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TopicPattern {
    text: String,
    tokens: Vec<PatternToken>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum PatternToken {
    Literal(String),
    /// `*`: one token.
    One,
    /// `>`: one or more tokens, last only.
    Rest,
}

const FORM: &str = "write tokens of letters, digits, `_` or `-` separated by `.`, such as `telemetry` or `sensors.kitchen`";

fn check_token(text: &str, token: &str) -> Result<(), TopicError> {
    if token.is_empty() {
        return Err(TopicError(format!(
            "topic `{text}` has an empty token (a leading, trailing or doubled `.`); {FORM}"
        )));
    }
    if token.len() > MAX_TOKEN {
        return Err(TopicError(format!(
            "topic `{text}` has a token longer than {MAX_TOKEN} bytes; {FORM}"
        )));
    }
    if let Some(bad) = token
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
    {
        return Err(TopicError(format!(
            "topic `{text}` holds {bad:?}, which a topic may not; {FORM}"
        )));
    }
    Ok(())
}

fn check_length(text: &str) -> Result<(), TopicError> {
    if text.is_empty() {
        return Err(TopicError(format!("the topic is empty; {FORM}")));
    }
    if text.len() > MAX_TOPIC {
        return Err(TopicError(format!(
            "topic `{}...` is longer than {MAX_TOPIC} bytes",
            &text[..text.floor_char_boundary(32)]
        )));
    }
    Ok(())
}

impl Topic {
    /// Checks a topic name.
    pub fn new(text: &str) -> Result<Topic, TopicError> {
        check_length(text)?;
        for token in text.split('.') {
            if token == "*" || token == ">" {
                return Err(TopicError(format!(
                    "topic `{text}` holds the wildcard `{token}`: a message is published on one topic; name it in full"
                )));
            }
            check_token(text, token)?;
        }
        Ok(Topic(text.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether it is one of the host's own topics (first token starting
    /// with `_`, such as the reply inboxes).
    pub fn is_reserved(&self) -> bool {
        self.0.starts_with('_')
    }

    /// Whether it is a reply inbox (`_inbox.*`), the only topics a reply
    /// goes to.
    pub fn is_inbox(&self) -> bool {
        self.0.starts_with(INBOX_PREFIX)
    }
}

/// What every reply inbox's name starts with.
pub const INBOX_PREFIX: &str = "_inbox.";

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TopicPattern {
    /// Checks a pattern.
    pub fn new(text: &str) -> Result<TopicPattern, TopicError> {
        check_length(text)?;
        let parts: Vec<&str> = text.split('.').collect();
        let mut tokens = Vec::with_capacity(parts.len());
        for (index, part) in parts.iter().enumerate() {
            tokens.push(match *part {
                "*" => PatternToken::One,
                ">" if index + 1 == parts.len() => PatternToken::Rest,
                ">" => {
                    return Err(TopicError(format!(
                        "pattern `{text}` has `>` before its last token; `>` matches the rest of a topic, so it comes last (`sensors.>`)"
                    )));
                }
                token => {
                    check_token(text, token)?;
                    PatternToken::Literal(token.to_owned())
                }
            });
        }
        Ok(TopicPattern {
            text: text.to_owned(),
            tokens,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `topic` matches.
    pub fn matches(&self, topic: &Topic) -> bool {
        if topic.is_reserved()
            && matches!(
                self.tokens.first(),
                Some(PatternToken::One | PatternToken::Rest)
            )
        {
            return false;
        }
        let mut names = topic.0.split('.');
        for token in &self.tokens {
            match token {
                PatternToken::Rest => return names.next().is_some(),
                PatternToken::One => {
                    if names.next().is_none() {
                        return false;
                    }
                }
                PatternToken::Literal(literal) => {
                    if names.next() != Some(literal.as_str()) {
                        return false;
                    }
                }
            }
        }
        names.next().is_none()
    }

    /// Whether every topic this pattern matches is matched by `wider`
    /// too: a subscription's pattern must lie within an app's rules.
    pub fn within(&self, wider: &TopicPattern) -> bool {
        let mut own = self.tokens.iter();
        for token in &wider.tokens {
            match (token, own.next()) {
                (PatternToken::Rest, Some(_)) => return true,
                (PatternToken::One, Some(PatternToken::One | PatternToken::Literal(_))) => {}
                (PatternToken::Literal(a), Some(PatternToken::Literal(b))) if a == b => {}
                _ => return false,
            }
        }
        own.next().is_none()
    }
}

impl fmt::Display for TopicPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(text: &str) -> Topic {
        Topic::new(text).unwrap()
    }

    fn pattern(text: &str) -> TopicPattern {
        TopicPattern::new(text).unwrap()
    }

    #[test]
    fn a_leading_wildcard_does_not_reach_the_host_s_topics() {
        let inbox = topic("_inbox.abc");
        assert!(!pattern(">").matches(&inbox));
        assert!(!pattern("*.abc").matches(&inbox));
        assert!(pattern("_inbox.abc").matches(&inbox));
        assert!(pattern("_inbox.*").matches(&inbox));
        assert!(inbox.is_inbox() && inbox.is_reserved());
        assert!(pattern(">").matches(&topic("sensors.kitchen")));
    }

    #[test]
    fn patterns_match_one_token_or_the_rest() {
        let one = pattern("sensors.*");
        assert!(one.matches(&topic("sensors.kitchen")));
        assert!(!one.matches(&topic("sensors")));
        assert!(!one.matches(&topic("sensors.a.b")));
        let rest = pattern("sensors.>");
        assert!(rest.matches(&topic("sensors.kitchen")));
        assert!(rest.matches(&topic("sensors.a.b")));
        assert!(!rest.matches(&topic("sensors")));
        assert!(pattern("telemetry").matches(&topic("telemetry")));
        assert!(!pattern("telemetry").matches(&topic("telemetry.x")));
        assert!(pattern("*.kitchen").matches(&topic("sensors.kitchen")));
        assert!(pattern(">").matches(&topic("anything.at.all")));
    }

    #[test]
    fn a_pattern_lies_within_a_wider_one_or_not() {
        assert!(pattern("sensors.kitchen").within(&pattern("sensors.*")));
        assert!(pattern("sensors.*").within(&pattern("sensors.>")));
        assert!(pattern("sensors.a.>").within(&pattern("sensors.>")));
        assert!(!pattern("sensors.>").within(&pattern("sensors.*")));
        assert!(!pattern("sensors.*").within(&pattern("sensors.kitchen")));
        assert!(!pattern("sensors").within(&pattern("sensors.>")));
        assert!(pattern("telemetry").within(&pattern("telemetry")));
    }

    #[test]
    fn bad_names_say_how_to_fix_them() {
        let error = |text: &str| Topic::new(text).unwrap_err().to_string();
        assert_eq!(
            error("sensors..kitchen"),
            "topic `sensors..kitchen` has an empty token (a leading, trailing or doubled `.`); write tokens of letters, digits, `_` or `-` separated by `.`, such as `telemetry` or `sensors.kitchen`"
        );
        assert_eq!(
            error("sensors kitchen"),
            "topic `sensors kitchen` holds ' ', which a topic may not; write tokens of letters, digits, `_` or `-` separated by `.`, such as `telemetry` or `sensors.kitchen`"
        );
        assert_eq!(
            error("sensors.*"),
            "topic `sensors.*` holds the wildcard `*`: a message is published on one topic; name it in full"
        );
        assert_eq!(
            TopicPattern::new("a.>.b").unwrap_err().to_string(),
            "pattern `a.>.b` has `>` before its last token; `>` matches the rest of a topic, so it comes last (`sensors.>`)"
        );
        assert!(Topic::new(&"a".repeat(300)).is_err());
        assert!(Topic::new("").is_err());
    }
}
