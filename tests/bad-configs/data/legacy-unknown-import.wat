;; legacy-unknown-import.wasm, assembled (tests/bad_configs.rs checks that the two agree).
(module
  (import "env" "sleep" (func))
  (func (export "handle")))
