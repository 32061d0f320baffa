package record

import (
	"slices"
	"sync/atomic"

	"github.com/acctpool/acctpool/core/internal/jsonscan"
)

// The document types' encoders: each object is written once, its known
// fields in declaration order (omitempty as their tags say) and then its
// unknown keys, sorted, raw. The output is byte for byte what
// goccy/go-json gave for the same documents when they were encoded by
// Marshal-then-splice (compact, or indented by 2 spaces for files).

// encodeDoc runs encode on a writer of the given indent and returns the
// bytes.
func encodeDoc(indent string, encode func(w *jsonscan.Writer) error) ([]byte, error) {
	return encodeSized(indent, nil, encode)
}

// encodeSized is encodeDoc for the files: hint holds the size of the
// last one encoded, the guess for the next one's buffer (a file stays
// about the same size from write to write), so the buffer is not grown
// and copied a dozen times on the way.
func encodeSized(indent string, hint *atomic.Int64, encode func(w *jsonscan.Writer) error) ([]byte, error) {
	size := 512
	if hint != nil {
		size += int(hint.Load())
	}
	w := jsonscan.NewWriterSize(indent, size)
	if err := encode(w); err != nil {
		return nil, err
	}
	out := w.Bytes()
	if hint != nil {
		hint.Store(int64(len(out)))
	}
	return out, nil
}

// fileSize and routingSize are the size hints of the indented files and
// of the routing state.
var fileSize, routingSize atomic.Int64

// EncodeFile encodes v, a pointer to one of the documents (ConfigFile,
// StateFile, RoutingStateFile and the others with their own encoder), in
// the upstream file layout, indented by 2 spaces, in one pass; ok is false
// when v is not one of them. The buffer is sized from the last file
// encoded.
func EncodeFile(v any) (data []byte, ok bool, err error) {
	d, ok := v.(docEncoder)
	if !ok {
		return nil, false, nil
	}
	data, err = encodeSized("  ", &fileSize, d.encodeJSON)
	return data, true, err
}

// docEncoder is implemented by the document types, so that a file is
// written in one pass (encodeFile) rather than marshalled and indented.
type docEncoder interface {
	encodeJSON(w *jsonscan.Writer) error
}

// writeExtra writes the unknown keys of x, sorted, leaving out the names
// skip reports (known fields, and keys never to write back).
func writeExtra(w *jsonscan.Writer, x Extra, skip func(string) bool) error {
	if len(x) == 0 {
		return nil
	}
	keys := make([]string, 0, len(x))
	for k := range x {
		if !skip(k) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		w.Key(k)
		if err := w.Raw(x[k]); err != nil {
			return err
		}
	}
	return nil
}

func strField(w *jsonscan.Writer, key, v string) {
	if v != "" {
		w.Key(key)
		w.String(v)
	}
}

func intField(w *jsonscan.Writer, key string, v int64) {
	if v != 0 {
		w.Key(key)
		w.Int(v)
	}
}

func rawField(w *jsonscan.Writer, key string, v []byte) error {
	if len(v) == 0 {
		return nil
	}
	w.Key(key)
	return w.Raw(v)
}

func boolPtrField(w *jsonscan.Writer, key string, v *bool) {
	if v != nil {
		w.Key(key)
		w.Bool(*v)
	}
}

var opErrorKeys = []string{"message", "checkedAt", "nextRetryAt", "retryCount", "accountIdentity", "tokenHash", "refreshTokenFingerprint", "status", "permanent", "class", "decidedBy"}

func (e *OpError) encodeJSON(w *jsonscan.Writer) error {
	w.Open('{')
	w.Key("message")
	w.String(e.Message)
	w.Key("checkedAt")
	w.Int(e.CheckedAt)
	intField(w, "nextRetryAt", e.NextRetryAt)
	intField(w, "retryCount", int64(e.RetryCount))
	strField(w, "accountIdentity", e.AccountIdentity)
	strField(w, "tokenHash", e.TokenHash)
	strField(w, "refreshTokenFingerprint", e.RefreshTokenFingerprint)
	intField(w, "status", int64(e.Status))
	boolPtrField(w, "permanent", e.Permanent)
	strField(w, "class", string(e.Class))
	strField(w, "decidedBy", e.DecidedBy)
	if err := writeExtra(w, e.Extra, isOneOf(opErrorKeys)); err != nil {
		return err
	}
	w.Close('}')
	return nil
}

