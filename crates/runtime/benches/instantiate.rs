//! Micro-benchmark of the per-request work, in process and without HTTP:
//! a fresh instance of the hello component from the pool, `handle`, and the
//! finished response. A regression in per-request overhead shows here
//! without a load generator: `cargo bench -p serverless-runtime`.

use std::path::Path;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use serverless_config::Config;
use serverless_runtime::{App, IncomingRequest, OperatorRules, Runtime, RuntimeSettings};

/// The hello sample (or the component named by `BENCH_HELLO_COMPONENT`,
/// to compare builds of it), loaded as `host serve` loads it.
fn hello_app() -> Arc<App> {
    let component = std::env::var("BENCH_HELLO_COMPONENT")
        .unwrap_or_else(|_| guest_artifacts::HELLO_PATH.to_owned());
    let config = Config::parse(
        &format!(
            "[[applications]]\nname = \"hello\"\nfile_path = {component:?}\nmethod = \"GET\"\nurl_path = \"/hello/:name\"\n"
        ),
        Path::new("bench.toml"),
    )
    .expect("a valid configuration");
    let runtime = Runtime::new(RuntimeSettings::default()).expect("an engine");
    let app = config.apps().next().expect("one app").clone();
    let operator = OperatorRules {
        tcp: serverless_outbound::TcpAllowlist::new(Vec::new()),
        http: serverless_outbound::HttpAllowlist::new(Vec::new()),
    };
    runtime
        .loader(&operator)
        .load(app)
        .expect("the hello app loads")
}

fn per_request(c: &mut Criterion) {
    // One thread, like a loaded host pinned to one core: the store drop
    // that `handle` hands to a task of its own runs on the same thread, in
    // the same iteration, with no wake-up of another thread in between.
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let app = tokio.block_on(async { hello_app() });
    let request = IncomingRequest {
        request_id: "bench".into(),
        method: http::Method::GET,
        path: "/hello/bench".to_owned(),
        query: String::new(),
        headers: http::HeaderMap::new(),
        body: bytes::Bytes::new(),
        route: "/hello/:name".into(),
        params: vec![("name".to_owned(), "bench".to_owned())],
    };
    c.bench_function("hello: instantiate, handle, respond", |b| {
        b.to_async(&tokio).iter(|| {
            let (app, request) = (app.clone(), request.clone());
            async move {
                let response = app.handle(request, ()).await.expect("hello answers");
                assert_eq!(response.status, http::StatusCode::OK);
                // Let the store-dropping task run now, as the server's
                // connection task does when it writes the response: without
                // a yield, stores pile up until the guest happens to yield
                // at an epoch tick, and past the pool's 1000 instances the
                // next request fails.
                tokio::task::yield_now().await;
                response
            }
        })
    });
}

criterion_group!(benches, per_request);
criterion_main!(benches);
