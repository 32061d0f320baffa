//go:build wasip1

package sdk

import (
	"runtime"
	"unsafe"
)

// inBuf is the buffer the host writes input into; out holds the last
// verdict until the next call. Both are reused across calls.
var (
	inBuf []byte
	out   []byte
)

//go:wasmexport errclass_abi_v1
func abiMarker() {}

//go:wasmexport errclass_alloc
func errclassAlloc(n uint32) uint32 {
	if n == 0 {
		n = 1
	}
	if uint32(cap(inBuf)) < n {
		inBuf = make([]byte, n)
	}
	return uint32(uintptr(unsafe.Pointer(unsafe.SliceData(inBuf))))
}

//go:wasmexport errclass_classify
func errclassClassify(ptr, n uint32) uint64 {
	// The host writes into the buffer errclass_alloc returned; anything
	// else is refused rather than read through a forged pointer.
	if ptr != uint32(uintptr(unsafe.Pointer(unsafe.SliceData(inBuf)))) || n > uint32(cap(inBuf)) {
		return 0
	}
	out = Run(out[:0], inBuf[:n])
	// One export runs on one goroutine: yield so the garbage collector's
	// workers run, or memory grows with every call (go-plugin#79).
	runtime.Gosched()
	if len(out) == 0 {
		return 0
	}
	return uint64(uintptr(unsafe.Pointer(unsafe.SliceData(out))))<<32 | uint64(len(out))
}
