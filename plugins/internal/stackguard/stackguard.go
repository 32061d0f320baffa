// Package stackguard bounds the call stack of a WebAssembly module by
// rewriting it: every function defined in the module is entered through a
// small wrapper that charges the function's estimated frame size to a
// global counter, traps (unreachable) when the counter passes a budget,
// calls the original body and refunds the charge on return.
//
// wazero v1.12 has no stack-depth setting: its compiler grows a guest's
// stack by doubling up to a fixed ceiling of about 50 MB before it reports
// "stack overflow", and with the previous copy alive during the last
// growth one runaway call costs the host well over 100 MB. The guard stops
// a runaway call after a few MiB of stack instead, and the counter, which
// the rewritten module exports as [DepthExport], tells the host that the
// trap was a stack overflow rather than any other trap.
//
// Reading the module first also refuses the counts with which a module
// could make wazero exhaust the host's memory before it validates
// anything (see [Instrument]).
//
// It imports the standard library only. Entry point: [Instrument].
package stackguard

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// DepthExport is the name under which an instrumented module exports its
// stack counter (an i32 global of estimated bytes in use). After a trap,
// a value above the budget means the guard fired.
const DepthExport = "acctpool_stack_bytes"

// Frame cost estimate, in bytes: a fixed part per wrapper and body frame
// (return address, saved frame pointer, alignment), and one 8-byte slot
// per parameter (held by both frames) and per local (body frame).
const (
	frameBase  = 64
	paramBytes = 16
	localBytes = 8
)

// ErrModule marks a module the guard cannot read; wazero would reject
// most such modules anyway.
var ErrModule = errors.New("stack guard: malformed module")

// Section ids of the binary format.
const (
	secCustom   = 0
	secType     = 1
	secImport   = 2
	secFunction = 3
	secTable    = 4
	secMemory   = 5
	secGlobal   = 6
	secExport   = 7
	secElement  = 9
	secCode     = 10
	secData     = 11
	secTag      = 13
)

// MaxLocals is the most locals one function may declare, the limit web
// browsers enforce. wazero allocates a function's locals before it
// validates them, so a module declaring billions would exhaust memory.
const MaxLocals = 50000

// Instrument returns wasm rewritten so its defined functions cannot use
// more than about budget bytes of stack together, and the exported
// counter. A module without defined functions has no stack of its own to
// bound and is returned unchanged, without the counter.
//
// # Notes
//
// Function indices are kept: the wrapper of function i takes index i, and
// the original bodies are appended after all wrappers, so calls, exports,
// tables, elements and the start function all enter through the wrappers
// and no instruction of the original code changes. Custom sections
// (names, DWARF) are dropped: function indices and code offsets move, and
// the host reads none of them. The rewrite assumes
// the tail-call and exception-handling proposals are off (wazero's
// default): a tail call or a caught exception would skip a refund. A
// function whose own estimated frame exceeds budget/16 is charged
// budget/16, so any function can be called a few frames deep.
//
// Reading the module is also a guard of its own: every vector length and
// byte count must fit in the bytes that follow it, and a function may
// declare at most [MaxLocals] locals, so wazero, which allocates what a
// module declares before it validates it, never sees a count that would
// exhaust the host's memory (a 23-byte module declaring 3.7 billion
// imports made wazero abort the process).
func Instrument(wasm []byte, budget uint32) ([]byte, error) {
	if len(wasm) < 8 || string(wasm[:4]) != "\x00asm" || binary.LittleEndian.Uint32(wasm[4:8]) != 1 {
		return nil, fmt.Errorf("%w: not a WebAssembly 1.0 binary", ErrModule)
	}
	secs, err := splitSections(wasm[8:])
	if err != nil {
		return nil, err
	}
	m := &module{}
	for _, s := range secs {
		if err := m.read(s); err != nil {
			return nil, fmt.Errorf("%w: section %d: %v", ErrModule, s.id, err)
		}
	}
	if len(m.funcTypes) == 0 {
		return wasm, nil
	}
	if len(m.funcTypes) != len(m.bodies) {
		return nil, fmt.Errorf("%w: %d functions but %d bodies", ErrModule, len(m.funcTypes), len(m.bodies))
	}
	if m.exports[DepthExport] {
		return nil, fmt.Errorf("%w: export %s is reserved by the host", ErrModule, DepthExport)
	}
	counter := m.importedGlobals + m.definedGlobals
	out := append([]byte(nil), wasm[:8]...)
	sawGlobal, sawExport := false, false
	for _, s := range secs {
		// Sections come in a fixed order; insert the ones the module
		// lacks where they belong.
		if s.id > secGlobal && s.id != secCustom && !sawGlobal {
			out = appendSection(out, secGlobal, m.globalSection(nil, 0))
			sawGlobal = true
		}
		if s.id > secExport && s.id != secCustom && !sawExport {
			out = appendSection(out, secExport, m.exportSection(nil, 0, counter))
			sawExport = true
		}
		switch s.id {
		case secCustom:
			continue
		case secFunction:
			out = appendSection(out, secFunction, m.functionSection())
		case secGlobal:
			out = appendSection(out, secGlobal, m.globalSection(s.payload, m.definedGlobals))
			sawGlobal = true
		case secExport:
			out = appendSection(out, secExport, m.exportSection(s.payload, m.exportCount, counter))
			sawExport = true
		case secCode:
			out = appendSection(out, secCode, m.codeSection(counter, budget))
		default:
			out = appendSection(out, s.id, s.payload)
		}
	}
	if !sawGlobal {
		out = appendSection(out, secGlobal, m.globalSection(nil, 0))
	}
	if !sawExport {
		out = appendSection(out, secExport, m.exportSection(nil, 0, counter))
	}
	return out, nil
}

