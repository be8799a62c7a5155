//! `loadgen routes`: what the number of routes costs. Hosts with 1, 100,
//! 1000 and 10,000 routes (distinct paths `/rN/hello`, all the same hello
//! component file, so it is compiled once) are measured for startup to the
//! last route's first response (with a filled compile cache; an empty one
//! for the first start of 1 route), resident memory idle after start and
//! after load, and requests/s at concurrency 32 hitting one route and
//! hitting random routes (wrk with a Lua script picking each path).

use std::fmt::Write as _;
use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;

use crate::report::{Target, machine, mib, targets_section, write_keeping_findings};
use crate::servers::{Launch, Logging, Running, launch, version_of};
use crate::wrk::{self, Figures, Load, median};

/// Connections of the throughput runs.
const CONNECTIONS: u32 = 32;

/// The idle memory the largest configuration may hold.
const IDLE_RSS_TARGET: u64 = 64 << 20;

/// The warm startup the largest configuration may take.
const STARTUP_TARGET: Duration = Duration::from_secs(1);

/// How many routes, how long and how often.
pub struct Plan {
    /// The route counts, smallest first.
    pub counts: Vec<usize>,
    /// Rounds of every configuration taking its turn.
    pub rounds: usize,
    /// Seconds of load per run.
    pub seconds: u64,
}

/// A configuration of `routes` apps at `/r0/hello` ... all serving
/// `component`.
fn config(routes: usize, component: &str) -> String {
    let mut text = String::with_capacity(routes * 110);
    for index in 0..routes {
        text.push_str(&format!(
            "[[applications]]\nname = \"r{index}\"\nfile_path = {component:?}\nmethod = \"GET\"\nurl_path = \"/r{index}/hello\"\n\n"
        ));
    }
    text
}

/// A wrk script that sends each request to one of `routes` routes at
/// random.
fn random_routes_script(routes: usize) -> String {
    format!(
        "-- Each request to one of {routes} routes, at random.\nlocal routes = {routes}\nrequest = function()\n  return wrk.format(\"GET\", \"/r\" .. math.random(0, routes - 1) .. \"/hello\")\nend\n"
    )
}

/// The path of the last route, which answers once every route is loaded.
fn last_route(routes: usize) -> String {
    format!("/r{}/hello", routes.saturating_sub(1))
}

/// Starts the host with `config` and `cache` and waits for the last
/// route to answer.
fn start_host(host: &Path, config: &str, routes: usize, cache: &Path) -> anyhow::Result<Running> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("serverless.toml");
    std::fs::write(&path, config).with_context(|| format!("cannot write {}", path.display()))?;
    let address = TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let line = vec![
        host.display().to_string(),
        "serve".to_owned(),
        path.display().to_string(),
        "--listen".to_owned(),
        address.to_string(),
        "--admin-listen".to_owned(),
        "off".to_owned(),
        format!("--cache-dir={}", cache.display()),
    ];
    launch(Launch {
        line,
        dir,
        address,
        logging: Logging::Default,
        ready_path: last_route(routes),
        label: format!("host serve with {routes} routes"),
    })
}

/// What one configuration measured over the rounds.
#[derive(Default)]
struct Measured {
    /// Warm start to the last route's first response, seconds, per round.
    startups: Vec<f64>,
    /// RSS one second after start, per round.
    idle_rss: Vec<f64>,
    /// RSS after the random-route load, largest over the rounds.
    loaded_rss: u64,
    one_route: Figures,
    random_routes: Figures,
}

impl Measured {
    fn startup(&self) -> Duration {
        Duration::from_secs_f64(median(&mut self.startups.clone()))
    }

    fn idle_rss(&self) -> u64 {
        median(&mut self.idle_rss.clone()) as u64
    }
}

/// The routes targets (issue 23, item 4), for the largest configuration
/// against the smallest. Each load is held to the same load on the
/// smallest configuration: the random-route script costs wrk time of its
/// own, which a one-route run does not pay.
fn targets(counts: &[usize], measured: &[Measured]) -> Vec<Target> {
    let (Some(&fewest), Some(&most)) = (counts.first(), counts.last()) else {
        return Vec::new();
    };
    let (first, last) = (&measured[0], &measured[measured.len() - 1]);
    let mut targets = Vec::new();
    for (name, figures, base) in [
        ("one route", &last.one_route, &first.one_route),
        ("random routes", &last.random_routes, &first.random_routes),
    ] {
        let base = base.per_second().max(1e-9);
        let share = figures.per_second() / base;
        targets.push(Target::new(
            share >= 0.95,
            format!(
                "{most} routes, {name}: {:.0} req/s, {:.1}% of {fewest} route's {base:.0} with the same load (target within 5%)",
                figures.per_second(),
                share * 100.0
            ),
        ));
    }
    targets.push(Target::new(
        last.startup() < STARTUP_TARGET,
        format!(
            "{most} routes, warm startup: {:.0} ms (target under {} ms)",
            last.startup().as_secs_f64() * 1e3,
            STARTUP_TARGET.as_millis()
        ),
    ));
    targets.push(Target::new(
        last.idle_rss() < IDLE_RSS_TARGET,
        format!(
            "{most} routes, idle RSS: {} (target under {})",
            mib(last.idle_rss()),
            mib(IDLE_RSS_TARGET)
        ),
    ));
    targets
}