func isOneOf(names []string) func(string) bool {
	return func(k string) bool { return slices.Contains(names, k) }
}

func encodeQuotaWindow(w *jsonscan.Writer, q *QuotaWindow) error {
	w.Open('{')
	w.Key("usedPercent")
	w.Float(q.UsedPercent)
	w.Key("remainingPercent")
	w.Float(q.RemainingPercent)
	strField(w, "resetsAt", q.ResetsAt)
	w.Key("checkedAt")
	w.Int(q.CheckedAt)
	return closeWithExtra(w, q.Extra, quotaWindowFields)
}

// closeWithExtra writes the unknown keys of a small record and closes it.
func closeWithExtra(w *jsonscan.Writer, x Extra, known []string) error {
	if err := writeExtra(w, x, isOneOf(known)); err != nil {
		return err
	}
	w.Close('}')
	return nil
}

func encodeScopedWindow(w *jsonscan.Writer, q *ScopedWindow) error {
	w.Open('{')
	w.Key("id")
	w.String(q.ID)
	w.Key("title")
	w.String(q.Title)
	strField(w, "modelId", q.ModelID)
	w.Key("modelName")
	w.String(q.ModelName)
	w.Key("usedPercent")
	w.Float(q.UsedPercent)
	w.Key("remainingPercent")
	w.Float(q.RemainingPercent)
	strField(w, "resetsAt", q.ResetsAt)
	w.Key("checkedAt")
	w.Int(q.CheckedAt)
	return closeWithExtra(w, q.Extra, scopedWindowFields)
}

func encodeMoney(w *jsonscan.Writer, m *Money) error {
	w.Open('{')
	w.Key("amountMinor")
	w.Float(m.AmountMinor)
	w.Key("currency")
	w.String(m.Currency)
	w.Key("exponent")
	w.Int(int64(m.Exponent))
	return closeWithExtra(w, m.Extra, moneyFields)
}

func encodeExtraUsage(w *jsonscan.Writer, u *ExtraUsage) error {
	w.Open('{')
	w.Key("used")
	if err := encodeMoney(w, &u.Used); err != nil {
		return err
	}
	w.Key("limit")
	if err := encodeMoney(w, &u.Limit); err != nil {
		return err
	}
	if u.UtilizationPercent != nil {
		w.Key("utilizationPercent")
		w.Float(*u.UtilizationPercent)
	}
	strField(w, "severity", u.Severity)
	w.Key("exhausted")
	w.Bool(u.Exhausted)
	return closeWithExtra(w, u.Extra, extraUsageFields)
}

var quotaSnapshotKeys = []string{"five_hour", "seven_day", "scoped", "extraUsage", "bindingWindow", "bindingWindowSource", "fieldSources", "fallbackAdvised", "source", "accountIdentity", "checkedAt"}

