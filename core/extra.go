package core

import (
	"reflect"
	"strings"
	"sync"

	json "github.com/goccy/go-json"
)

// Extra holds the keys of an upstream JSON object that acctpool does not
// model. They are kept verbatim and written back, so a newer upstream plugin
// sharing the same files never loses data to us.
type Extra map[string]json.RawMessage

// fieldTable maps the JSON names of a struct's fields to their indexes.
type fieldTable map[string]int

var fieldTables sync.Map // reflect.Type -> fieldTable

func fieldsOf(t reflect.Type) fieldTable {
	if v, ok := fieldTables.Load(t); ok {
		return v.(fieldTable)
	}
	ft := fieldTable{}
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

// decodeLenient decodes data into v (a pointer) keeping what fits: a value
// of an unexpected type anywhere inside is dropped (its field stays at the
// zero value, an array element is skipped) and the rest is decoded. Only
// data that is not JSON at all is an error. Outside payloads (the usage
// endpoint) use it, so one odd field never costs the whole answer
// (BEHAVIOUR.md §3.1).
func decodeLenient(data []byte, v any) error {
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
		fields := fieldsOf(rv.Type())
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
