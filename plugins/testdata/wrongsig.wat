;; wrongsig.wat: exports errclass_classify returning i32 instead of i64.
;;
;; ABI errclass v1 test fixture. Memory: the needles live at 0-511, the
;; verdict at 512, the input buffer at 8192 (up to 120 KiB).
;; Rebuild with scripts/build-wasm-fixtures (needs wabt's wat2wasm).
(module
  (import "env" "errclass_log" (func $log (param i32 i32 i32)))
  (memory (export "memory") 2)
  (data (i32.const 0) "\"status\":403")
  (data (i32.const 16) "\"status\":418")
  (data (i32.const 32) "\"status\":500")
  (data (i32.const 64) "teapot\0a\1b[31m line")
  (data (i32.const 512) "{\"class\":\"invalid_grant\",\"retryAfterMs\":1500,\"reason\":\"wat fixture: 403 is invalid_grant\"}")
  (func (export "errclass_abi_v1"))
  (func (export "errclass_alloc") (param $n i32) (result i32)
    (if (i32.gt_u (local.get $n) (i32.const 122880)) (then (return (i32.const 0))))
    (i32.const 8192))
  ;; $find reports whether needle [$nd, $nd+$nl) occurs in [$h, $h+$hl).
  (func $find (param $h i32) (param $hl i32) (param $nd i32) (param $nl i32) (result i32)
    (local $i i32) (local $j i32) (local $end i32)
    (if (i32.lt_u (local.get $hl) (local.get $nl)) (then (return (i32.const 0))))
    (local.set $end (i32.add (local.get $h) (i32.sub (local.get $hl) (local.get $nl))))
    (local.set $i (local.get $h))
    (block $done
      (loop $outer
        (br_if $done (i32.gt_u (local.get $i) (local.get $end)))
        (local.set $j (i32.const 0))
        (block $mismatch
          (loop $inner
            (if (i32.eq (local.get $j) (local.get $nl)) (then (return (i32.const 1))))
            (br_if $mismatch (i32.ne
              (i32.load8_u (i32.add (local.get $i) (local.get $j)))
              (i32.load8_u (i32.add (local.get $nd) (local.get $j)))))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $inner)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $outer)))
    (i32.const 0))
  ;; Wrong signature on purpose: the result should be i64.
  (func (export "errclass_classify") (param $p i32) (param $n i32) (result i32)
    (i32.const 0))
)
