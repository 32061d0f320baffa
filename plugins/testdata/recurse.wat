;; recurse.wat: 500 recurses without end, to test the stack bound; 501
;; recurses 1000 deep and answers, to show bounded recursion still works.
;; Every other status gets no opinion.
;;
;; ABI errclass v1 test fixture. Memory: the needles at 0-63, the verdict
;; at 512, the input buffer at 8192 (up to 56 KiB). Rebuild with
;; scripts/build-wasm-fixtures (needs wabt's wat2wasm).
(module
  (memory (export "memory") 1)
  (data (i32.const 0) "\"status\":500")
  (data (i32.const 16) "\"status\":501")
  (data (i32.const 512) "{\"class\":\"transient\",\"reason\":\"recursed 1000 deep\"}")
  (func (export "errclass_abi_v1"))
  (func (export "errclass_alloc") (param $n i32) (result i32)
    (if (i32.gt_u (local.get $n) (i32.const 57344)) (then (return (i32.const 0))))
    (i32.const 8192))
  ;; $forever never returns: each frame calls the next.
  (func $forever (param $d i32) (result i32)
    (i32.add (call $forever (i32.add (local.get $d) (i32.const 1))) (i32.const 1)))
  ;; $depth returns $d after recursing $d deep.
  (func $depth (param $d i32) (result i32)
    (if (result i32) (i32.eqz (local.get $d))
      (then (i32.const 0))
      (else (i32.add (call $depth (i32.sub (local.get $d) (i32.const 1))) (i32.const 1)))))
  ;; $has reports whether the 12-byte needle at $nd occurs in [$h, $h+$hl).
  (func $has (param $h i32) (param $hl i32) (param $nd i32) (result i32)
    (local $i i32) (local $end i32)
    (if (i32.lt_u (local.get $hl) (i32.const 12)) (then (return (i32.const 0))))
    (local.set $end (i32.add (local.get $h) (i32.sub (local.get $hl) (i32.const 12))))
    (local.set $i (local.get $h))
    (block $done
      (loop $scan
        (br_if $done (i32.gt_u (local.get $i) (local.get $end)))
        (if (i32.and
              (i64.eq (i64.load (local.get $i)) (i64.load (local.get $nd)))
              (i32.eq (i32.load (i32.add (local.get $i) (i32.const 8))) (i32.load (i32.add (local.get $nd) (i32.const 8)))))
          (then (return (i32.const 1))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $scan)))
    (i32.const 0))
  (func (export "errclass_classify") (param $p i32) (param $n i32) (result i64)
    (if (call $has (local.get $p) (local.get $n) (i32.const 0))
      (then (drop (call $forever (i32.const 0)))))
    (if (call $has (local.get $p) (local.get $n) (i32.const 16))
      (then
        (if (i32.eq (call $depth (i32.const 1000)) (i32.const 1000))
          (then (return (i64.or (i64.shl (i64.const 512) (i64.const 32)) (i64.const 51)))))))
    (i64.const 0))
)
