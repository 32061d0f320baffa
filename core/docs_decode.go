package core

import (
	"bytes"
	"errors"

	"github.com/acctpool/acctpool/core/internal/jsonscan"
	json "github.com/goccy/go-json"
)

// The document types' decoders: each walks its object once on a shared
// scanner, decoding known keys straight into their fields and keeping
// unknown keys raw in Extra; nested documents are decoded by recursion on
// the same scanner, so no byte is parsed twice on the way.
//
// Leniency (BEHAVIOUR.md §1.2): a known key of a type that keeps Extra
// whose value has the wrong type leaves its field at the zero value (the
// default) and is kept raw in Extra under its own name, so the warnings
// (warnings.go) can name it and one odd value never costs a whole file.
// The types without Extra (windows, money) are all or nothing, as they
// were when goccy/go-json decoded them: a wrong value inside makes the
// enclosing field wrong. Only bad syntax is an error, with its offset.
//
// A duplicate key counts once, the last time (as a decode into a map
// would). Keys match exactly in the Extra types and case-insensitively in
// the others, as encoding/json matches struct fields.

// decodeDoc runs decode over data, a whole JSON text.
func decodeDoc(data []byte, decode func(s *jsonscan.Scanner) error) error {
	s := jsonscan.New(data)
	if err := decode(s); err != nil {
		return err
	}
	return s.End()
}

func isSyntax(err error) bool {
	var se *jsonscan.SyntaxError
	return errors.As(err, &se)
}

// known decodes the value of a known key of an Extra type with decode,
// which sets the field (zeroing it first). A value decode refuses is kept
// raw in extra under name, the field left at zero.
func known(s *jsonscan.Scanner, extra *Extra, name string, decode func() error) error {
	m := s.Mark()
	err := decode()
	if err == nil {
		if *extra != nil {
			delete(*extra, name) // an earlier duplicate's wrong value
		}
		return nil
	}
	if isSyntax(err) {
		return err
	}
	s.Rewind(m)
	raw, err := s.Raw()
	if err != nil {
		return err
	}
	putExtra(extra, name, raw)
	return nil
}

// unknown keeps the value of an unknown key raw.
func unknown(s *jsonscan.Scanner, extra *Extra, key []byte) error {
	k := string(key) // before the value is read: key may be scratch
	raw, err := s.Raw()
	if err != nil {
		return err
	}
	putExtra(extra, k, raw)
	return nil
}

func putExtra(extra *Extra, k string, raw []byte) {
	if *extra == nil {
		*extra = Extra{}
	}
	(*extra)[k] = bytes.Clone(raw)
}

// The scalar readers: null leaves the zero value, as a JSON decode does.

func readString(s *jsonscan.Scanner) (string, error) {
	if null, err := s.Null(); null || err != nil {
		return "", err
	}
	return s.String()
}

func readInt64(s *jsonscan.Scanner) (int64, error) {
	if null, err := s.Null(); null || err != nil {
		return 0, err
	}
	return s.Int64()
}

func readInt(s *jsonscan.Scanner) (int, error) {
	n, err := readInt64(s)
	return int(n), err
}

func readFloat(s *jsonscan.Scanner) (float64, error) {
	if null, err := s.Null(); null || err != nil {
		return 0, err
	}
	return s.Float64()
}

func readBool(s *jsonscan.Scanner) (bool, error) {
	if null, err := s.Null(); null || err != nil {
		return false, err
	}
	return s.Bool()
}

func readBoolPtr(s *jsonscan.Scanner) (*bool, error) {
	if null, err := s.Null(); null || err != nil {
		return nil, err
	}
	b, err := s.Bool()
	if err != nil {
		return nil, err
	}
	return &b, nil
}

// readRaw reads any value verbatim (null included, as json.RawMessage).
func readRaw(s *jsonscan.Scanner) (json.RawMessage, error) {
	raw, err := s.Raw()
	if err != nil {
		return nil, err
	}
	return bytes.Clone(raw), nil
}

