;; legacy-no-memory.wasm, assembled (tests/bad_configs.rs checks that the two agree).
(module
  (import "env" "log" (func (param i32 i64)))
  (func (export "handle")))