/// Runs the routes suite and writes its report to `out`.
pub fn routes(host: &Path, plan: &Plan, out: &Path) -> anyhow::Result<()> {
    let component = guest_artifacts::HELLO_PATH;
    let files = tempfile::tempdir()?;
    let mut configs = Vec::new();
    for &routes in &plan.counts {
        let script = files.path().join(format!("random-{routes}.lua"));
        std::fs::write(&script, random_routes_script(routes))?;
        configs.push((routes, config(routes, component), script));
    }
    let cache = tempfile::tempdir()?;
    let fewest = plan.counts.first().copied().unwrap_or(1);
    eprintln!("cold start: {fewest} routes, empty compile cache");
    let cold = start_host(host, &config(fewest, component), fewest, cache.path())?.ready_after;

    let mut measured: Vec<Measured> = plan.counts.iter().map(|_| Measured::default()).collect();
    for round in 1..=plan.rounds {
        for ((routes, config, script), measured) in configs.iter().zip(&mut measured) {
            eprintln!("round {round}/{}: {routes} routes", plan.rounds);
            let running = start_host(host, config, *routes, cache.path())?;
            measured.startups.push(running.ready_after.as_secs_f64());
            std::thread::sleep(Duration::from_secs(1));
            measured.idle_rss.push(running.rss() as f64);
            let address = running.address;
            let load = |script, seconds| Load {
                address,
                path: "/r0/hello",
                connections: CONNECTIONS,
                seconds,
                script,
            };
            wrk::run(&load(None, 2))?; // warm-up
            measured
                .one_route
                .samples
                .push(wrk::measure(&running, &load(None, plan.seconds))?);
            wrk::run(&load(Some(script.as_path()), 2))?; // warm-up
            measured.random_routes.samples.push(wrk::measure(
                &running,
                &load(Some(script.as_path()), plan.seconds),
            )?);
            measured.loaded_rss = measured.loaded_rss.max(running.rss());
        }
    }

    let mut text = String::new();
    writeln!(
        text,
        "# Routes: from 1 to {} routes\n",
        plan.counts.last().copied().unwrap_or(1)
    )?;
    text.push_str(&machine());
    writeln!(text, "- versions: {}; {}", version_of(host), wrk::version())?;
    writeln!(
        text,
        "- configurations: N apps at `GET /rI/hello` (I = 0 .. N-1), every one the same hello component file (guests/rust/hello), so it is compiled and cached once; the host runs its default configuration (`RUST_LOG` unset), `RUST_BACKTRACE` unset"
    )?;
    writeln!(
        text,
        "- startup: from spawning `host serve` to the first `200` of the last route, `/rN-1/hello`, with a filled compile cache (`--cache-dir`), median over the rounds; cold (empty cache, {fewest} route): {:.0} ms",
        cold.as_secs_f64() * 1e3
    )?;
    writeln!(
        text,
        "- RSS idle: `VmRSS` one second after the first response, median over the rounds; after load: after the random-route run, largest over the rounds"
    )?;
    writeln!(
        text,
        "- load: `taskset -c 0 wrk -t1 -c{CONNECTIONS} -d{}s --latency`, one route: `/r0/hello`; random routes: a Lua script picking `/rI/hello` with I uniform at random for every request; each after 2 s of warm-up; median over the rounds; each load is compared with the same load on the fewest routes (there the script always picks `/r0/hello`, so the script's own cost in wrk is in both figures)",
        plan.seconds
    )?;
    writeln!(
        text,
        "- rounds: {}, the configurations taking turns, each host started afresh",
        plan.rounds
    )?;
    writeln!(
        text,
        "- command: `just bench-routes` (= `loadgen routes --rounds {} --seconds {} --counts {} --out {}`)\n",
        plan.rounds,
        plan.seconds,
        plan.counts
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(","),
        out.display()
    )?;
    writeln!(
        text,
        "| routes | warm startup | RSS idle | RSS after load | one route req/s | p50 | p99 | random routes req/s | p50 | p99 | one route vs {fewest} | random vs {fewest} |"
    )?;
    writeln!(text, "|---|---|---|---|---|---|---|---|---|---|---|---|")?;
    let base = |load: fn(&Measured) -> &Figures| {
        measured
            .first()
            .map_or(1.0, |m| load(m).per_second())
            .max(1e-9)
    };
    let (one_base, random_base) = (base(|m| &m.one_route), base(|m| &m.random_routes));
    for (routes, figures) in plan.counts.iter().zip(&measured) {
        writeln!(
            text,
            "| {routes} | {:.0} ms | {} | {} | {:.0} | {} | {} | {:.0} | {} | {} | {:.0}% | {:.0}% |",
            figures.startup().as_secs_f64() * 1e3,
            mib(figures.idle_rss()),
            mib(figures.loaded_rss),
            figures.one_route.per_second(),
            micros(figures.one_route.p50()),
            micros(figures.one_route.p99()),
            figures.random_routes.per_second(),
            micros(figures.random_routes.p50()),
            micros(figures.random_routes.p99()),
            100.0 * figures.one_route.per_second() / one_base,
            100.0 * figures.random_routes.per_second() / random_base,
        )?;
    }
    writeln!(text)?;
    text.push_str(&targets_section(&targets(&plan.counts, &measured)));
    write_keeping_findings(out, text)
}

