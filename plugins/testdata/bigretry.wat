;; bigretry.wat: answers every call with a retryAfterMs whose conversion
;; to nanoseconds overflows int64 (18446744073710 ms once became 0.448 ms).
;;
;; ABI errclass v1 test fixture. Rebuild with scripts/build-wasm-fixtures
;; (needs wabt's wat2wasm).
(module
  (memory (export "memory") 1)
  (data (i32.const 0) "{\"class\":\"rate_limited\",\"retryAfterMs\":18446744073710,\"reason\":\"huge\"}")
  (func (export "errclass_abi_v1"))
  (func (export "errclass_alloc") (param $n i32) (result i32)
    (if (i32.gt_u (local.get $n) (i32.const 32768)) (then (return (i32.const 0))))
    (i32.const 1024))
  (func (export "errclass_classify") (param $p i32) (param $n i32) (result i64)
    (i64.const 70))
)
