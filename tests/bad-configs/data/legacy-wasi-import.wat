;; legacy-wasi-import.wasm, assembled (tests/bad_configs.rs checks that the two agree).
(module
  (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
  (func (export "handle")))
