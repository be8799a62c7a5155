//! The configuration `host serve` uses when given no file: the bundled
//! sample handlers, compiled into the binary, and the sample site that the
//! `static-files` sample serves.

use anyhow::Context as _;
use serverless_config::{
    AppConfig, ComponentSource, Config, DEFAULT_LISTEN_ADDRESS, DEFAULT_MAX_REQUEST_BODY,
    MethodFilter, Mount, OutboundConfig, RouteTable,
};

/// One bundled route: app name, method, path, component, environment,
/// whether the sample site is mounted at `/site`, and for a core module the
/// function it calls.
struct Sample {
    name: &'static str,
    method: &'static str,
    path: &'static str,
    label: &'static str,
    wasm: &'static [u8],
    env: &'static [(&'static str, &'static str)],
    mounts_site: bool,
    function: Option<&'static str>,
}

/// The files of `guests/rust/static-files/site`, compiled in so that an
/// installed binary can serve them.
const SITE: &[(&str, &[u8])] = &[
    (
        "index.html",
        include_bytes!("../../guests/rust/static-files/site/index.html"),
    ),
    (
        "style.css",
        include_bytes!("../../guests/rust/static-files/site/style.css"),
    ),
    (
        "hello.txt",
        include_bytes!("../../guests/rust/static-files/site/hello.txt"),
    ),
];

/// The bundled samples, and the temporary folder holding the sample site
/// for as long as they are served.
pub(crate) struct Samples {
    pub(crate) config: Config,
    pub(crate) site: tempfile::TempDir,
}

const SAMPLES: &[Sample] = &[
    Sample {
        name: "hello",
        method: "GET",
        path: "/hello",
        label: "builtin:hello",
        wasm: guest_artifacts::HELLO,
        env: &[],
        mounts_site: false,
        function: None,
    },
    Sample {
        name: "hello-name",
        method: "GET",
        path: "/hello/:name",
        label: "builtin:hello",
        wasm: guest_artifacts::HELLO,
        env: &[],
        mounts_site: false,
        function: None,
    },
    Sample {
        name: "echo",
        method: "ANY",
        path: "/echo",
        label: "builtin:echo",
        wasm: guest_artifacts::ECHO,
        env: &[],
        mounts_site: false,
        function: None,
    },
    Sample {
        name: "echo-rest",
        method: "ANY",
        path: "/echo/*",
        label: "builtin:echo",
        wasm: guest_artifacts::ECHO,
        env: &[],
        mounts_site: false,
        function: None,
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
        mounts_site: false,
        function: None,
    },
    Sample {
        name: "counter",
        method: "GET",
        path: "/counter",
        label: "builtin:redis-counter",
        wasm: guest_artifacts::REDIS_COUNTER,
        env: REDIS_ENV,
        mounts_site: false,
        function: None,
    },
    Sample {
        name: "counter-path",
        method: "GET",
        path: "/counter/*",
        label: "builtin:redis-counter",
        wasm: guest_artifacts::REDIS_COUNTER,
        env: REDIS_ENV,
        mounts_site: false,
        function: None,
    },
    Sample {
        name: "tcp-echo",
        method: "POST",
        path: "/tcp-echo",
        label: "builtin:tcp-echo",
        wasm: guest_artifacts::TCP_ECHO,
        env: &[("ECHO_ADDRESS", "127.0.0.1:7007")],
        mounts_site: false,
        function: None,
    },
    Sample {
        name: "http-hello",
        method: "GET",
        path: "/http-hello",
        label: "builtin:http-hello",
        wasm: guest_artifacts::HTTP_HELLO,
        env: &[],
        mounts_site: false,
        function: None,
    },
    Sample {
        name: "http-hello-name",
        method: "GET",
        path: "/http-hello/:name",
        label: "builtin:http-hello",
        wasm: guest_artifacts::HTTP_HELLO,
        env: &[],
        mounts_site: false,
        function: None,
    },
    Sample {
        name: "static-files",
        method: "GET",
        path: "/static/*",
        label: "builtin:static-files",
        wasm: guest_artifacts::STATIC_FILES,
        env: &[],
        mounts_site: true,
        function: None,
    },
    Sample {
        name: "legacy-hello",
        method: "GET",
        path: "/legacy/hello",
        label: "builtin:legacy-hello",
        wasm: guest_artifacts::LEGACY_HELLO,
        env: &[],
        mounts_site: false,
        function: Some("hello"),
    },
    Sample {
        name: "legacy-bonjour",
        method: "GET",
        path: "/legacy/bonjour",
        label: "builtin:legacy-hello",
        wasm: guest_artifacts::LEGACY_HELLO,
        env: &[],
        mounts_site: false,
        function: Some("bonjour"),
    },
];

/// Where the counter sample finds Redis: its default port on this machine.
const REDIS_ENV: &[(&str, &str)] = &[("REDIS_HOST", "127.0.0.1"), ("REDIS_PORT", "6379")];

/// The bundled samples on the default address.
pub(crate) fn samples() -> anyhow::Result<Samples> {
    let site = tempfile::Builder::new()
        .prefix("serverless-wasm-site-")
        .tempdir()
        .context("cannot create a folder for the sample site")?;
    for (name, contents) in SITE {
        std::fs::write(site.path().join(name), contents)
            .with_context(|| format!("cannot write the sample site's {name}"))?;
    }
    let config = sample_config(site.path())?;
    Ok(Samples { config, site })
}

/// The samples' configuration, with their site in `site`: made again by
/// each reload of a host that serves the samples beside a catalog.
pub(crate) fn sample_config(site: &std::path::Path) -> anyhow::Result<Config> {
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
            limits: serverless_config::AppLimits::default(),
            world: None,
            world_location: None,
            function: sample.function.map(|name| serverless_config::Function {
                name: name.to_owned(),
                location: None,
            }),
            messaging: serverless_config::MessagingRules::default(),
            secrets: Vec::new(),
            files: if sample.mounts_site {
                vec![Mount {
                    guest_path: "/site".to_owned(),
                    host_path: site.to_owned(),
                    writable: false,
                }]
            } else {
                Vec::new()
            },
        };
        routes.insert(
            route,
            methods,
            serverless_config::RouteTarget::App(Box::new(app)),
        )?;
    }
    Ok(Config {
        warnings: Vec::new(),
        services: Vec::new(),
        subscriptions: Vec::new(),
        listen_address: DEFAULT_LISTEN_ADDRESS.parse()?,
        routes,
    })
}
