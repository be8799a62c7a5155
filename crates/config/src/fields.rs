//! Validated field types. Each checks its value while the file is being
//! deserialised, so that a bad value is reported at its own line and column.

use std::fmt;
use std::net::SocketAddr;

use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serverless_router::{MethodFilter, RoutePattern};

/// `listen_address`: an IP address with a port.
#[derive(Debug, Deserialize)]
#[serde(try_from = "String")]
pub(crate) struct ListenAddress(pub SocketAddr);

impl TryFrom<String> for ListenAddress {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse().map(ListenAddress).map_err(|_| {
            format!(
                "`{text}` is not an IP address with a port; write it as `127.0.0.1:8080`, `0.0.0.0:80` or `[::1]:8080`"
            )
        })
    }
}

/// `name`: letters, digits, `.`, `_` and `-`, so that it reads well in logs
/// and URLs.
#[derive(Debug, Deserialize)]
#[serde(try_from = "String")]
pub(crate) struct AppName(pub String);

/// The longest app name accepted.
const MAX_APP_NAME: usize = 64;

impl TryFrom<String> for AppName {
    type Error = String;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        if name.is_empty() {
            return Err("app name is empty; remove `name` to use the file name, or give a name such as `hello`".to_owned());
        }
        if name.len() > MAX_APP_NAME {
            return Err(format!(
                "app name is {} characters long; use at most {MAX_APP_NAME}",
                name.len()
            ));
        }
        if let Some(c) = name.chars().find(|c| !is_name_char(*c)) {
            return Err(format!(
                "app name `{name}` contains `{c}`; use only letters, digits, `.`, `_` and `-`"
            ));
        }
        Ok(AppName(name))
    }
}

/// `function`: the export a core module's route calls.
#[derive(Debug, Deserialize)]
#[serde(try_from = "String")]
pub(crate) struct FunctionField(pub String);

impl TryFrom<String> for FunctionField {
    type Error = String;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        if name.is_empty() {
            return Err("function is empty; name the function the module exports, such as \"hello\", or remove the key to call `handle`".to_owned());
        }
        if name.chars().any(char::is_control) {
            return Err(format!(
                "function `{}` holds a control character; name the function the module exports",
                name.escape_debug()
            ));
        }
        Ok(FunctionField(name))
    }
}

/// Whether `c` may appear in an app name.
pub(crate) fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

/// `url_path`: a route pattern.
#[derive(Debug, Deserialize)]
#[serde(try_from = "String")]
pub(crate) struct Route(pub RoutePattern);

impl TryFrom<String> for Route {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
            .map(Route)
            .map_err(|e: serverless_router::InvalidPattern| e.to_string())
    }
}

/// `method`: one method name or a list of them.
#[derive(Debug)]
pub(crate) struct Methods(pub MethodFilter);

impl<'de> Deserialize<'de> for Methods {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MethodsVisitor;

        impl<'de> Visitor<'de> for MethodsVisitor {
            type Value = Methods;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a method such as \"GET\", a list such as [\"GET\", \"POST\"], or \"ANY\"",
                )
            }

            fn visit_str<E: de::Error>(self, name: &str) -> Result<Methods, E> {
                MethodFilter::from_names([name])
                    .map(Methods)
                    .map_err(E::custom)
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Methods, A::Error> {
                let mut names: Vec<String> = Vec::new();
                while let Some(name) = seq.next_element::<String>()? {
                    names.push(name);
                }
                MethodFilter::from_names(names.iter().map(String::as_str))
                    .map(Methods)
                    .map_err(de::Error::custom)
            }
        }

        deserializer.deserialize_any(MethodsVisitor)
    }
}

/// A key of an app's `env` table.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub(crate) struct EnvName(pub String);

