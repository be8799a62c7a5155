;; A legacy-ABI module written by hand: the smallest thing the host runs.
;;
;; It imports its memory instead of exporting one, keeps every string in a
;; data segment, and exports `hello` and `bonjour` but no `handle`, so a
;; route must name its entry point with the app's `function` key.
;;
;; Sizes in this ABI are i64 while pointers are i32 (wasm32 addresses).
(module
  ;; One page (64 KiB) is plenty: the strings below fit in 128 bytes.
  (import "env" "memory" (memory 1))

  ;; log(ptr, size)
  (import "env" "log" (func $log (param i32 i64)))
  ;; response_set_status_line(status, reason_ptr, reason_size)
  (import "env" "response_set_status_line" (func $set_status (param i32 i32 i64)))
  ;; response_set_header(name_ptr, name_size, value_ptr, value_size)
  (import "env" "response_set_header" (func $set_header (param i32 i64 i32 i64)))
  ;; response_set_body(ptr, size)
  (import "env" "response_set_body" (func $set_body (param i32 i64)))

  ;; The strings, each at its own 16-byte-aligned offset. The lengths in
  ;; the code below must match the text here.
  (data (i32.const 0) "OK")                  ;; 2 bytes
  (data (i32.const 16) "Content-Type")       ;; 12 bytes
  (data (i32.const 32) "text/plain")         ;; 10 bytes
  (data (i32.const 48) "Hello from WAT!\n")  ;; 16 bytes
  (data (i32.const 64) "Bonjour de WAT !\n") ;; 17 bytes
  (data (i32.const 96) "wat hello")          ;; 9 bytes
  (data (i32.const 112) "wat bonjour")       ;; 11 bytes

  ;; 200 OK, a plain-text content type, and the body at $ptr/$size.
  (func $respond (param $ptr i32) (param $size i64)
    (call $set_status (i32.const 200) (i32.const 0) (i64.const 2))
    (call $set_header
      (i32.const 16) (i64.const 12)
      (i32.const 32) (i64.const 10))
    (call $set_body (local.get $ptr) (local.get $size)))

  ;; Logs "wat hello" and answers "Hello from WAT!".
  (func (export "hello")
    (call $log (i32.const 96) (i64.const 9))
    (call $respond (i32.const 48) (i64.const 16)))

  ;; Logs "wat bonjour" and answers "Bonjour de WAT !".
  (func (export "bonjour")
    (call $log (i32.const 112) (i64.const 11))
    (call $respond (i32.const 64) (i64.const 17))))
