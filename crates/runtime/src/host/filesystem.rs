//! `wasi:filesystem/types`: wasmtime-wasi's implementation, but for
//! `symlink-at`, which refuses a link whose target could lead out of the
//! mounted folder.
//!
//! wasmtime-wasi keeps the guest inside its mounts by resolving every path
//! it opens within the mount (through cap-std), symlinks included, so a
//! link pointing out does not let the guest itself out. But it creates any
//! relative link the guest asks for (cap-std refuses only absolute
//! targets), and on the host the link is an ordinary one: the operator, a
//! backup, a web server or another program serving the folder would follow
//! it out of the mount. So the target is checked lexically before the link
//! is made: it must be relative and without `..`.
//!
//! Forbidding every `..`, rather than only one that climbs above the
//! mount's root from the link's place, is what makes a lexical check
//! sound: the place of a link is not what its path says when a directory
//! on the path is itself a link (`b -> .` makes `a/b/l` the link `a/l`,
//! so a target `../../x` written for `a/b/l` leads out from `a/l`), and a
//! link can be renamed to another directory after it was made. A target
//! that only goes down stays inside from wherever it is.
//!
//! The function is defined over wasmtime-wasi's own in the linker (the
//! linker lets a later definition shadow an earlier one), and calls
//! wasmtime-wasi's implementation once the target is allowed.

use tracing::Level;
use wasmtime::component::{Linker, Resource};
use wasmtime_wasi::filesystem::{Descriptor, WasiFilesystemView};
use wasmtime_wasi::p2::bindings::filesystem::types::{ErrorCode, HostDescriptor};

use crate::state::InstanceState;

/// The interface wasmtime-wasi implements, in the version its linker
/// functions are defined under (components importing older 0.2 versions
/// are linked to it).
const FILESYSTEM_TYPES: &str = "wasi:filesystem/types@0.2.12";

/// Whether a symlink whose target is `target` stays inside the folder it
/// is made in, wherever in it it is or is moved: a relative path without
/// `..`.
fn stays_inside(target: &str) -> bool {
    !target.starts_with('/') && !target.split('/').any(|component| component == "..")
}

/// Replaces wasmtime-wasi's `[method]descriptor.symlink-at` in `linker`,
/// which must already hold wasmtime-wasi's filesystem interfaces.
pub(crate) fn add_symlink_check(linker: &mut Linker<InstanceState>) -> wasmtime::Result<()> {
    super::shadowing(linker, define)
}

fn define(linker: &mut Linker<InstanceState>) -> wasmtime::Result<()> {
    linker.instance(FILESYSTEM_TYPES)?.func_wrap_async(
        "[method]descriptor.symlink-at",
        |mut store, (descriptor, target, link): (Resource<Descriptor>, String, String)| {
            Box::new(async move {
                let state = store.data_mut();
                if !stays_inside(&target) {
                    state.output.host_note(
                        Level::WARN,
                        "wasi-filesystem",
                        &format!(
                            "refused to create the symlink {link:?} to {target:?}: a symlink's \
                             target must be a relative path without `..`, so that it cannot lead \
                             out of the mounted folder"
                        ),
                    );
                    return Ok((Err(ErrorCode::NotPermitted),));
                }
                let mut filesystem = state.filesystem();
                let made =
                    HostDescriptor::symlink_at(&mut filesystem, descriptor, target, link).await;
                Ok((match made {
                    Ok(()) => Ok(()),
                    Err(error) => Err(error.downcast()?),
                },))
            })
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_relative_targets_that_go_down_are_allowed() {
        for allowed in [
            "file.txt",
            "docs/guide.txt",
            "./a",
            "a/./b",
            ".",
            "a..b",
            "...",
        ] {
            assert!(stays_inside(allowed), "{allowed}");
        }
        for refused in [
            "/etc/passwd",
            "/",
            "..",
            "../x",
            "a/../b",
            "a/..",
            "a/b/../../..",
        ] {
            assert!(!stays_inside(refused), "{refused}");
        }
    }
}