impl TryFrom<String> for EnvName {
    type Error = String;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        if name.is_empty() {
            Err("environment variable name is empty; give it a name such as `GREETING`".to_owned())
        } else if name.contains('=') || name.contains('\0') {
            Err(format!(
                "environment variable name `{}` contains `=` or a NUL byte, which cannot appear in a name",
                name.escape_debug()
            ))
        } else {
            Ok(EnvName(name))
        }
    }
}

/// A value of an app's `env` table: a literal string, or
/// `{ from_env = "NAME" }` to take it from the host's environment when the
/// host starts (such values are secrets: the host never logs them).
#[derive(Debug)]
pub(crate) enum EnvValue {
    Literal(String),
    FromEnv(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FromEnvTable {
    from_env: String,
}

impl<'de> Deserialize<'de> for EnvValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EnvValueVisitor;

        impl<'de> Visitor<'de> for EnvValueVisitor {
            type Value = EnvValue;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, or a table { from_env = \"NAME\" }")
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<EnvValue, E> {
                if value.contains('\0') {
                    return Err(E::custom(
                        "environment variable value contains a NUL byte, which the environment cannot hold",
                    ));
                }
                Ok(EnvValue::Literal(value.to_owned()))
            }

            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<EnvValue, A::Error> {
                let table = FromEnvTable::deserialize(de::value::MapAccessDeserializer::new(map))?;
                if table.from_env.is_empty() || table.from_env.contains(['=', '\0']) {
                    return Err(de::Error::custom(format!(
                        "`{}` is not an environment variable name",
                        table.from_env.escape_debug()
                    )));
                }
                Ok(EnvValue::FromEnv(table.from_env))
            }
        }

        deserializer.deserialize_any(EnvValueVisitor)
    }
}

/// A value of an app's `files` table: a host folder, or
/// `{ path = "folder", writable = true }`.
#[derive(Debug)]
pub(crate) struct MountValue {
    pub path: String,
    pub writable: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MountTable {
    path: String,
    #[serde(default)]
    writable: bool,
}

impl<'de> Deserialize<'de> for MountValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MountVisitor;

        impl<'de> Visitor<'de> for MountVisitor {
            type Value = MountValue;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a host folder, or a table { path = \"folder\", writable = true }")
            }

            fn visit_str<E: de::Error>(self, path: &str) -> Result<MountValue, E> {
                Ok(MountValue {
                    path: path.to_owned(),
                    writable: false,
                })
            }

            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<MountValue, A::Error> {
                let table = MountTable::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(MountValue {
                    path: table.path,
                    writable: table.writable,
                })
            }
        }

        deserializer.deserialize_any(MountVisitor)
    }
}

/// Checks a guest mount point: absolute, without `.` or `..` segments;
/// returns it without a trailing `/`.
pub(crate) fn guest_mount_path(text: &str) -> Result<String, String> {
    let Some(rest) = text.strip_prefix('/') else {
        return Err(format!(
            "mount point `{text}` must be an absolute guest path, such as `/{text}`"
        ));
    };
    let trimmed = rest.trim_end_matches('/');
    if trimmed.is_empty() {
        return Ok("/".to_owned());
    }
    for segment in trimmed.split('/') {
        if segment.is_empty() || segment == "." || segment == ".." {
            return Err(format!(
                "mount point `{text}` has an empty, `.` or `..` segment; write it plainly, such as `/static`"
            ));
        }
    }
    Ok(format!("/{trimmed}"))
}

/// A service's `http`: the loopback address where it answers HTTP, which
/// routes with `service` are proxied to. Loopback only, so that proxied
/// requests never leave the machine; a port of its own, since the host
/// connects to it.
#[derive(Debug, Deserialize)]
#[serde(try_from = "String")]
pub(crate) struct ServiceHttpAddress(pub SocketAddr);

