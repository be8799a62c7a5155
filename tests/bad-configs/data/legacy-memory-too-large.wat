;; legacy-memory-too-large.wasm, assembled (tests/bad_configs.rs checks that the two agree).
(module
  (import "env" "memory" (memory 18))
  (func (export "handle")))