fn micros(duration: Duration) -> String {
    format!("{:.0} µs", duration.as_secs_f64() * 1e6)
}

/// Parses `--counts 1,100,1000`: at least one, each at least 1, rising.
pub fn parse_counts(text: &str) -> anyhow::Result<Vec<usize>> {
    let counts = text
        .split(',')
        .map(|count| {
            count
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|&n| n >= 1)
                .with_context(|| format!("{count:?}: expected a number of routes, at least 1"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    anyhow::ensure!(
        counts.windows(2).all(|pair| pair[0] < pair[1]),
        "{text}: give the route counts rising, such as 1,100,1000,10000"
    );
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wrk::Sample;

    #[test]
    fn the_config_has_one_app_per_route_sharing_one_file() {
        let text = config(3, "/c/hello.wasm");
        assert_eq!(text.matches("[[applications]]").count(), 3);
        assert_eq!(text.matches("file_path = \"/c/hello.wasm\"").count(), 3);
        for index in 0..3 {
            assert!(
                text.contains(&format!("url_path = \"/r{index}/hello\"")),
                "{text}"
            );
            assert!(text.contains(&format!("name = \"r{index}\"")), "{text}");
        }
        assert_eq!(last_route(3), "/r2/hello");
        assert_eq!(last_route(1), "/r0/hello");
    }

    #[test]
    fn the_script_picks_among_every_route() {
        let script = random_routes_script(10_000);
        assert!(script.contains("local routes = 10000"), "{script}");
        assert!(script.contains("math.random(0, routes - 1)"), "{script}");
    }

    #[test]
    fn counts_parse_rising_and_positive() {
        assert_eq!(
            parse_counts("1,100,1000,10000").unwrap(),
            [1, 100, 1000, 10_000]
        );
        assert_eq!(parse_counts("5").unwrap(), [5]);
        assert!(parse_counts("100,1").is_err());
        assert!(parse_counts("0,1").is_err());
        assert!(parse_counts("1,x").is_err());
    }

    fn measured(one: f64, random: f64, startup: f64, idle: f64) -> Measured {
        let figures = |per_second| Figures {
            samples: vec![Sample {
                per_second,
                ..Sample::default()
            }],
            peak_rss: 0,
        };
        Measured {
            startups: vec![startup],
            idle_rss: vec![idle],
            loaded_rss: 0,
            one_route: figures(one),
            random_routes: figures(random),
        }
    }

    #[test]
    fn targets_hold_the_largest_configuration_to_the_smallest() {
        let measured = [
            measured(40_000.0, 38_000.0, 0.01, 14e6),
            measured(39_000.0, 34_200.0, 1.2, 30e6),
        ];
        let targets = targets(&[1, 10_000], &measured);
        let met: Vec<bool> = targets.iter().map(|t| t.met).collect();
        assert_eq!(met, [true, false, false, true], "{targets:?}");
        assert_eq!(
            targets[1].text,
            "10000 routes, random routes: 34200 req/s, 90.0% of 1 route's 38000 with the same load (target within 5%)"
        );
        assert_eq!(
            targets[2].text,
            "10000 routes, warm startup: 1200 ms (target under 1000 ms)"
        );
        assert!(super::targets(&[], &[]).is_empty());
    }
}
