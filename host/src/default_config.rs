//! The configuration `host serve` uses when given no file: the bundled
//! sample handlers, compiled into the binary.

use serverless_config::{
    AppConfig, ComponentSource, Config, DEFAULT_LISTEN_ADDRESS, DEFAULT_MAX_REQUEST_BODY,
    MethodFilter, OutboundConfig, RouteTable,
};

/// One bundled route: app name, method, path, component, environment.
struct Sample {
    name: &'static str,
    method: &'static str,
    path: &'static str,
    label: &'static str,
    wasm: &'static [u8],
    env: &'static [(&'static str, &'static str)],
}

const SAMPLES: &[Sample] = &[
    Sample {
        name: "hello",
        method: "GET",
        path: "/hello",
        label: "builtin:hello",
        wasm: guest_artifacts::HELLO,
        env: &[],
    },
    Sample {
        name: "hello-name",
        method: "GET",
        path: "/hello/:name",
        label: "builtin:hello",
        wasm: guest_artifacts::HELLO,
        env: &[],
    },
    Sample {
        name: "echo",
        method: "ANY",
        path: "/echo",
        label: "builtin:echo",
        wasm: guest_artifacts::ECHO,
        env: &[],
    },
    Sample {
        name: "echo-rest",
        method: "ANY",
        path: "/echo/*",
        label: "builtin:echo",
        wasm: guest_artifacts::ECHO,
        env: &[],
    },
    Sample {
        name: "env",
        method: "GET",
        path: "/env",
        label: "builtin:env",
        wasm: guest_artifacts::ENV,
        env: &[
            ("APP_MODE", "sample"),
            ("GREETING", "Hello from the env table"),
        ],
    },
    Sample {
        name: "counter",
        method: "GET",
        path: "/counter",
        label: "builtin:redis-counter",
        wasm: guest_artifacts::REDIS_COUNTER,
        env: REDIS_ENV,
    },
    Sample {
        name: "counter-path",
        method: "GET",
        path: "/counter/*",
        label: "builtin:redis-counter",
        wasm: guest_artifacts::REDIS_COUNTER,
        env: REDIS_ENV,
    },
    Sample {
        name: "tcp-echo",
        method: "POST",
        path: "/tcp-echo",
        label: "builtin:tcp-echo",
        wasm: guest_artifacts::TCP_ECHO,
        env: &[("ECHO_ADDRESS", "127.0.0.1:7007")],
    },
];

/// Where the counter sample finds Redis: its default port on this machine.
const REDIS_ENV: &[(&str, &str)] = &[("REDIS_HOST", "127.0.0.1"), ("REDIS_PORT", "6379")];

/// The bundled samples on the default address.
pub(crate) fn samples() -> anyhow::Result<Config> {
    let mut routes = RouteTable::new();
    for sample in SAMPLES {
        let methods = MethodFilter::from_names([sample.method])?;
        let route: serverless_config::RoutePattern = sample.path.parse()?;
        let app = AppConfig {
            name: sample.name.to_owned(),
            component: ComponentSource::Embedded {
                label: sample.label,
                wasm: sample.wasm,
            },
            env: sample
                .env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            max_request_body: DEFAULT_MAX_REQUEST_BODY,
            location: None,
            outbound: OutboundConfig::default(),
            world: None,
        };
        routes.insert(route, methods, app)?;
    }
    Ok(Config {
        listen_address: DEFAULT_LISTEN_ADDRESS.parse()?,
        routes,
    })
}