impl TryFrom<String> for ServiceHttpAddress {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        let address: SocketAddr = text.parse().map_err(|_| {
            format!(
                "http `{text}` is not an IP address with a port; write the loopback address the service answers HTTP on, such as `127.0.0.1:9001`"
            )
        })?;
        if !address.ip().is_loopback() {
            return Err(format!(
                "http `{text}` is not a loopback address; the host proxies routes to a service over loopback only, so let the service listen on 127.0.0.1 or [::1]"
            ));
        }
        if address.port() == 0 {
            return Err(format!(
                "http `{text}` has port 0; give the fixed port the service listens on, since the host connects to it"
            ));
        }
        Ok(ServiceHttpAddress(address))
    }
}

/// A service's `restart`.
#[derive(Debug, Deserialize)]
#[serde(try_from = "String")]
pub(crate) struct RestartField(pub crate::Restart);

impl TryFrom<String> for RestartField {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        match text.as_str() {
            "always" => Ok(RestartField(crate::Restart::Always)),
            "on-failure" => Ok(RestartField(crate::Restart::OnFailure)),
            "never" => Ok(RestartField(crate::Restart::Never)),
            _ => Err(format!(
                "unknown restart `{text}`; use \"always\", \"on-failure\" (the default: after a trap or a non-zero exit) or \"never\""
            )),
        }
    }
}

/// `world`: `"handler"` or `"wasi-http"`.
#[derive(Debug, Deserialize)]
#[serde(try_from = "String")]
pub(crate) struct WorldField(pub crate::World);

impl TryFrom<String> for WorldField {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        match text.as_str() {
            "handler" => Ok(WorldField(crate::World::Handler)),
            "wasi-http" => Ok(WorldField(crate::World::WasiHttp)),
            _ => Err(format!(
                "unknown world `{text}`; use \"handler\" (exports `handle`) or \"wasi-http\" (exports wasi:http/incoming-handler), or leave it out to let the host tell"
            )),
        }
    }
}

/// A duration: whole seconds, or a string such as `"250ms"`, `"5s"` or
/// `"2m"`. Zero is refused, since it would make every attempt fail.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeout(pub std::time::Duration);

const DURATION_HELP: &str =
    "write whole seconds such as 5, or a duration such as \"250ms\", \"5s\", \"2m\" or \"1h\"";

impl<'de> Deserialize<'de> for Timeout {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TimeoutVisitor;

        impl<'de> Visitor<'de> for TimeoutVisitor {
            type Value = Timeout;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration")
            }

            fn visit_i64<E: de::Error>(self, value: i64) -> Result<Timeout, E> {
                u64::try_from(value)
                    .ok()
                    .filter(|v| *v > 0)
                    .map(|v| Timeout(std::time::Duration::from_secs(v)))
                    .ok_or_else(|| {
                        E::custom(format!(
                            "duration {value} must be positive; {DURATION_HELP}"
                        ))
                    })
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<Timeout, E> {
                parse_duration(text).map(Timeout).ok_or_else(|| {
                    E::custom(format!(
                        "`{text}` is not a positive duration; {DURATION_HELP}"
                    ))
                })
            }
        }

        deserializer.deserialize_any(TimeoutVisitor)
    }
}

/// Parses a duration as the configuration writes it: a whole number with
/// a unit, `"250ms"`, `"5s"`, `"2m"` or `"1h"`; `None` for anything else
/// or zero (a zero timeout would make every attempt fail). The host's
/// time flags use it too, so that one spelling works everywhere.
pub fn parse_duration(text: &str) -> Option<std::time::Duration> {
    parse_duration_or_zero(text).filter(|duration| !duration.is_zero())
}

/// Like [`parse_duration`], but zero (`"0s"`) is a duration too, for the
/// flags where it means "do not wait".
pub fn parse_duration_or_zero(text: &str) -> Option<std::time::Duration> {
    let text = text.trim();
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits_end);
    let number: u64 = number.parse().ok()?;
    let duration = match unit.trim() {
        "ms" => std::time::Duration::from_millis(number),
        "s" => std::time::Duration::from_secs(number),
        "m" => std::time::Duration::from_secs(number.checked_mul(60)?),
        "h" => std::time::Duration::from_secs(number.checked_mul(3600)?),
        _ => return None,
    };
    Some(duration)
}

