;; component.wasm, assembled (tests/bad_configs.rs checks that the two agree).
(component)
