;; legacy-import-type.wasm, assembled (tests/bad_configs.rs checks that the two agree).
(module
  (import "env" "log" (func (param i32 i32)))
  (memory (export "memory") 1)
  (func (export "handle")))
