;; legacy-two-memories.wasm, assembled (tests/bad_configs.rs checks that the two agree).
(module
  (import "env" "memory" (memory 1))
  (import "env" "memory" (memory 1))
  (func (export "handle")))
