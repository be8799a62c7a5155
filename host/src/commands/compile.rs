//! `host compile`: every component and core module of a configuration
//! into the compile cache, so that `host serve` starts without compiling.

use std::path::PathBuf;
use std::time::Instant;

use super::common::{CacheArgs, load_config, prepare_runtime};

/// Arguments of `host compile`.
#[derive(clap::Args)]
pub(crate) struct CompileArgs {
    /// The TOML file whose components to compile. Without it, the bundled
    /// samples are compiled.
    pub(crate) config: Option<PathBuf>,

    #[command(flatten)]
    pub(crate) cache: CacheArgs,
}

/// Runs `host compile`: every distinct component or core module of the
/// configuration into the compile cache, each app checked as `host serve`
/// checks it at startup.
pub(crate) fn run(args: CompileArgs) -> anyhow::Result<()> {
    let (config, _sample_site) = load_config(args.config.as_deref())?;
    let runtime = prepare_runtime(&config, 1, &args.cache)?;
    let mut seen = std::collections::HashSet::new();
    // Every app is checked (a core module against its `function` and
    // `max_memory`); each file is compiled once, the cache serving the
    // apps that share it.
    for app in config.apps() {
        let started = Instant::now();
        let outcome = runtime.precompile(app)?;
        if seen.insert(app.component.to_string()) {
            println!(
                "{}: {outcome} ({} ms)",
                app.component,
                started.elapsed().as_millis()
            );
        }
    }
    println!("{} files ready", seen.len());
    Ok(())
}
