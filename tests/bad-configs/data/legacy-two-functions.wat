;; legacy-two-functions.wasm, assembled (tests/bad_configs.rs checks that the two agree).
(module
  (memory (export "memory") 1)
  (func (export "hello"))
  (func (export "bonjour")))