/// A size in bytes: an integer, or a string with a unit such as
/// `"512 KiB"` or `"10MB"`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ByteSize(pub u64);

const SIZE_HELP: &str = "write a number of bytes such as 1048576, or a size with a unit such as \"512 KiB\", \"10 MiB\" or \"1 GB\"";

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SizeVisitor;

        impl<'de> Visitor<'de> for SizeVisitor {
            type Value = ByteSize;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size in bytes")
            }

            fn visit_i64<E: de::Error>(self, value: i64) -> Result<ByteSize, E> {
                u64::try_from(value)
                    .map(ByteSize)
                    .map_err(|_| E::custom(format!("size {value} is negative; {SIZE_HELP}")))
            }

            fn visit_u64<E: de::Error>(self, value: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(value))
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<ByteSize, E> {
                parse_size(text)
                    .map(ByteSize)
                    .ok_or_else(|| E::custom(format!("`{text}` is not a size; {SIZE_HELP}")))
            }
        }

        deserializer.deserialize_any(SizeVisitor)
    }
}

/// Parses a size as the configuration writes it (`max_request_body`):
/// `"10 MiB"`, `"512kb"`, `"100"`; `None` for anything else or an
/// overflow. The host's size flags use it too.
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits_end);
    let number: u64 = number.parse().ok()?;
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1000,
        "kib" => 1 << 10,
        "mb" => 1000 * 1000,
        "mib" => 1 << 20,
        "gb" => 1000 * 1000 * 1000,
        "gib" => 1 << 30,
        _ => return None,
    };
    number.checked_mul(multiplier)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_accept_si_and_binary_units() {
        assert_eq!(parse_size("100"), Some(100));
        assert_eq!(parse_size("10 MiB"), Some(10 * 1024 * 1024));
        assert_eq!(parse_size("512kb"), Some(512_000));
        assert_eq!(parse_size("1GiB"), Some(1 << 30));
        assert_eq!(parse_size("1.5 MiB"), None);
        assert_eq!(parse_size("ten"), None);
        assert_eq!(parse_size("MiB"), None);
        assert_eq!(parse_size("99999999999999999999 GiB"), None);
    }

    #[test]
    fn durations_take_a_unit() {
        assert_eq!(
            parse_duration("250ms"),
            Some(std::time::Duration::from_millis(250))
        );
        assert_eq!(
            parse_duration("5s"),
            Some(std::time::Duration::from_secs(5))
        );
        assert_eq!(
            parse_duration("2m"),
            Some(std::time::Duration::from_secs(120))
        );
        assert_eq!(parse_duration("0s"), None);
        assert_eq!(
            parse_duration_or_zero("0ms"),
            Some(std::time::Duration::ZERO)
        );
        assert_eq!(parse_duration_or_zero("0"), None);
        assert_eq!(parse_duration("5"), None);
        assert_eq!(
            parse_duration("1h"),
            Some(std::time::Duration::from_secs(3600))
        );
        assert_eq!(parse_duration("1d"), None);
    }

    #[test]
    fn app_names_are_log_friendly() {
        assert!(AppName::try_from("hello-world_2.v1".to_owned()).is_ok());
        let err = AppName::try_from("hello world".to_owned()).unwrap_err();
        assert!(err.contains("contains ` `"), "{err}");
        assert!(AppName::try_from(String::new()).is_err());
        assert!(AppName::try_from("x".repeat(65)).is_err());
    }

    #[test]
    fn listen_address_needs_a_port() {
        assert!(ListenAddress::try_from("127.0.0.1:0".to_owned()).is_ok());
        assert!(ListenAddress::try_from("[::1]:8080".to_owned()).is_ok());
        let err = ListenAddress::try_from("localhost".to_owned()).unwrap_err();
        assert!(err.contains("127.0.0.1:8080"), "{err}");
    }
}