// readPtr reads null as nil and anything else with decode into a new T.
func readPtr[T any](s *jsonscan.Scanner, decode func(*jsonscan.Scanner, *T) error) (*T, error) {
	if null, err := s.Null(); null || err != nil {
		return nil, err
	}
	v := new(T)
	if err := decode(s, v); err != nil {
		return nil, err
	}
	return v, nil
}

// fieldOf returns the index of key in names: an exact match, else a
// case-insensitive one; -1 for none.
func fieldOf(key []byte, names []string) int {
	for i, n := range names {
		if string(key) == n {
			return i
		}
	}
	for i, n := range names {
		if bytes.EqualFold(key, []byte(n)) {
			return i
		}
	}
	return -1
}

// decodeObject decodes an Extra type's object: null leaves it zero, a
// value that is not an object is a type error (its parent keeps it raw).
func decodeObject(s *jsonscan.Scanner, what string, member func(key []byte) error) error {
	if null, err := s.Null(); null || err != nil {
		return err
	}
	return s.ObjectOrType(what, member)
}

func decodeOpError(s *jsonscan.Scanner, e *OpError) error {
	*e = OpError{}
	x := &e.Extra
	return decodeObject(s, "an error record", func(key []byte) error {
		var err error
		switch string(key) {
		case "message":
			return known(s, x, "message", func() error { e.Message, err = readString(s); return err })
		case "checkedAt":
			return known(s, x, "checkedAt", func() error { e.CheckedAt, err = readInt64(s); return err })
		case "nextRetryAt":
			return known(s, x, "nextRetryAt", func() error { e.NextRetryAt, err = readInt64(s); return err })
		case "retryCount":
			return known(s, x, "retryCount", func() error { e.RetryCount, err = readInt(s); return err })
		case "accountIdentity":
			return known(s, x, "accountIdentity", func() error { e.AccountIdentity, err = readString(s); return err })
		case "tokenHash":
			return known(s, x, "tokenHash", func() error { e.TokenHash, err = readString(s); return err })
		case "refreshTokenFingerprint":
			return known(s, x, "refreshTokenFingerprint", func() error { e.RefreshTokenFingerprint, err = readString(s); return err })
		case "status":
			return known(s, x, "status", func() error { e.Status, err = readInt(s); return err })
		case "permanent":
			return known(s, x, "permanent", func() error { e.Permanent, err = readBoolPtr(s); return err })
		case "class":
			return known(s, x, "class", func() error { var c string; c, err = readString(s); e.Class = Class(c); return err })
		case "decidedBy":
			return known(s, x, "decidedBy", func() error { e.DecidedBy, err = readString(s); return err })
		}
		return unknown(s, x, key)
	})
}

var quotaWindowFields = []string{"usedPercent", "remainingPercent", "resetsAt", "checkedAt"}

// decodeQuotaWindow decodes a window in place (all or nothing; see above).
func decodeQuotaWindow(s *jsonscan.Scanner, w *QuotaWindow) error {
	if null, err := s.Null(); null || err != nil {
		return err
	}
	return s.ObjectOrType("a quota window", func(key []byte) error {
		var err error
		switch fieldOf(key, quotaWindowFields) {
		case 0:
			err = inPlace(s, &w.UsedPercent, readFloat)
		case 1:
			err = inPlace(s, &w.RemainingPercent, readFloat)
		case 2:
			err = inPlace(s, &w.ResetsAt, readString)
		case 3:
			err = inPlace(s, &w.CheckedAt, readInt64)
		default:
			err = s.Skip()
		}
		return err
	})
}

// inPlace reads a scalar into *p unless the value is null (which, inside
// the all-or-nothing types, leaves *p as it is).
func inPlace[T any](s *jsonscan.Scanner, p *T, read func(*jsonscan.Scanner) (T, error)) error {
	if null, err := s.Null(); null || err != nil {
		return err
	}
	v, err := read(s)
	if err == nil {
		*p = v
	}
	return err
}