type section struct {
	id      byte
	payload []byte
}

func splitSections(b []byte) ([]section, error) {
	var out []section
	r := reader{b: b}
	for !r.done() {
		id := r.byte()
		n := r.u32()
		payload := r.bytes(int(n))
		if r.err != nil {
			return nil, fmt.Errorf("%w: %v", ErrModule, r.err)
		}
		out = append(out, section{id: id, payload: payload})
	}
	return out, nil
}

// module is what the rewrite needs to know of a module.
type module struct {
	typeParams      []int // parameter count per type index
	importedFuncs   uint32
	importedGlobals uint32
	definedGlobals  uint32
	funcTypes       []uint32 // type index per defined function
	bodies          [][]byte // code entries without their size prefix
	locals          []uint64 // declared locals per body
	exportCount     uint32
	exports         map[string]bool
}

func (m *module) read(s section) error {
	r := reader{b: s.payload}
	switch s.id {
	case secType:
		n := r.vecCount()
		for i := uint32(0); i < n && r.err == nil; i++ {
			if form := r.byte(); form != 0x60 {
				return fmt.Errorf("type %d: form %#x is not a function type", i, form)
			}
			params := r.vecCount()
			for j := uint32(0); j < params && r.err == nil; j++ {
				r.valtype()
			}
			results := r.vecCount()
			for j := uint32(0); j < results && r.err == nil; j++ {
				r.valtype()
			}
			m.typeParams = append(m.typeParams, int(params))
		}
	case secImport:
		n := r.vecCount()
		for i := uint32(0); i < n && r.err == nil; i++ {
			r.name()
			r.name()
			switch kind := r.byte(); kind {
			case 0x00: // function
				r.u32()
				m.importedFuncs++
			case 0x01: // table
				r.valtype()
				r.limits()
			case 0x02: // memory
				r.limits()
			case 0x03: // global
				r.valtype()
				r.byte()
				m.importedGlobals++
			default:
				return fmt.Errorf("import %d: kind %#x", i, kind)
			}
		}
	case secFunction:
		n := r.vecCount()
		for i := uint32(0); i < n && r.err == nil; i++ {
			t := r.u32()
			if int(t) >= len(m.typeParams) {
				return fmt.Errorf("function %d: type %d out of range", i, t)
			}
			m.funcTypes = append(m.funcTypes, t)
		}
	case secTable:
		n := r.vecCount()
		for i := uint32(0); i < n && r.err == nil; i++ {
			// 0x40 0x00 starts a table with an initialiser (typed
			// function references).
			withInit := r.off < len(r.b) && r.b[r.off] == 0x40
			if withInit {
				r.byte()
				r.byte()
			}
			r.valtype()
			r.limits()
			if withInit {
				r.constExpr()
			}
		}
	case secMemory:
		n := r.vecCount()
		for i := uint32(0); i < n && r.err == nil; i++ {
			r.limits()
		}
	case secGlobal:
		m.definedGlobals = r.vecCount()
		for i := uint32(0); i < m.definedGlobals && r.err == nil; i++ {
			r.valtype()
			r.byte() // mutability
			r.constExpr()
		}
	case secElement:
		n := r.vecCount()
		for i := uint32(0); i < n && r.err == nil; i++ {
			r.element()
		}
	case secData:
		n := r.vecCount()
		for i := uint32(0); i < n && r.err == nil; i++ {
			switch flags := r.u32(); flags {
			case 0:
				r.constExpr()
			case 1:
			case 2:
				r.u32()
				r.constExpr()
			default:
				return fmt.Errorf("data segment %d: flags %d", i, flags)
			}
			r.bytes(int(r.u32()))
		}
	case secTag:
		n := r.vecCount()
		for i := uint32(0); i < n && r.err == nil; i++ {
			r.byte()
			r.u32()
		}
	case secExport:
		m.exports = map[string]bool{}
		m.exportCount = r.vecCount()
		for i := uint32(0); i < m.exportCount && r.err == nil; i++ {
			m.exports[r.name()] = true
			r.byte()
			r.u32()
		}
	case secCode:
		n := r.vecCount()
		for i := uint32(0); i < n && r.err == nil; i++ {
			body := r.bytes(int(r.u32()))
			if r.err != nil {
				break
			}
			locals, err := localCount(body)
			if err != nil {
				return fmt.Errorf("function %d: %v", i, err)
			}
			m.bodies = append(m.bodies, body)
			m.locals = append(m.locals, locals)
		}
	default:
		return nil
	}
	if r.err == nil && !r.done() {
		return errors.New("trailing bytes")
	}
	return r.err
}

