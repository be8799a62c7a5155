//! A catalog killed with SIGKILL at any point opens again with every app
//! at its old or its new version, never between: a child process deploys
//! and promotes in a loop and is killed at random moments; after each kill
//! the catalog is opened and checked.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serverless_catalog::StateDir;
use serverless_catalog::apps::Deploy;
use serverless_catalog::audit::Actor;

/// Set in the child: the state directory it writes to.
const WRITER: &str = "CATALOG_CRASH_WRITER";

/// The child's loop: deploy a new component, sometimes active, sometimes
/// promoted afterwards, until killed.
#[test]
fn writer() {
    let Some(dir) = std::env::var_os(WRITER) else {
        return;
    };
    let mut state = StateDir::open(Path::new(&dir)).unwrap();
    let actor = Actor::local();
    for round in 0u64.. {
        let digest = state.blobs().put(&component(round)).unwrap();
        let spec = format!("round {round}");
        let number = state
            .deploy(
                &Deploy {
                    namespace: "default",
                    app: "crash",
                    digest: &digest,
                    spec: &spec,
                    routes: &["GET /crash".to_owned()],
                    activate: round % 2 == 0,
                    keep: 4,
                },
                &actor,
            )
            .unwrap();
        if round % 3 == 0 {
            state.promote("default", "crash", number, &actor).unwrap();
        }
    }
}

/// Round `round`'s component: 1 MiB, so that a kill often lands while it
/// is being written.
fn component(round: u64) -> Vec<u8> {
    let mut bytes = format!("\0asm round {round} ").into_bytes();
    bytes.resize(1 << 20, (round % 251) as u8);
    bytes
}

/// Opens the catalog and checks it: the active version is one the app
/// has, each version's component is stored whole, and the audit log has
/// one record per change that is there.
fn check(dir: &Path) -> usize {
    let state = StateDir::open(dir).expect("the catalog opens after a kill");
    let Ok(app) = state.app("default", "crash") else {
        return 0;
    };
    if let Some(active) = app.active {
        assert!(
            app.versions.iter().any(|v| v.number == active),
            "the active version {active} is not one of {:?}",
            app.versions
        );
    }
    for version in &app.versions {
        let bytes = state
            .blobs()
            .get(&version.digest)
            .expect("the component is stored whole");
        let round: u64 = version.spec["round ".len()..].parse().unwrap();
        assert!(
            bytes == component(round),
            "version {} holds another component",
            version.number
        );
    }
    let numbers: Vec<i64> = app.versions.iter().map(|v| v.number).collect();
    let newest = *numbers.last().unwrap();
    let deploys = state
        .audit_log(u32::MAX)
        .unwrap()
        .iter()
        .filter(|record| record.action.starts_with("app.deploy"))
        .count();
    assert_eq!(deploys as i64, newest, "one deploy record per version made");
    numbers.len()
}

#[test]
fn a_catalog_killed_at_any_point_opens_whole() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut seen_versions = 0;
    for kill in 0..12u64 {
        let mut child = Command::new(&exe)
            .args(["--exact", "writer", "--nocapture", "--test-threads", "1"])
            .env(WRITER, dir.path())
            .spawn()
            .unwrap();
        // Killed after a different time each round, mid-write as likely
        // as not.
        std::thread::sleep(Duration::from_millis(150 + kill * 53));
        child.kill().unwrap();
        child.wait().unwrap();
        seen_versions = seen_versions.max(check(dir.path()));
    }
    assert!(seen_versions > 0, "the writer never deployed anything");
}