var scopedWindowFields = []string{"id", "title", "modelId", "modelName", "usedPercent", "remainingPercent", "resetsAt", "checkedAt"}

func decodeScopedWindow(s *jsonscan.Scanner, w *ScopedWindow) error {
	if null, err := s.Null(); null || err != nil {
		return err
	}
	return s.ObjectOrType("a scoped window", func(key []byte) error {
		switch fieldOf(key, scopedWindowFields) {
		case 0:
			return inPlace(s, &w.ID, readString)
		case 1:
			return inPlace(s, &w.Title, readString)
		case 2:
			return inPlace(s, &w.ModelID, readString)
		case 3:
			return inPlace(s, &w.ModelName, readString)
		case 4:
			return inPlace(s, &w.UsedPercent, readFloat)
		case 5:
			return inPlace(s, &w.RemainingPercent, readFloat)
		case 6:
			return inPlace(s, &w.ResetsAt, readString)
		case 7:
			return inPlace(s, &w.CheckedAt, readInt64)
		}
		return s.Skip()
	})
}

var moneyFields = []string{"amountMinor", "currency", "exponent"}

func decodeMoney(s *jsonscan.Scanner, m *Money) error {
	if null, err := s.Null(); null || err != nil {
		return err
	}
	return s.ObjectOrType("an amount", func(key []byte) error {
		switch fieldOf(key, moneyFields) {
		case 0:
			return inPlace(s, &m.AmountMinor, readFloat)
		case 1:
			return inPlace(s, &m.Currency, readString)
		case 2:
			return inPlace(s, &m.Exponent, readInt)
		}
		return s.Skip()
	})
}

var extraUsageFields = []string{"used", "limit", "utilizationPercent", "severity", "exhausted"}

func decodeExtraUsage(s *jsonscan.Scanner, u *ExtraUsage) error {
	if null, err := s.Null(); null || err != nil {
		return err
	}
	return s.ObjectOrType("extra usage", func(key []byte) error {
		switch fieldOf(key, extraUsageFields) {
		case 0:
			return decodeMoney(s, &u.Used)
		case 1:
			return decodeMoney(s, &u.Limit)
		case 2:
			if null, err := s.Null(); null || err != nil {
				u.UtilizationPercent = nil
				return err
			}
			f, err := s.Float64()
			if err == nil {
				u.UtilizationPercent = &f
			}
			return err
		case 3:
			return inPlace(s, &u.Severity, readString)
		case 4:
			return inPlace(s, &u.Exhausted, readBool)
		}
		return s.Skip()
	})
}

