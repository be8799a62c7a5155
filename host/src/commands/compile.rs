//! `host compile`: every component of a configuration into the compile
//! cache, so that `host serve` starts without compiling.

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

/// Runs `host compile`: every distinct component of the configuration into
/// the compile cache, each checked against its world as `host serve` checks
/// it at startup.
pub(crate) fn run(args: CompileArgs) -> anyhow::Result<()> {
    let (config, _sample_site) = load_config(args.config.as_deref())?;
    let runtime = prepare_runtime(&config, 1, &args.cache)?;
    let mut seen = std::collections::HashSet::new();
    for (_, _, app) in config.routes.routes() {
        if !seen.insert(app.component.to_string()) {
            continue;
        }
        let started = Instant::now();
        let outcome = runtime
            .precompile(&app.component, app.world)
            .map_err(|problem| {
                anyhow::anyhow!("app `{}` ({}): {problem}", app.name, app.component)
            })?;
        println!(
            "{}: {outcome} ({} ms)",
            app.component,
            started.elapsed().as_millis()
        );
    }
    println!("{} components ready", seen.len());
    Ok(())
}
