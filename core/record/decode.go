package record

import (
	"bytes"
	"errors"

	"github.com/acctpool/acctpool/core/internal/jsonscan"
	"github.com/acctpool/acctpool/core/secret"
	"github.com/acctpool/acctpool/core/verdict"
	json "github.com/goccy/go-json"
)

// The document types' decoders: each walks its object once on a shared
// scanner, decoding known keys straight into their fields and keeping
// unknown keys raw in Extra; nested documents are decoded by recursion on
// the same scanner, so no byte is parsed twice on the way.
//
// Leniency (BEHAVIOUR.md §1.2): a known key of a document whose value has
// the wrong type leaves its field at the zero value (the default) and is
// kept raw in Extra under its own name, so the warnings (warnings.go) can
// name it and one odd value never costs a whole file. The small records
// inside a quota snapshot (windows, extra usage, money) are all or
// nothing, as they were when goccy/go-json decoded them: a wrong value
// inside makes the enclosing field wrong; their unknown keys are kept.
// Only bad syntax is an error, with its offset.
//
// A duplicate key counts once, the last time (as a decode into a map
// would). Keys match exactly in the documents and case-insensitively in
// the small records, as encoding/json matches struct fields.

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

// kept finishes the decode of a known key of an Extra type, begun at m:
// the field was set from the value (zero when err is not nil). A value
// the decode refused (a type error) is kept raw in extra under name, the
// field left at zero; a syntax error ends the decode.
func kept(s *jsonscan.Scanner, extra *Extra, name string, m jsonscan.Mark, err error) error {
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

func readString(s *jsonscan.Scanner) (string, error) { return s.NullableString() }

func readInt64(s *jsonscan.Scanner) (int64, error) { return s.NullableInt64() }

func readInt(s *jsonscan.Scanner) (int, error) {
	n, err := readInt64(s)
	return int(n), err
}

func readFloat(s *jsonscan.Scanner) (float64, error) { return s.NullableFloat64() }

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
		if len(key) == len(n) && string(key) == n {
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
			at := s.Mark()
			e.Message, err = readString(s)
			return kept(s, x, "message", at, err)
		case "checkedAt":
			at := s.Mark()
			e.CheckedAt, err = readInt64(s)
			return kept(s, x, "checkedAt", at, err)
		case "nextRetryAt":
			at := s.Mark()
			e.NextRetryAt, err = readInt64(s)
			return kept(s, x, "nextRetryAt", at, err)
		case "retryCount":
			at := s.Mark()
			e.RetryCount, err = readInt(s)
			return kept(s, x, "retryCount", at, err)
		case "accountIdentity":
			at := s.Mark()
			e.AccountIdentity, err = readString(s)
			return kept(s, x, "accountIdentity", at, err)
		case "tokenHash":
			at := s.Mark()
			e.TokenHash, err = readString(s)
			return kept(s, x, "tokenHash", at, err)
		case "refreshTokenFingerprint":
			at := s.Mark()
			e.RefreshTokenFingerprint, err = readString(s)
			return kept(s, x, "refreshTokenFingerprint", at, err)
		case "status":
			at := s.Mark()
			e.Status, err = readInt(s)
			return kept(s, x, "status", at, err)
		case "permanent":
			at := s.Mark()
			e.Permanent, err = readBoolPtr(s)
			return kept(s, x, "permanent", at, err)
		case "class":
			at := s.Mark()
			var c string
			c, err = readString(s)
			e.Class = verdict.Class(c)
			return kept(s, x, "class", at, err)
		case "decidedBy":
			at := s.Mark()
			e.DecidedBy, err = readString(s)
			return kept(s, x, "decidedBy", at, err)
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
			err = unknown(s, &w.Extra, key)
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
		return unknown(s, &w.Extra, key)
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
		return unknown(s, &m.Extra, key)
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
		return unknown(s, &u.Extra, key)
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
			at := s.Mark()
			q.FiveHour, err = readPtr(s, decodeQuotaWindow)
			return kept(s, x, "five_hour", at, err)
		case "seven_day":
			at := s.Mark()
			q.SevenDay, err = readPtr(s, decodeQuotaWindow)
			return kept(s, x, "seven_day", at, err)
		case "scoped":
			at := s.Mark()
			q.Scoped, err = readScoped(s)
			return kept(s, x, "scoped", at, err)
		case "extraUsage":
			at := s.Mark()
			q.ExtraUsage, err = readPtr(s, decodeExtraUsage)
			return kept(s, x, "extraUsage", at, err)
		case "bindingWindow":
			at := s.Mark()
			q.BindingWindow, err = readString(s)
			return kept(s, x, "bindingWindow", at, err)
		case "bindingWindowSource":
			at := s.Mark()
			q.BindingWindowSource, err = readString(s)
			return kept(s, x, "bindingWindowSource", at, err)
		case "fieldSources":
			at := s.Mark()
			q.FieldSources, err = readStringMap(s)
			return kept(s, x, "fieldSources", at, err)
		case "fallbackAdvised":
			at := s.Mark()
			q.FallbackAdvised, err = readBoolPtr(s)
			return kept(s, x, "fallbackAdvised", at, err)
		case "source":
			at := s.Mark()
			q.Source, err = readString(s)
			return kept(s, x, "source", at, err)
		case "accountIdentity":
			at := s.Mark()
			q.AccountIdentity, err = readString(s)
			return kept(s, x, "accountIdentity", at, err)
		case "checkedAt":
			at := s.Mark()
			q.CheckedAt, err = readInt64(s)
			return kept(s, x, "checkedAt", at, err)
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
			at := s.Mark()
			w.FiveHour, err = readInt64(s)
			return kept(s, x, "five_hour", at, err)
		case "seven_day":
			at := s.Mark()
			w.SevenDay, err = readInt64(s)
			return kept(s, x, "seven_day", at, err)
		case "checkedAt":
			at := s.Mark()
			w.CheckedAt, err = readInt64(s)
			return kept(s, x, "checkedAt", at, err)
		}
		return unknown(s, x, key)
	})
}