// readScoped reads the scoped windows: null is nil (unknown), [] an empty
// slice.
func readScoped(s *jsonscan.Scanner) ([]ScopedWindow, error) {
	if null, err := s.Null(); null || err != nil {
		return nil, err
	}
	out := []ScopedWindow{}
	err := s.ArrayOrType("scoped windows", func() error {
		var w ScopedWindow
		if err := decodeScopedWindow(s, &w); err != nil {
			return err
		}
		out = append(out, w)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func readStringMap(s *jsonscan.Scanner) (map[string]string, error) {
	if null, err := s.Null(); null || err != nil {
		return nil, err
	}
	out := map[string]string{}
	err := s.ObjectOrType("an object of strings", func(key []byte) error {
		k := string(key)
		v, err := readString(s)
		out[k] = v
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func decodeQuotaSnapshot(s *jsonscan.Scanner, q *QuotaSnapshot) error {
	*q = QuotaSnapshot{}
	x := &q.Extra
	return decodeObject(s, "a quota snapshot", func(key []byte) error {
		var err error
		switch string(key) {
		case "five_hour":
			return known(s, x, "five_hour", func() error { q.FiveHour, err = readPtr(s, decodeQuotaWindow); return err })
		case "seven_day":
			return known(s, x, "seven_day", func() error { q.SevenDay, err = readPtr(s, decodeQuotaWindow); return err })
		case "scoped":
			return known(s, x, "scoped", func() error { q.Scoped, err = readScoped(s); return err })
		case "extraUsage":
			return known(s, x, "extraUsage", func() error { q.ExtraUsage, err = readPtr(s, decodeExtraUsage); return err })
		case "bindingWindow":
			return known(s, x, "bindingWindow", func() error { q.BindingWindow, err = readString(s); return err })
		case "bindingWindowSource":
			return known(s, x, "bindingWindowSource", func() error { q.BindingWindowSource, err = readString(s); return err })
		case "fieldSources":
			return known(s, x, "fieldSources", func() error { q.FieldSources, err = readStringMap(s); return err })
		case "fallbackAdvised":
			return known(s, x, "fallbackAdvised", func() error { q.FallbackAdvised, err = readBoolPtr(s); return err })
		case "source":
			return known(s, x, "source", func() error { q.Source, err = readString(s); return err })
		case "accountIdentity":
			return known(s, x, "accountIdentity", func() error { q.AccountIdentity, err = readString(s); return err })
		case "checkedAt":
			return known(s, x, "checkedAt", func() error { q.CheckedAt, err = readInt64(s); return err })
		}
		return unknown(s, x, key)
	})
}

func decodeSpentWindows(s *jsonscan.Scanner, w *SpentWindows) error {
	*w = SpentWindows{}
	x := &w.Extra
	return decodeObject(s, "spent windows", func(key []byte) error {
		var err error
		switch string(key) {
		case "five_hour":
			return known(s, x, "five_hour", func() error { w.FiveHour, err = readInt64(s); return err })
		case "seven_day":
			return known(s, x, "seven_day", func() error { w.SevenDay, err = readInt64(s); return err })
		case "checkedAt":
			return known(s, x, "checkedAt", func() error { w.CheckedAt, err = readInt64(s); return err })
		}
		return unknown(s, x, key)
	})
}

func readSecret(s *jsonscan.Scanner) (Secret, error) {
	v, err := readString(s)
	return Secret(v), err
}

func decodeAccountState(s *jsonscan.Scanner, a *AccountState) error {
	*a = AccountState{}
	x := &a.Extra
	return decodeObject(s, "an account's state", func(key []byte) error {
		var err error
		switch string(key) {
		case "authLineageId":
			return known(s, x, "authLineageId", func() error { a.AuthLineageID, err = readString(s); return err })
		case "anthropicAccountUuid":
			return known(s, x, "anthropicAccountUuid", func() error { a.AnthropicAccountUUID, err = readString(s); return err })
		case "access":
			return known(s, x, "access", func() error { a.Access, err = readSecret(s); return err })
		case "refresh":
			return known(s, x, "refresh", func() error { a.Refresh, err = readSecret(s); return err })
		case "expires":
			return known(s, x, "expires", func() error { a.Expires, err = readInt64(s); return err })
		case "apiKey":
			return known(s, x, "apiKey", func() error { a.APIKey, err = readSecret(s); return err })
		case "lastUsed":
			return known(s, x, "lastUsed", func() error { a.LastUsed, err = readInt64(s); return err })
		case "lastRefreshedAt":
			return known(s, x, "lastRefreshedAt", func() error { a.LastRefreshedAt, err = readInt64(s); return err })
		case "lastRefreshError":
			return known(s, x, "lastRefreshError", func() error { a.LastRefreshError, err = readPtr(s, decodeOpError); return err })
		case "lastQuotaRefreshError":
			return known(s, x, "lastQuotaRefreshError", func() error { a.LastQuotaRefreshError, err = readPtr(s, decodeOpError); return err })
		case "quota":
			return known(s, x, "quota", func() error { a.Quota, err = readPtr(s, decodeQuotaSnapshot); return err })
		case "profile":
			return known(s, x, "profile", func() error { a.Profile, err = readRaw(s); return err })
		case "rateLimited":
			return known(s, x, "rateLimited", func() error { a.RateLimited, err = readPtr(s, decodeSpentWindows); return err })
		}
		return unknown(s, x, key)
	})
}

func decodeMainState(s *jsonscan.Scanner, m *MainState) error {
	*m = MainState{}
	x := &m.Extra
	return decodeObject(s, "the main section", func(key []byte) error {
		var err error
		switch string(key) {
		case "quota":
			return known(s, x, "quota", func() error { m.Quota, err = readPtr(s, decodeQuotaSnapshot); return err })
		case "quotaCheckedAt":
			return known(s, x, "quotaCheckedAt", func() error { m.QuotaCheckedAt, err = readInt64(s); return err })
		case "quotaToken":
			return known(s, x, "quotaToken", func() error { m.QuotaToken, err = readString(s); return err })
		case "lastQuotaApiError":
			return known(s, x, "lastQuotaApiError", func() error { m.LastQuotaAPIError, err = readPtr(s, decodeOpError); return err })
		case "quotaErrorGeneration":
			return known(s, x, "quotaErrorGeneration", func() error { m.QuotaErrorGeneration, err = readInt64(s); return err })
		case "quotaErrorClearedAt":
			return known(s, x, "quotaErrorClearedAt", func() error { m.QuotaErrorClearedAt, err = readInt64(s); return err })
		case "lastRefreshError":
			return known(s, x, "lastRefreshError", func() error { m.LastRefreshError, err = readPtr(s, decodeOpError); return err })
		case "refreshErrorClearedAt":
			return known(s, x, "refreshErrorClearedAt", func() error { m.RefreshErrorClearedAt, err = readInt64(s); return err })
		case "refreshLeaseId":
			return known(s, x, "refreshLeaseId", func() error { m.RefreshLeaseID, err = readString(s); return err })
		case "refreshLeaseUntil":
			return known(s, x, "refreshLeaseUntil", func() error { m.RefreshLeaseUntil, err = readInt64(s); return err })
		case "refreshLeaseTokenHash":
			return known(s, x, "refreshLeaseTokenHash", func() error { m.RefreshLeaseTokenHash, err = readString(s); return err })
		case "profile":
			return known(s, x, "profile", func() error { m.Profile, err = readRaw(s); return err })
		case "rateLimited":
			return known(s, x, "rateLimited", func() error { m.RateLimited, err = readPtr(s, decodeSpentWindows); return err })
		}
		return unknown(s, x, key)
	})
}

// readPtrMap reads an object of documents: a null value is a nil entry.
func readPtrMap[T any](s *jsonscan.Scanner, what string, decode func(*jsonscan.Scanner, *T) error) (map[string]*T, error) {
	if null, err := s.Null(); null || err != nil {
		return nil, err
	}
	out := map[string]*T{}
	err := s.ObjectOrType(what, func(key []byte) error {
		k := string(key)
		v, err := readPtr(s, decode)
		out[k] = v
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func decodeStateFile(s *jsonscan.Scanner, st *StateFile) error {
	*st = StateFile{}
	x := &st.Extra
	return decodeObject(s, "a state file", func(key []byte) error {
		var err error
		switch string(key) {
		case "version":
			return known(s, x, "version", func() error { st.Version, err = readInt(s); return err })
		case "main":
			return known(s, x, "main", func() error { st.Main, err = readPtr(s, decodeMainState); return err })
		case "accounts":
			return known(s, x, "accounts", func() error {
				st.Accounts, err = readPtrMap(s, "an object of account states", decodeAccountState)
				return err
			})
		}
		return unknown(s, x, key)
	})
}

func decodeAccountConfig(s *jsonscan.Scanner, a *AccountConfig) error {
	*a = AccountConfig{}
	x := &a.Extra
	return decodeObject(s, "an account entry", func(key []byte) error {
		var err error
		switch string(key) {
		case "id":
			return known(s, x, "id", func() error { a.ID, err = readString(s); return err })
		case "label":
			return known(s, x, "label", func() error { a.Label, err = readString(s); return err })
		case "type":
			return known(s, x, "type", func() error { var t string; t, err = readString(s); a.Type = AccountType(t); return err })
		case "enabled":
			return known(s, x, "enabled", func() error { a.Enabled, err = readBoolPtr(s); return err })
		case "addedAt":
			return known(s, x, "addedAt", func() error { a.AddedAt, err = readInt64(s); return err })
		case "baseURL":
			return known(s, x, "baseURL", func() error { a.BaseURL, err = readString(s); return err })
		case "authHeader":
			return known(s, x, "authHeader", func() error { a.AuthHeader, err = readString(s); return err })
		}
		return unknown(s, x, key)
	})
}

func readAccountConfigs(s *jsonscan.Scanner) ([]AccountConfig, error) {
	if null, err := s.Null(); null || err != nil {
		return nil, err
	}
	out := []AccountConfig{}
	err := s.ArrayOrType("an array of accounts", func() error {
		var a AccountConfig
		if err := decodeAccountConfig(s, &a); err != nil {
			return err
		}
		out = append(out, a)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func decodeConfigFile(s *jsonscan.Scanner, c *ConfigFile) error {
	*c = ConfigFile{}
	x := &c.Extra
	return decodeObject(s, "a config file", func(key []byte) error {
		var err error
		switch string(key) {
		case "version":
			return known(s, x, "version", func() error { c.Version, err = readInt(s); return err })
		case "mainAccountId":
			return known(s, x, "mainAccountId", func() error { c.MainAccountID, err = readString(s); return err })
		case "main":
			return known(s, x, "main", func() error { c.Main, err = readRaw(s); return err })
		case "accounts":
			return known(s, x, "accounts", func() error { c.Accounts, err = readAccountConfigs(s); return err })
		}
		return unknown(s, x, key)
	})
}

func decodeStickyAssignment(s *jsonscan.Scanner, a *stickyAssignment) error {
	*a = stickyAssignment{}
	x := &a.Extra
	return decodeObject(s, "a sticky assignment", func(key []byte) error {
		var err error
		switch string(key) {
		case "accountId":
			return known(s, x, "accountId", func() error { a.AccountID, err = readString(s); return err })
		case "family":
			return known(s, x, "family", func() error { a.Family, err = readString(s); return err })
		case "affinityModelId":
			return known(s, x, "affinityModelId", func() error { a.AffinityModelID, err = readString(s); return err })
		case "assignedAt":
			return known(s, x, "assignedAt", func() error { a.AssignedAt, err = readInt64(s); return err })
		case "lastSeenAt":
			return known(s, x, "lastSeenAt", func() error { a.LastSeenAt, err = readInt64(s); return err })
		case "initialInputBytes":
			return known(s, x, "initialInputBytes", func() error { a.InitialInputBytes, err = readInt64(s); return err })
		case "quotaCheckedAt":
			return known(s, x, "quotaCheckedAt", func() error { a.QuotaCheckedAt, err = readInt64(s); return err })
		}
		return unknown(s, x, key)
	})
}

func decodeStickyFile(s *jsonscan.Scanner, f *stickyFile) error {
	*f = stickyFile{}
	x := &f.Extra
	return decodeObject(s, "a routing state file", func(key []byte) error {
		var err error
		switch string(key) {
		case "version":
			return known(s, x, "version", func() error { f.Version, err = readInt(s); return err })
		case "updatedAt":
			return known(s, x, "updatedAt", func() error { f.UpdatedAt, err = readInt64(s); return err })
		case "assignments":
			return known(s, x, "assignments", func() error {
				f.Assignments, err = readPtrMap(s, "an object of assignments", decodeStickyAssignment)
				return err
			})
		}
		return unknown(s, x, key)
	})
}
