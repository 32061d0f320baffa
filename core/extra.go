package core

import (
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

// decodeWithExtra decodes data, a JSON object, into v (a pointer to an
// alias struct without custom methods) and returns the keys v does not
// know. The object is scanned once: each known value is decoded straight
// into its field, each unknown one is kept raw. A known key whose value
// has the wrong type leaves its field at the zero value (the default)
// and is kept raw in Extra under its own name, so one wrong value never
// makes a whole file unreadable; [fileWarnings] reports it, and writing
// the struct back writes the field, not the raw value (BEHAVIOUR.md §1.2).
func decodeWithExtra(data []byte, v any) (Extra, error) {
	var all map[string]json.RawMessage
	if err := json.Unmarshal(data, &all); err != nil {
		return nil, err
	}
	if all == nil {
		// JSON null: leave v at its zero value, as encoding/json does.
		return nil, nil
	}
	rv := reflect.ValueOf(v).Elem()
	fields := fieldsOf(rv.Type())
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

// encodeWithExtra encodes v (an alias struct without custom methods) and
// adds the unknown keys after the known ones, in sorted order.
func encodeWithExtra(v any, extra Extra) ([]byte, error) {
	data, err := json.Marshal(v)
	if err != nil || len(extra) == 0 {
		return data, err
	}
	known := fieldsOf(reflect.TypeOf(v).Elem())
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
