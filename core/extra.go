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

var knownKeysCache sync.Map // reflect.Type -> map[string]bool

func knownKeys(t reflect.Type) map[string]bool {
	if v, ok := knownKeysCache.Load(t); ok {
		return v.(map[string]bool)
	}
	keys := map[string]bool{}
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
		keys[name] = true
	}
	knownKeysCache.Store(t, keys)
	return keys
}

// decodeWithExtra decodes data into v (a pointer to an alias struct without
// custom methods) and returns the keys that v does not know.
func decodeWithExtra(data []byte, v any) (Extra, error) {
	if err := json.Unmarshal(data, v); err != nil {
		return nil, err
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(data, &all); err != nil {
		return nil, err
	}
	known := knownKeys(reflect.TypeOf(v).Elem())
	var extra Extra
	for k, raw := range all {
		if !known[k] {
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
	known := knownKeys(reflect.TypeOf(v).Elem())
	keys := make([]string, 0, len(extra))
	for k := range extra {
		if !known[k] {
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