// functionSection lists every function twice: the wrappers, then the
// original bodies, with the same types.
func (m *module) functionSection() []byte {
	out := appendU32(nil, uint32(2*len(m.funcTypes)))
	for range 2 {
		for _, t := range m.funcTypes {
			out = appendU32(out, t)
		}
	}
	return out
}

// globalSection appends the counter, (mut i32) initialised to 0, to the
// payload of count existing globals.
func (m *module) globalSection(payload []byte, count uint32) []byte {
	out := appendU32(nil, count+1)
	if len(payload) > 0 {
		r := reader{b: payload}
		r.u32()
		out = append(out, payload[r.off:]...)
	}
	return append(out, 0x7f, 0x01, 0x41, 0x00, 0x0b) // i32, mutable, i32.const 0, end
}

// exportSection appends the counter's export to count existing exports.
func (m *module) exportSection(payload []byte, count, counter uint32) []byte {
	out := appendU32(nil, count+1)
	if len(payload) > 0 {
		r := reader{b: payload}
		r.u32()
		out = append(out, payload[r.off:]...)
	}
	out = appendU32(out, uint32(len(DepthExport)))
	out = append(out, DepthExport...)
	out = append(out, 0x03) // global
	return appendU32(out, counter)
}

// codeSection writes a wrapper per function, then the original bodies
// unchanged.
func (m *module) codeSection(counter, budget uint32) []byte {
	n := uint32(len(m.bodies))
	out := appendU32(nil, 2*n)
	maxCharge := max(budget/16, 1)
	for i := range m.bodies {
		params := m.typeParams[m.funcTypes[i]]
		charge := uint64(frameBase) + uint64(params)*paramBytes + m.locals[i]*localBytes
		w := wrapper(counter, uint32(min(charge, uint64(maxCharge))), budget, params, m.importedFuncs+n+uint32(i))
		out = appendU32(out, uint32(len(w)))
		out = append(out, w...)
	}
	for _, body := range m.bodies {
		out = appendU32(out, uint32(len(body)))
		out = append(out, body...)
	}
	return out
}

// wrapper is the body of one wrapper function:
//
//	global.get $c; i32.const charge; i32.add; global.set $c
//	global.get $c; i32.const budget; i32.gt_u; if; unreachable; end
//	local.get 0 … local.get params-1; call $body
//	global.get $c; i32.const charge; i32.sub; global.set $c
func wrapper(counter, charge, budget uint32, params int, body uint32) []byte {
	w := []byte{0x00} // no locals
	w = append(w, 0x23)
	w = appendU32(w, counter)
	w = append(w, 0x41)
	w = appendS32(w, int32(charge))
	w = append(w, 0x6a, 0x24)
	w = appendU32(w, counter)
	w = append(w, 0x23)
	w = appendU32(w, counter)
	w = append(w, 0x41)
	w = appendS32(w, int32(budget))
	w = append(w, 0x4b, 0x04, 0x40, 0x00, 0x0b)
	for p := range params {
		w = append(w, 0x20)
		w = appendU32(w, uint32(p))
	}
	w = append(w, 0x10)
	w = appendU32(w, body)
	w = append(w, 0x23)
	w = appendU32(w, counter)
	w = append(w, 0x41)
	w = appendS32(w, int32(charge))
	w = append(w, 0x6b, 0x24)
	w = appendU32(w, counter)
	return append(w, 0x0b)
}

// localCount sums the local declarations at the start of a code entry,
// refusing more than MaxLocals.
func localCount(body []byte) (uint64, error) {
	r := reader{b: body}
	var total uint64
	n := r.vecCount()
	for i := uint32(0); i < n && r.err == nil; i++ {
		total += uint64(r.u32())
		r.valtype()
		if total > MaxLocals {
			return 0, fmt.Errorf("declares more than %d locals", MaxLocals)
		}
	}
	return total, r.err
}

