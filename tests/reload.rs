//! Hot reload under load: SIGHUP and `--watch` swap the route table while
//! a steady client sees no errors, and a broken configuration leaves the
//! old table in service.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use support::{ConfigDir, Host, client, get, send};

fn entry(wasm: &str) -> String {
    format!(
        "[[applications]]\nname = \"main\"\nfile_path = {wasm:?}\nmethod = \"ANY\"\nurl_path = \"/main\"\n"
    )
}

/// Replaces the configuration in one step, as an editor or a deploy does.
fn rewrite(config: &Path, text: &str) {
    let temporary = config.with_extension("new");
    std::fs::write(&temporary, text).unwrap();
    std::fs::rename(&temporary, config).unwrap();
}

/// A client requesting `/main` in a loop until stopped; counts answers that
/// are not 200.
struct SteadyClient {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl SteadyClient {
    fn start(url: String) -> SteadyClient {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn({
            let (stop, sent, failed) = (stop.clone(), sent.clone(), failed.clone());
            async move {
                let client = client();
                while !stop.load(Ordering::SeqCst) {
                    let reply = send(&client, "GET", &url, &[], "").await;
                    sent.fetch_add(1, Ordering::SeqCst);
                    if reply.status != 200 {
                        failed.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
        });
        SteadyClient {
            stop,
            sent,
            failed,
            task,
        }
    }

    /// Waits until the client has had `more` answers after the ones it had
    /// when called: the sign that it is sending through the current table.
    async fn wait_for_answers(&self, more: u64) {
        let wanted = self.sent.load(Ordering::SeqCst) + more;
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.sent.load(Ordering::SeqCst) < wanted {
            assert!(
                Instant::now() < deadline,
                "the client did not get {more} answers"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn finish(self) -> (u64, u64) {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.unwrap();
        (
            self.sent.load(Ordering::SeqCst),
            self.failed.load(Ordering::SeqCst),
        )
    }
}

async fn wait_for_body(host: &Host, wanted: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if get(&host.url("/main")).await.text() == wanted {
            return;
        }
        assert!(Instant::now() < deadline, "never served {wanted:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_swaps_the_route_table_under_load_without_errors() {
    let dir = ConfigDir::new(&entry(guest_artifacts::HELLO_PATH));
    let config = dir.path();
    let host = Host::start(Some(&config), &[]);
    assert_eq!(get(&host.url("/main")).await.text(), "Hello, world!\n");

    let steady = SteadyClient::start(host.url("/main"));
    steady.wait_for_answers(10).await;
    rewrite(&config, &entry(guest_artifacts::ENV_PATH));
    host.signal(libc::SIGHUP);
    wait_for_body(&host, "").await;
    host.wait_for_log(&["reload (SIGHUP): now serving 1 routes", "changed ANY /main"]);

    // A broken configuration is rejected; the env app stays in service.
    rewrite(
        &config,
        "[[applications]]\nname = \"main\"\nfile_path = 42\n",
    );
    host.signal(libc::SIGHUP);
    let line = host.wait_for_log(&["reload (SIGHUP) failed; the previous routes stay in service"]);
    assert!(line.contains(":3:"), "the error names the line: {line}");
    // And so is a configuration whose component does not load.
    rewrite(&config, &entry("/no/such/component.wasm"));
    host.signal(libc::SIGHUP);
    host.wait_for_log(&[
        "failed; the previous routes stay in service",
        "/no/such/component.wasm",
    ]);
    // The old table keeps serving after the failed reloads.
    steady.wait_for_answers(10).await;

    let (sent, failed) = steady.finish().await;
    assert!(sent > 20, "the client kept sending: {sent}");
    assert_eq!(
        failed, 0,
        "{failed} of {sent} requests failed during reloads"
    );
    let ready = get(&format!("http://{}/readyz", host.admin.unwrap())).await;
    assert_eq!(ready.status, 200, "still ready after a failed reload");
    let routes = get(&format!("http://{}/routes", host.admin.unwrap()))
        .await
        .text();
    assert!(
        routes.contains("env.wasm"),
        "/routes shows the live table: {routes}"
    );
}

#[tokio::test]
async fn watch_reloads_when_the_configuration_changes() {
    let dir = ConfigDir::new(&entry(guest_artifacts::HELLO_PATH));
    let config = dir.path();
    let host = Host::start(Some(&config), &["--watch"]);
    assert_eq!(get(&host.url("/main")).await.text(), "Hello, world!\n");
    let before = std::fs::metadata(&config).unwrap().modified().unwrap();
    rewrite(
        &config,
        &format!(
            "{}\n[[applications]]\nname = \"second\"\nfile_path = {:?}\nmethod = \"GET\"\nurl_path = \"/second\"\n",
            entry(guest_artifacts::HELLO_PATH),
            guest_artifacts::HELLO_PATH
        ),
    );
    // Modification times have a coarse grain on some file systems: the
    // rewrite could keep the time the host saw. Move it on explicitly
    // instead of waiting for the clock.
    std::fs::File::options()
        .write(true)
        .open(&config)
        .unwrap()
        .set_modified(before + Duration::from_secs(2))
        .unwrap();
    host.wait_for_log(&[
        "reload (a watched file changed): now serving 2 routes",
        "added GET",
    ]);
    assert_eq!(get(&host.url("/second")).await.status, 200);
}

#[tokio::test]
async fn sighup_without_a_configuration_file_is_logged_not_fatal() {
    let host = Host::start(None, &[]);
    host.signal(libc::SIGHUP);
    host.wait_for_log(&["SIGHUP: the bundled samples have no configuration file to reload"]);
    assert_eq!(get(&host.url("/hello")).await.status, 200);
}
