;; legacy-handle-with-params.wasm, assembled (tests/bad_configs.rs checks that the two agree).
(module
  (func (export "handle") (param i32)))