func appendSection(out []byte, id byte, payload []byte) []byte {
	out = append(out, id)
	out = appendU32(out, uint32(len(payload)))
	return append(out, payload...)
}

func appendU32(b []byte, v uint32) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v == 0 {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

func appendS32(b []byte, v int32) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

// reader reads the binary format; the first error sticks and later reads
// return zero values.
type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) done() bool { return r.err != nil || r.off >= len(r.b) }

func (r *reader) fail(msg string) {
	if r.err == nil {
		r.err = fmt.Errorf("%s at offset %d", msg, r.off)
	}
}

func (r *reader) byte() byte {
	if r.err != nil {
		return 0
	}
	if r.off >= len(r.b) {
		r.fail("unexpected end")
		return 0
	}
	c := r.b[r.off]
	r.off++
	return c
}

func (r *reader) u32() uint32 {
	var v uint32
	for shift := 0; shift < 35; shift += 7 {
		c := r.byte()
		if r.err != nil {
			return 0
		}
		if shift == 28 && c > 0x0f {
			r.fail("u32 overflows")
			return 0
		}
		v |= uint32(c&0x7f) << shift
		if c&0x80 == 0 {
			return v
		}
	}
	r.fail("u32 too long")
	return 0
}

// u64 skips an unsigned LEB128 of up to 64 bits (memory64 limits).
func (r *reader) u64() {
	for range 10 {
		if c := r.byte(); r.err != nil || c&0x80 == 0 {
			return
		}
	}
	r.fail("u64 too long")
}

func (r *reader) bytes(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b)-r.off {
		r.fail("length past the end")
		return nil
	}
	b := r.b[r.off : r.off+n]
	r.off += n
	return b
}

func (r *reader) name() string { return string(r.bytes(int(r.u32()))) }

// vecCount reads a vector length, which cannot exceed the bytes left:
// every entry takes at least one.
func (r *reader) vecCount() uint32 {
	n := r.u32()
	if r.err == nil && int64(n) > int64(len(r.b)-r.off) {
		r.fail(fmt.Sprintf("vector of %d entries in %d bytes", n, len(r.b)-r.off))
		return 0
	}
	return n
}

// constExpr skips a constant expression up to its end opcode.
func (r *reader) constExpr() {
	for r.err == nil {
		switch op := r.byte(); op {
		case 0x0b: // end
			return
		case 0x41, 0x42: // i32.const, i64.const
			r.u64()
		case 0x43: // f32.const
			r.bytes(4)
		case 0x44: // f64.const
			r.bytes(8)
		case 0x23, 0xd2: // global.get, ref.func
			r.u32()
		case 0xd0: // ref.null heaptype
			r.u64()
		case 0xfd: // v128.const
			if sub := r.u32(); sub != 12 {
				r.fail(fmt.Sprintf("SIMD opcode %d in a constant expression", sub))
				return
			}
			r.bytes(16)
		case 0x6a, 0x6b, 0x6c, 0x7c, 0x7d, 0x7e: // extended constants
		default:
			if r.err == nil {
				r.fail(fmt.Sprintf("opcode %#x in a constant expression", op))
			}
		}
	}
}

// element skips one element segment (flags 0 to 7).
func (r *reader) element() {
	flags := r.u32()
	if flags > 7 {
		r.fail(fmt.Sprintf("element segment flags %d", flags))
		return
	}
	if flags&3 == 2 {
		r.u32() // table index
	}
	if flags&1 == 0 {
		r.constExpr() // offset of an active segment
	}
	if flags&3 != 0 {
		if flags&4 != 0 {
			r.valtype()
		} else {
			r.byte() // element kind
		}
	}
	n := r.vecCount()
	for i := uint32(0); i < n && r.err == nil; i++ {
		if flags&4 != 0 {
			r.constExpr()
		} else {
			r.u32()
		}
	}
}

// valtype reads one value or reference type, typed function references
// (ref null ht, ref ht) included.
func (r *reader) valtype() {
	switch c := r.byte(); c {
	case 0x7f, 0x7e, 0x7d, 0x7c, 0x7b, 0x70, 0x6f:
	case 0x63, 0x64:
		r.u64() // the heap type, an s33: skipped like any LEB128
	default:
		if r.err == nil {
			r.fail(fmt.Sprintf("value type %#x not supported", c))
		}
	}
}

// limits reads table or memory limits.
func (r *reader) limits() {
	flags := r.byte()
	if flags > 0x07 {
		r.fail(fmt.Sprintf("limits flags %#x", flags))
		return
	}
	r.u64()
	if flags&0x01 != 0 {
		r.u64()
	}
}