func (q *QuotaSnapshot) encodeJSON(w *jsonscan.Writer) error {
	w.Open('{')
	if q.FiveHour != nil {
		w.Key("five_hour")
		if err := encodeQuotaWindow(w, q.FiveHour); err != nil {
			return err
		}
	}
	if q.SevenDay != nil {
		w.Key("seven_day")
		if err := encodeQuotaWindow(w, q.SevenDay); err != nil {
			return err
		}
	}
	if q.Scoped != nil {
		w.Key("scoped")
		w.Open('[')
		for i := range q.Scoped {
			if err := encodeScopedWindow(w, &q.Scoped[i]); err != nil {
				return err
			}
		}
		w.Close(']')
	}
	if q.ExtraUsage != nil {
		w.Key("extraUsage")
		if err := encodeExtraUsage(w, q.ExtraUsage); err != nil {
			return err
		}
	}
	strField(w, "bindingWindow", q.BindingWindow)
	strField(w, "bindingWindowSource", q.BindingWindowSource)
	if len(q.FieldSources) > 0 {
		w.Key("fieldSources")
		w.Open('{')
		for _, k := range sortedKeys(q.FieldSources) {
			w.Key(k)
			w.String(q.FieldSources[k])
		}
		w.Close('}')
	}
	boolPtrField(w, "fallbackAdvised", q.FallbackAdvised)
	strField(w, "source", q.Source)
	strField(w, "accountIdentity", q.AccountIdentity)
	intField(w, "checkedAt", q.CheckedAt)
	if err := writeExtra(w, q.Extra, isOneOf(quotaSnapshotKeys)); err != nil {
		return err
	}
	w.Close('}')
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

var spentWindowsKeys = []string{"five_hour", "seven_day", "checkedAt"}

func (s *SpentWindows) encodeJSON(w *jsonscan.Writer) error {
	w.Open('{')
	intField(w, "five_hour", s.FiveHour)
	intField(w, "seven_day", s.SevenDay)
	w.Key("checkedAt")
	w.Int(s.CheckedAt)
	if err := writeExtra(w, s.Extra, isOneOf(spentWindowsKeys)); err != nil {
		return err
	}
	w.Close('}')
	return nil
}

// docField writes a pointer to a document under key unless it is nil.
func docField[T any, P interface {
	*T
	docEncoder
}](w *jsonscan.Writer, key string, v P) error {
	if v == nil {
		return nil
	}
	w.Key(key)
	return v.encodeJSON(w)
}

var accountStateKeys = []string{"authLineageId", "anthropicAccountUuid", "access", "refresh", "expires", "apiKey", "lastUsed", "lastRefreshedAt", "lastRefreshError", "lastQuotaRefreshError", "quota", "profile", "rateLimited"}

func (a *AccountState) encodeJSON(w *jsonscan.Writer) error {
	w.Open('{')
	strField(w, "authLineageId", a.AuthLineageID)
	strField(w, "anthropicAccountUuid", a.AnthropicAccountUUID)
	strField(w, "access", string(a.Access))
	strField(w, "refresh", string(a.Refresh))
	intField(w, "expires", a.Expires)
	strField(w, "apiKey", string(a.APIKey))
	intField(w, "lastUsed", a.LastUsed)
	intField(w, "lastRefreshedAt", a.LastRefreshedAt)
	if err := docField(w, "lastRefreshError", a.LastRefreshError); err != nil {
		return err
	}
	if err := docField(w, "lastQuotaRefreshError", a.LastQuotaRefreshError); err != nil {
		return err
	}
	if err := docField(w, "quota", a.Quota); err != nil {
		return err
	}
	if err := rawField(w, "profile", a.Profile); err != nil {
		return err
	}
	if err := docField(w, "rateLimited", a.RateLimited); err != nil {
		return err
	}
	if err := writeExtra(w, a.Extra, isOneOf(accountStateKeys)); err != nil {
		return err
	}
	w.Close('}')
	return nil
}

var mainStateKeys = []string{"quota", "quotaCheckedAt", "quotaToken", "lastQuotaApiError", "quotaErrorGeneration", "quotaErrorClearedAt", "lastRefreshError", "refreshErrorClearedAt", "refreshLeaseId", "refreshLeaseUntil", "refreshLeaseTokenHash", "profile", "rateLimited"}

func (m *MainState) encodeJSON(w *jsonscan.Writer) error {
	w.Open('{')
	if err := docField(w, "quota", m.Quota); err != nil {
		return err
	}
	intField(w, "quotaCheckedAt", m.QuotaCheckedAt)
	strField(w, "quotaToken", m.QuotaToken)
	if err := docField(w, "lastQuotaApiError", m.LastQuotaAPIError); err != nil {
		return err
	}
	intField(w, "quotaErrorGeneration", m.QuotaErrorGeneration)
	intField(w, "quotaErrorClearedAt", m.QuotaErrorClearedAt)
	if err := docField(w, "lastRefreshError", m.LastRefreshError); err != nil {
		return err
	}
	intField(w, "refreshErrorClearedAt", m.RefreshErrorClearedAt)
	strField(w, "refreshLeaseId", m.RefreshLeaseID)
	intField(w, "refreshLeaseUntil", m.RefreshLeaseUntil)
	strField(w, "refreshLeaseTokenHash", m.RefreshLeaseTokenHash)
	if err := rawField(w, "profile", m.Profile); err != nil {
		return err
	}
	if err := docField(w, "rateLimited", m.RateLimited); err != nil {
		return err
	}
	if err := writeExtra(w, m.Extra, isOneOf(mainStateKeys)); err != nil {
		return err
	}
	w.Close('}')
	return nil
}

// docMap writes a map of documents in key order, a nil entry as null.
func docMap[T any, P interface {
	*T
	docEncoder
}](w *jsonscan.Writer, m map[string]P) error {
	w.Open('{')
	for _, k := range sortedKeys(m) {
		w.Key(k)
		if m[k] == nil {
			w.Null()
			continue
		}
		if err := m[k].encodeJSON(w); err != nil {
			return err
		}
	}
	w.Close('}')
	return nil
}

var stateFileKeys = []string{"version", "main", "accounts"}

func (s *StateFile) encodeJSON(w *jsonscan.Writer) error {
	w.Open('{')
	w.Key("version")
	w.Int(int64(s.Version))
	if err := docField(w, "main", s.Main); err != nil {
		return err
	}
	w.Key("accounts")
	if err := docMap(w, s.Accounts); err != nil {
		return err
	}
	if err := writeExtra(w, s.Extra, isOneOf(stateFileKeys)); err != nil {
		return err
	}
	w.Close('}')
	return nil
}

var accountConfigKeys = []string{"id", "label", "type", "enabled", "addedAt", "baseURL", "authHeader"}

func (a *AccountConfig) encodeJSON(w *jsonscan.Writer) error {
	w.Open('{')
	w.Key("id")
	w.String(a.ID)
	strField(w, "label", a.Label)
	w.Key("type")
	w.String(string(a.Type))
	boolPtrField(w, "enabled", a.Enabled)
	intField(w, "addedAt", a.AddedAt)
	strField(w, "baseURL", a.BaseURL)
	strField(w, "authHeader", a.AuthHeader)
	// Legacy inline credentials are read once and never written back.
	skip := func(k string) bool {
		return slices.Contains(accountConfigKeys, k) || slices.Contains(LegacyCredentialKeys, k)
	}
	if err := writeExtra(w, a.Extra, skip); err != nil {
		return err
	}
	w.Close('}')
	return nil
}

var configFileKeys = []string{"version", "mainAccountId", "main", "accounts"}

func (c *ConfigFile) encodeJSON(w *jsonscan.Writer) error {
	w.Open('{')
	w.Key("version")
	w.Int(int64(c.Version))
	strField(w, "mainAccountId", c.MainAccountID)
	if err := rawField(w, "main", c.Main); err != nil {
		return err
	}
	w.Key("accounts")
	w.Open('[')
	for i := range c.Accounts {
		if err := c.Accounts[i].encodeJSON(w); err != nil {
			return err
		}
	}
	w.Close(']')
	if err := writeExtra(w, c.Extra, isOneOf(configFileKeys)); err != nil {
		return err
	}
	w.Close('}')
	return nil
}

var routingAssignmentKeys = []string{"accountId", "family", "affinityModelId", "assignedAt", "lastSeenAt", "initialInputBytes", "quotaCheckedAt"}

func (a *RoutingAssignment) encodeJSON(w *jsonscan.Writer) error {
	w.Open('{')
	w.Key("accountId")
	w.String(a.AccountID)
	w.Key("family")
	w.String(a.Family)
	strField(w, "affinityModelId", a.AffinityModelID)
	w.Key("assignedAt")
	w.Int(a.AssignedAt)
	w.Key("lastSeenAt")
	w.Int(a.LastSeenAt)
	w.Key("initialInputBytes")
	w.Int(a.InitialInputBytes)
	w.Key("quotaCheckedAt")
	w.Int(a.QuotaCheckedAt)
	if err := writeExtra(w, a.Extra, isOneOf(routingAssignmentKeys)); err != nil {
		return err
	}
	w.Close('}')
	return nil
}

var routingStateFileKeys = []string{"version", "updatedAt", "assignments"}

func (f *RoutingStateFile) encodeJSON(w *jsonscan.Writer) error {
	w.Open('{')
	w.Key("version")
	w.Int(int64(f.Version))
	w.Key("updatedAt")
	w.Int(f.UpdatedAt)
	w.Key("assignments")
	if err := docMap(w, f.Assignments); err != nil {
		return err
	}
	if err := writeExtra(w, f.Extra, isOneOf(routingStateFileKeys)); err != nil {
		return err
	}
	w.Close('}')
	return nil
}
