package record

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"

	json "github.com/goccy/go-json"
)

// Extra holds the keys of an upstream JSON object that acctpool does not
// model. They are kept verbatim and written back, so a newer upstream plugin
// sharing the same files never loses data to us.
type Extra map[string]json.RawMessage

var fieldTables sync.Map // reflect.Type -> map[string]int

// JSONFields maps the JSON names of a struct type's fields to their
// indexes (cached per type), for decoders that walk an object key by key.
func JSONFields(t reflect.Type) map[string]int {
	if v, ok := fieldTables.Load(t); ok {
		return v.(map[string]int)
	}
	ft := map[string]int{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" || !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if name == "" {
			name = f.Name
		}
		ft[name] = i
	}
	fieldTables.Store(t, ft)
	return ft
}

// DecodeWithExtra decodes data, a JSON object, into v (a pointer to an
// alias struct without custom methods) and returns the keys v does not
// know. The object is scanned once: each known value is decoded straight
// into its field, each unknown one is kept raw. A known key whose value
// has the wrong type leaves its field at the zero value (the default)
// and is kept raw in Extra under its own name, so one wrong value never
// makes a whole file unreadable; core's fileWarnings reports it, and writing
// the struct back writes the field, not the raw value (BEHAVIOUR.md §1.2).
func DecodeWithExtra(data []byte, v any) (Extra, error) {
	var all map[string]json.RawMessage
	if err := json.Unmarshal(data, &all); err != nil {
		return nil, err
	}
	if all == nil {
		// JSON null: leave v at its zero value, as encoding/json does.
		return nil, nil
	}
	rv := reflect.ValueOf(v).Elem()
	fields := JSONFields(rv.Type())
	var extra Extra
	for k, raw := range all {
		i, ok := fields[k]
		if !ok {
			if extra == nil {
				extra = Extra{}
			}
			extra[k] = raw
			continue
		}
		f := rv.Field(i)
		if err := json.Unmarshal(raw, f.Addr().Interface()); err != nil {
			f.SetZero()
			if extra == nil {
				extra = Extra{}
			}
			extra[k] = raw
		}
	}
	return extra, nil
}

// decodeExtraInto is the body of every UnmarshalJSON that keeps unknown
// keys: it decodes b into x, a pointer to an alias of the struct (a type
// without the struct's JSON methods, so the decode does not recurse),
// and stores the keys the struct does not model in *extra.
func decodeExtraInto[A any](b []byte, x *A, extra *Extra) error {
	var v A
	kept, err := DecodeWithExtra(b, &v)
	*x = v
	*extra = kept
	return err
}

// EncodeWithExtra encodes v (an alias struct without custom methods) and
// adds the unknown keys after the known ones, in sorted order.
func EncodeWithExtra(v any, extra Extra) ([]byte, error) {
	data, err := json.Marshal(v)
	if err != nil || len(extra) == 0 {
		return data, err
	}
	known := JSONFields(reflect.TypeOf(v).Elem())
	keys := make([]string, 0, len(extra))
	for k := range extra {
		if _, ok := known[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	buf := data[:len(data)-1] // drop the closing brace
	for _, k := range keys {
		if len(buf) > 1 {
			buf = append(buf, ',')
		}
		kb, _ := json.Marshal(k)
		buf = append(buf, kb...)
		buf = append(buf, ':')
		buf = append(buf, extra[k]...)
	}
	return append(buf, '}'), nil
}

// DecodeLenient decodes data into v (a pointer) keeping what fits: a value
// of an unexpected type anywhere inside is dropped (its field stays at the
// zero value, an array element is skipped) and the rest is decoded. Only
// data that is not JSON at all is an error. Outside payloads (the usage
// endpoint) use it, so one odd field never costs the whole answer
// (BEHAVIOUR.md §3.1).
func DecodeLenient(data []byte, v any) error {
	if err := json.Unmarshal(data, v); err == nil {
		return nil
	}
	var probe json.RawMessage
	if err := json.Unmarshal(data, &probe); err != nil {
		return err
	}
	rv := reflect.ValueOf(v).Elem()
	rv.SetZero()
	lenientInto(probe, rv)
	return nil
}

// lenientInto decodes raw into rv as far as the types allow.
func lenientInto(raw json.RawMessage, rv reflect.Value) bool {
	if json.Unmarshal(raw, rv.Addr().Interface()) == nil {
		return true
	}
	rv.SetZero()
	switch rv.Kind() {
	case reflect.Pointer:
		elem := reflect.New(rv.Type().Elem())
		if lenientInto(raw, elem.Elem()) {
			rv.Set(elem)
			return true
		}
	case reflect.Struct:
		var m map[string]json.RawMessage
		if json.Unmarshal(raw, &m) != nil {
			return false
		}
		fields := JSONFields(rv.Type())
		for k, val := range m {
			if i, ok := fields[k]; ok {
				lenientInto(val, rv.Field(i))
			}
		}
		return true
	case reflect.Slice:
		var items []json.RawMessage
		if json.Unmarshal(raw, &items) != nil {
			return false
		}
		out := reflect.MakeSlice(rv.Type(), 0, len(items))
		for _, it := range items {
			e := reflect.New(rv.Type().Elem()).Elem()
			if lenientInto(it, e) {
				out = reflect.Append(out, e)
			}
		}
		rv.Set(out)
		return true
	}
	return false
}

// JSONErrorText reduces a JSON decoding error to text that cannot carry
// file content (and so no token fragments).
func JSONErrorText(err error) string {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "cannot unmarshal"), strings.Contains(msg, "mismatch"):
		return "unexpected value type"
	default:
		return "invalid JSON"
	}
}

// JSONErrorAt describes a JSON parse error by line and column, never
// quoting the content (it may hold tokens).
func JSONErrorAt(data []byte, err error) string {
	var se *json.SyntaxError
	if !errors.As(err, &se) {
		return JSONErrorText(err)
	}
	off := int(se.Offset)
	if off > len(data) {
		off = len(data)
	}
	line := 1 + bytes.Count(data[:off], []byte("\n"))
	col := off - bytes.LastIndexByte(data[:off], '\n')
	return fmt.Sprintf("invalid JSON at line %d, column %d", line, col)
}
