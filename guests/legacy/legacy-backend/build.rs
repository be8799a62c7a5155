//! Links the module to import its memory as `env.memory` instead of
//! exporting one, as the original serverless-wasm samples did, so that the
//! host's support for an imported memory is exercised.

fn main() {
    // Only WebAssembly's linker knows these flags; a host-target check of
    // the workspace must still link.
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("wasm32") {
        println!("cargo:rustc-link-arg-cdylib=--import-memory");
        // 18 pages of 64 KiB, the minimum the original samples asked for;
        // rustc's 1 MiB stack takes 16 of them.
        println!("cargo:rustc-link-arg-cdylib=--initial-memory=1179648");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
