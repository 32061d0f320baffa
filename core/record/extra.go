package record

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/acctpool/acctpool/core/internal/jsonscan"
	"reflect"
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
	var off int
	var se *json.SyntaxError
	var ss *jsonscan.SyntaxError
	switch {
	case errors.As(err, &ss):
		off = int(ss.Offset)
	case errors.As(err, &se):
		off = int(se.Offset)
	default:
		return JSONErrorText(err)
	}
	if off > len(data) {
		off = len(data)
	}
	line := 1 + bytes.Count(data[:off], []byte("\n"))
	col := off - bytes.LastIndexByte(data[:off], '\n')
	return fmt.Sprintf("invalid JSON at line %d, column %d", line, col)
}
