;; echo.wat: a hostile guest that tries to leak secrets both ways. It logs
;; its whole input (1 KiB per line), writes it to stdout, and emits a
;; token it carries itself (the 26 bytes at 64, as a plugin built with a
;; leaked credential would): printed by _initialize, logged, and quoted in
;; every reason. Status 500 then traps, so the stdout tail lands in the
;; fault message and lastError; any other status answers
;; {"class":"transient","reason":"<token> <input from "headers" on, with
;; quotes and backslashes turned into '>"}.
;;
;; ABI errclass v1 test fixture. Memory: needles and the token at 0-511,
;; the iovec at 256, the output at 1024 (up to 4 KiB), the input buffer
;; at 65536 (up to 64 KiB). Rebuild with scripts/build-wasm-fixtures
;; (needs wabt's wat2wasm).
(module
  (import "env" "errclass_log" (func $log (param i32 i32 i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 3)
  (data (i32.const 0) "\"status\":500")
  (data (i32.const 16) "\"headers\":")
  (data (i32.const 64) "hardcoded-7f3a9c1e5b2d4086")
  (data (i32.const 1024) "{\"class\":\"transient\",\"reason\":\"")
  (func (export "errclass_abi_v1"))
  (func (export "errclass_alloc") (param $n i32) (result i32)
    (if (i32.gt_u (local.get $n) (i32.const 65536)) (then (return (i32.const 0))))
    (i32.const 65536))
  ;; $write writes [$p, $p+$n) to stdout.
  (func $write (param $p i32) (param $n i32)
    (i32.store (i32.const 256) (local.get $p))
    (i32.store (i32.const 260) (local.get $n))
    (drop (call $fd_write (i32.const 1) (i32.const 256) (i32.const 1) (i32.const 264))))
  (func (export "_initialize")
    (call $write (i32.const 64) (i32.const 26)))
  ;; $find returns the offset of needle [$nd, $nd+$nl) in [$h, $h+$hl), or -1.
  (func $find (param $h i32) (param $hl i32) (param $nd i32) (param $nl i32) (result i32)
    (local $i i32) (local $j i32) (local $end i32)
    (if (i32.lt_u (local.get $hl) (local.get $nl)) (then (return (i32.const -1))))
    (local.set $end (i32.add (local.get $h) (i32.sub (local.get $hl) (local.get $nl))))
    (local.set $i (local.get $h))
    (block $done
      (loop $outer
        (br_if $done (i32.gt_u (local.get $i) (local.get $end)))
        (local.set $j (i32.const 0))
        (block $mismatch
          (loop $inner
            (if (i32.eq (local.get $j) (local.get $nl))
              (then (return (i32.sub (local.get $i) (local.get $h)))))
            (br_if $mismatch (i32.ne
              (i32.load8_u (i32.add (local.get $i) (local.get $j)))
              (i32.load8_u (i32.add (local.get $nd) (local.get $j)))))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $inner)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $outer)))
    (i32.const -1))
  (func (export "errclass_classify") (param $p i32) (param $n i32) (result i64)
    (local $off i32) (local $o i32) (local $c i32) (local $end i32)
    ;; Log the whole input, 1 KiB a line (the host allows 4 KiB a call),
    ;; then the token.
    (local.set $off (i32.const 0))
    (block $logged
      (loop $chunks
        (br_if $logged (i32.ge_u (local.get $off) (local.get $n)))
        (call $log (i32.const 2) (i32.add (local.get $p) (local.get $off))
          (select (i32.const 1024) (i32.sub (local.get $n) (local.get $off))
            (i32.gt_u (i32.sub (local.get $n) (local.get $off)) (i32.const 1024))))
        (local.set $off (i32.add (local.get $off) (i32.const 1024)))
        (br $chunks)))
    (call $log (i32.const 3) (i32.const 64) (i32.const 26))
    ;; Echo the input and the token to stdout.
    (call $write (local.get $p) (local.get $n))
    (call $write (i32.const 64) (i32.const 26))
    (if (i32.ge_s (call $find (local.get $p) (local.get $n) (i32.const 0) (i32.const 12)) (i32.const 0))
      (then unreachable))
    ;; Build the reason: prefix (31 bytes at 1024), token, a space, then
    ;; the input from "headers" on (up to 3 KiB), quotes and backslashes
    ;; replaced.
    (memory.copy (i32.const 1055) (i32.const 64) (i32.const 26))
    (i32.store8 (i32.const 1081) (i32.const 32))
    (local.set $o (i32.const 1082))
    (local.set $off (call $find (local.get $p) (local.get $n) (i32.const 16) (i32.const 10)))
    (if (i32.lt_s (local.get $off) (i32.const 0)) (then (local.set $off (i32.const 0))))
    (local.set $off (i32.add (local.get $p) (local.get $off)))
    (local.set $end (i32.add (local.get $p) (local.get $n)))
    (if (i32.gt_u (i32.sub (local.get $end) (local.get $off)) (i32.const 3072))
      (then (local.set $end (i32.add (local.get $off) (i32.const 3072)))))
    (block $copied
      (loop $copy
        (br_if $copied (i32.ge_u (local.get $off) (local.get $end)))
        (local.set $c (i32.load8_u (local.get $off)))
        (if (i32.or (i32.eq (local.get $c) (i32.const 34)) (i32.eq (local.get $c) (i32.const 92)))
          (then (local.set $c (i32.const 39))))
        (i32.store8 (local.get $o) (local.get $c))
        (local.set $o (i32.add (local.get $o) (i32.const 1)))
        (local.set $off (i32.add (local.get $off) (i32.const 1)))
        (br $copy)))
    (i32.store8 (local.get $o) (i32.const 34))
    (i32.store8 (i32.add (local.get $o) (i32.const 1)) (i32.const 125))
    (i64.or (i64.shl (i64.const 1024) (i64.const 32))
      (i64.extend_i32_u (i32.sub (i32.add (local.get $o) (i32.const 2)) (i32.const 1024)))))
)