func readSecret(s *jsonscan.Scanner) (secret.Secret, error) {
	v, err := readString(s)
	return secret.Secret(v), err
}

func decodeAccountState(s *jsonscan.Scanner, a *AccountState) error {
	*a = AccountState{}
	x := &a.Extra
	return decodeObject(s, "an account's state", func(key []byte) error {
		var err error
		switch string(key) {
		case "authLineageId":
			at := s.Mark()
			a.AuthLineageID, err = readString(s)
			return kept(s, x, "authLineageId", at, err)
		case "anthropicAccountUuid":
			at := s.Mark()
			a.AnthropicAccountUUID, err = readString(s)
			return kept(s, x, "anthropicAccountUuid", at, err)
		case "access":
			at := s.Mark()
			a.Access, err = readSecret(s)
			return kept(s, x, "access", at, err)
		case "refresh":
			at := s.Mark()
			a.Refresh, err = readSecret(s)
			return kept(s, x, "refresh", at, err)
		case "expires":
			at := s.Mark()
			a.Expires, err = readInt64(s)
			return kept(s, x, "expires", at, err)
		case "apiKey":
			at := s.Mark()
			a.APIKey, err = readSecret(s)
			return kept(s, x, "apiKey", at, err)
		case "lastUsed":
			at := s.Mark()
			a.LastUsed, err = readInt64(s)
			return kept(s, x, "lastUsed", at, err)
		case "lastRefreshedAt":
			at := s.Mark()
			a.LastRefreshedAt, err = readInt64(s)
			return kept(s, x, "lastRefreshedAt", at, err)
		case "lastRefreshError":
			at := s.Mark()
			a.LastRefreshError, err = readPtr(s, decodeOpError)
			return kept(s, x, "lastRefreshError", at, err)
		case "lastQuotaRefreshError":
			at := s.Mark()
			a.LastQuotaRefreshError, err = readPtr(s, decodeOpError)
			return kept(s, x, "lastQuotaRefreshError", at, err)
		case "quota":
			at := s.Mark()
			a.Quota, err = readPtr(s, decodeQuotaSnapshot)
			return kept(s, x, "quota", at, err)
		case "profile":
			at := s.Mark()
			a.Profile, err = readRaw(s)
			return kept(s, x, "profile", at, err)
		case "rateLimited":
			at := s.Mark()
			a.RateLimited, err = readPtr(s, decodeSpentWindows)
			return kept(s, x, "rateLimited", at, err)
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
			at := s.Mark()
			m.Quota, err = readPtr(s, decodeQuotaSnapshot)
			return kept(s, x, "quota", at, err)
		case "quotaCheckedAt":
			at := s.Mark()
			m.QuotaCheckedAt, err = readInt64(s)
			return kept(s, x, "quotaCheckedAt", at, err)
		case "quotaToken":
			at := s.Mark()
			m.QuotaToken, err = readString(s)
			return kept(s, x, "quotaToken", at, err)
		case "lastQuotaApiError":
			at := s.Mark()
			m.LastQuotaAPIError, err = readPtr(s, decodeOpError)
			return kept(s, x, "lastQuotaApiError", at, err)
		case "quotaErrorGeneration":
			at := s.Mark()
			m.QuotaErrorGeneration, err = readInt64(s)
			return kept(s, x, "quotaErrorGeneration", at, err)
		case "quotaErrorClearedAt":
			at := s.Mark()
			m.QuotaErrorClearedAt, err = readInt64(s)
			return kept(s, x, "quotaErrorClearedAt", at, err)
		case "lastRefreshError":
			at := s.Mark()
			m.LastRefreshError, err = readPtr(s, decodeOpError)
			return kept(s, x, "lastRefreshError", at, err)
		case "refreshErrorClearedAt":
			at := s.Mark()
			m.RefreshErrorClearedAt, err = readInt64(s)
			return kept(s, x, "refreshErrorClearedAt", at, err)
		case "refreshLeaseId":
			at := s.Mark()
			m.RefreshLeaseID, err = readString(s)
			return kept(s, x, "refreshLeaseId", at, err)
		case "refreshLeaseUntil":
			at := s.Mark()
			m.RefreshLeaseUntil, err = readInt64(s)
			return kept(s, x, "refreshLeaseUntil", at, err)
		case "refreshLeaseTokenHash":
			at := s.Mark()
			m.RefreshLeaseTokenHash, err = readString(s)
			return kept(s, x, "refreshLeaseTokenHash", at, err)
		case "profile":
			at := s.Mark()
			m.Profile, err = readRaw(s)
			return kept(s, x, "profile", at, err)
		case "rateLimited":
			at := s.Mark()
			m.RateLimited, err = readPtr(s, decodeSpentWindows)
			return kept(s, x, "rateLimited", at, err)
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
			at := s.Mark()
			st.Version, err = readInt(s)
			return kept(s, x, "version", at, err)
		case "main":
			at := s.Mark()
			st.Main, err = readPtr(s, decodeMainState)
			return kept(s, x, "main", at, err)
		case "accounts":
			at := s.Mark()
			st.Accounts, err = readPtrMap(s, "an object of account states", decodeAccountState)
			return kept(s, x, "accounts", at, err)
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
			at := s.Mark()
			a.ID, err = readString(s)
			return kept(s, x, "id", at, err)
		case "label":
			at := s.Mark()
			a.Label, err = readString(s)
			return kept(s, x, "label", at, err)
		case "type":
			at := s.Mark()
			var t string
			t, err = readString(s)
			a.Type = AccountType(t)
			return kept(s, x, "type", at, err)
		case "enabled":
			at := s.Mark()
			a.Enabled, err = readBoolPtr(s)
			return kept(s, x, "enabled", at, err)
		case "addedAt":
			at := s.Mark()
			a.AddedAt, err = readInt64(s)
			return kept(s, x, "addedAt", at, err)
		case "baseURL":
			at := s.Mark()
			a.BaseURL, err = readString(s)
			return kept(s, x, "baseURL", at, err)
		case "authHeader":
			at := s.Mark()
			a.AuthHeader, err = readString(s)
			return kept(s, x, "authHeader", at, err)
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
			at := s.Mark()
			c.Version, err = readInt(s)
			return kept(s, x, "version", at, err)
		case "mainAccountId":
			at := s.Mark()
			c.MainAccountID, err = readString(s)
			return kept(s, x, "mainAccountId", at, err)
		case "main":
			at := s.Mark()
			c.Main, err = readRaw(s)
			return kept(s, x, "main", at, err)
		case "accounts":
			at := s.Mark()
			c.Accounts, err = readAccountConfigs(s)
			return kept(s, x, "accounts", at, err)
		}
		return unknown(s, x, key)
	})
}

func decodeRoutingAssignment(s *jsonscan.Scanner, a *RoutingAssignment) error {
	*a = RoutingAssignment{}
	x := &a.Extra
	return decodeObject(s, "a sticky assignment", func(key []byte) error {
		var err error
		switch string(key) {
		case "accountId":
			at := s.Mark()
			a.AccountID, err = readString(s)
			return kept(s, x, "accountId", at, err)
		case "family":
			at := s.Mark()
			a.Family, err = readString(s)
			return kept(s, x, "family", at, err)
		case "affinityModelId":
			at := s.Mark()
			a.AffinityModelID, err = readString(s)
			return kept(s, x, "affinityModelId", at, err)
		case "assignedAt":
			at := s.Mark()
			a.AssignedAt, err = readInt64(s)
			return kept(s, x, "assignedAt", at, err)
		case "lastSeenAt":
			at := s.Mark()
			a.LastSeenAt, err = readInt64(s)
			return kept(s, x, "lastSeenAt", at, err)
		case "initialInputBytes":
			at := s.Mark()
			a.InitialInputBytes, err = readInt64(s)
			return kept(s, x, "initialInputBytes", at, err)
		case "quotaCheckedAt":
			at := s.Mark()
			a.QuotaCheckedAt, err = readInt64(s)
			return kept(s, x, "quotaCheckedAt", at, err)
		}
		return unknown(s, x, key)
	})
}

func decodeRoutingStateFile(s *jsonscan.Scanner, f *RoutingStateFile) error {
	*f = RoutingStateFile{}
	x := &f.Extra
	return decodeObject(s, "a routing state file", func(key []byte) error {
		var err error
		switch string(key) {
		case "version":
			at := s.Mark()
			f.Version, err = readInt(s)
			return kept(s, x, "version", at, err)
		case "updatedAt":
			at := s.Mark()
			f.UpdatedAt, err = readInt64(s)
			return kept(s, x, "updatedAt", at, err)
		case "assignments":
			at := s.Mark()
			f.Assignments, err = readPtrMap(s, "an object of assignments", decodeRoutingAssignment)
			return kept(s, x, "assignments", at, err)
		}
		return unknown(s, x, key)
	})
}
