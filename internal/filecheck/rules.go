package filecheck

// The structural rules of `acctpool check`, as data: one row per key of the
// upstream file shapes (docs/BEHAVIOUR.md §1.3 to §1.5). check walks each
// file and applies the rows whose path matches; the checks that relate
// several keys (duplicate ids, unknown account ids, permissions) are code in
// check.go.
//
// A path is dot-separated keys; "*" matches every key of an object and "[]"
// every item of an array ("accounts[].type", "accounts.*.quota").

// fileKind names one of the three files.
type fileKind int

const (
	configFile fileKind = iota
	stateFile
	routingFile
)

// valueKind is the JSON type a rule wants.
type valueKind int

const (
	kindObject valueKind = iota
	kindArray
	kindString
	kindBool
	kindNumber
	kindInteger
	kindEnum
	kindTimestamp // a string in RFC 3339
	kindNumberOrNull
)

// Severity says whether a finding stops the file from being used.
type Severity string

// The severities of a finding.
const (
	// SevError: acctpool cannot use the file (or the entry) as it is.
	SevError Severity = "error"
	// SevWarning: acctpool uses a default or skips the value; the rest works.
	SevWarning Severity = "warning"
)

// checkRule is one row of the table.
type checkRule struct {
	file fileKind
	path string
	kind valueKind
	// min and max bound numbers, when set.
	min, max *float64
	// enum lists the accepted strings of kindEnum.
	enum []string
	// required makes a missing key a finding (within a present parent).
	required bool
	// sev is the Severity of a mismatch.
	sev Severity
	// expected says what the value should be, for the user.
	expected string
	// effect says what happens with a bad value: the default used, or
	// what is skipped.
	effect string
	// secret hides the value found: only its type is shown.
	secret bool
	// missing and missingEffect, when set, replace sev and effect for a
	// required key that is absent.
	missing       Severity
	missingEffect string
	// rangeSev and rangeEffect, when set, replace sev and effect for a
	// value of the right type outside min..max (or, for a timestamp, a
	// string that does not parse).
	rangeSev    Severity
	rangeEffect string
}

func num(f float64) *float64 { return &f }

// Effects shared by many rows.
const (
	effectIgnored    = "the value is ignored"
	effectNotLoaded  = "the file cannot be loaded until this is fixed"
	effectRecordSkip = "the record is ignored"
)

var thresholdKeys = []string{"five_hour", "5h", "seven_day", "1w", "scoped"}

// checkRules is the table. Order matters only for the output order of
// findings at the same path.
var checkRules = func() []checkRule {
	r := []checkRule{
		// anthropic-auth.json (BEHAVIOUR.md §1.3)
		{file: configFile, path: "version", kind: kindInteger, min: num(1), max: num(1), sev: SevWarning, expected: "1", effect: "read as version 1"},
		{file: configFile, path: "mainAccountId", kind: kindString, sev: SevError, expected: "a UUID string", effect: effectNotLoaded},
		{file: configFile, path: "main", kind: kindObject, sev: SevWarning, expected: `an object such as {"type":"opencode","provider":"anthropic"}`, effect: effectIgnored},
		{file: configFile, path: "routing", kind: kindObject, sev: SevError, expected: "an object", effect: effectNotLoaded},
		{file: configFile, path: "routing.mode", kind: kindEnum, enum: []string{"main-first", "fallback-first", "sticky-balanced"}, sev: SevWarning, expected: "main-first, fallback-first or sticky-balanced", effect: "default used: main-first"},
		{file: configFile, path: "fallbackOn", kind: kindArray, sev: SevError, expected: "an array of HTTP statuses", effect: effectNotLoaded},
		{file: configFile, path: "fallbackOn[]", kind: kindInteger, min: num(100), max: num(599), sev: SevWarning, expected: "an HTTP status (integer 100..599)", effect: "the entry is ignored (an empty list means [401, 403, 429])"},
		{file: configFile, path: "refresh", kind: kindObject, sev: SevError, expected: "an object", effect: effectNotLoaded},
		{file: configFile, path: "refresh.enabled", kind: kindBool, sev: SevWarning, expected: "true or false", effect: "default used: true"},
		{file: configFile, path: "refresh.intervalMinutes", kind: kindNumber, min: num(0), sev: SevWarning, expected: "a number of minutes", effect: "default used: the built-in pass every 60 s plus jitter"},
		{file: configFile, path: "refresh.refreshBeforeExpiryMinutes", kind: kindNumber, min: num(240), sev: SevWarning, expected: "a number of minutes, at least 240", effect: "default used: 240 (tokens are refreshed at least 4 h before expiry)"},
		{file: configFile, path: "quota", kind: kindObject, sev: SevError, expected: "an object", effect: effectNotLoaded},
		{file: configFile, path: "quota.enabled", kind: kindBool, sev: SevWarning, expected: "true or false", effect: "default used: fallback quota checks on, main quota routing off"},
		{file: configFile, path: "quota.checkIntervalMinutes", kind: kindNumber, min: num(1), sev: SevWarning, expected: "a number of minutes, at least 1", effect: "default used: 1 for values below 1 (5 when absent)"},
		{file: configFile, path: "quota.refreshEveryNRequests", kind: kindInteger, min: num(0), sev: SevWarning, expected: "a whole number, 0 or more", effect: "default used: 0 (off)"},
		{file: configFile, path: "quota.minimumRemaining", kind: kindObject, sev: SevError, expected: "an object of percentages (five_hour, seven_day)", effect: effectNotLoaded},
		{file: configFile, path: "quota.failClosedOnUnknownQuota", kind: kindBool, sev: SevWarning, expected: "true or false", effect: "default used: true"},
		{file: configFile, path: "killswitch", kind: kindObject, sev: SevError, expected: "an object", effect: effectNotLoaded},
		{file: configFile, path: "killswitch.enabled", kind: kindBool, sev: SevWarning, expected: "true or false", effect: "default used: false"},
		{file: configFile, path: "killswitch.main", kind: kindObject, sev: SevError, expected: "an object of percentages (five_hour, seven_day, scoped)", effect: effectNotLoaded},
		{file: configFile, path: "killswitch.accounts", kind: kindObject, sev: SevError, expected: "an object keyed by account id", effect: effectNotLoaded},
		{file: configFile, path: "killswitch.accounts.*", kind: kindObject, sev: SevError, expected: "an object of percentages (five_hour, seven_day, scoped)", effect: effectNotLoaded},
		{file: configFile, path: "accounts", kind: kindArray, sev: SevError, expected: "an array of accounts", effect: effectNotLoaded},
		{file: configFile, path: "accounts[]", kind: kindObject, sev: SevError, expected: "an account object", effect: effectNotLoaded},
		{file: configFile, path: "accounts[].id", kind: kindString, required: true, sev: SevError, expected: "a non-empty string", effect: effectNotLoaded},
		{file: configFile, path: "accounts[].label", kind: kindString, sev: SevError, expected: "a string", effect: effectNotLoaded},
		{file: configFile, path: "accounts[].type", kind: kindEnum, enum: []string{"oauth", "api"}, required: true, sev: SevError, expected: "oauth or api", effect: "the account cannot be used"},
		{file: configFile, path: "accounts[].enabled", kind: kindBool, sev: SevError, expected: "true or false", effect: effectNotLoaded},
		{file: configFile, path: "accounts[].addedAt", kind: kindNumber, min: num(0), sev: SevError, expected: "epoch milliseconds", effect: effectNotLoaded},
		{file: configFile, path: "accounts[].baseURL", kind: kindString, sev: SevError, expected: "an http(s) URL", effect: "the account cannot be used"},
		{file: configFile, path: "accounts[].authHeader", kind: kindEnum, enum: []string{"x-api-key", "authorization-bearer"}, sev: SevWarning, expected: "x-api-key or authorization-bearer", effect: "default used: authorization-bearer"},
		{file: configFile, path: "plugins", kind: kindArray, sev: SevError, expected: "an array of plugin manifests", effect: "no plugin is loaded"},
		{file: configFile, path: "alerts", kind: kindObject, sev: SevWarning, expected: "an object", effect: effectIgnored},
		{file: configFile, path: "alerts.webhook", kind: kindString, sev: SevWarning, expected: "an http(s) URL", effect: "no webhook is called"},

		// anthropic-auth-state.json (BEHAVIOUR.md §1.4)
		{file: stateFile, path: "version", kind: kindInteger, sev: SevWarning, expected: "1", effect: "read as version 1"},
		{file: stateFile, path: "main", kind: kindObject, sev: SevError, expected: "an object", effect: effectNotLoaded},
		{file: stateFile, path: "accounts", kind: kindObject, sev: SevError, expected: "an object keyed by account id", effect: effectNotLoaded},
		{file: stateFile, path: "accounts.*", kind: kindObject, sev: SevError, expected: "an object", effect: effectNotLoaded},
		{file: stateFile, path: "accounts.*.access", kind: kindString, sev: SevError, secret: true, expected: "a string", effect: effectNotLoaded},
		{file: stateFile, path: "accounts.*.refresh", kind: kindString, sev: SevError, secret: true, expected: "a string", effect: effectNotLoaded},
		{file: stateFile, path: "accounts.*.apiKey", kind: kindString, sev: SevError, secret: true, expected: "a string", effect: effectNotLoaded},
		{file: stateFile, path: "accounts.*.expires", kind: kindNumber, sev: SevError, expected: "epoch milliseconds", effect: effectNotLoaded},
		{file: stateFile, path: "accounts.*.lastUsed", kind: kindNumber, sev: SevError, expected: "epoch milliseconds", effect: effectNotLoaded},
		{file: stateFile, path: "accounts.*.lastRefreshedAt", kind: kindNumber, sev: SevError, expected: "epoch milliseconds", effect: effectNotLoaded},
	}
	// Threshold objects: percentages, null meaning the default.
	for _, parent := range []struct{ path, def string }{
		{"quota.minimumRemaining", "0"},
		{"killswitch.main", "5 for 5h, 10 for 7d, 0 for scoped"},
		{"killswitch.accounts.*", "killswitch.main's value"},
	} {
		for _, k := range thresholdKeys {
			r = append(r, checkRule{file: configFile, path: parent.path + "." + k, kind: kindNumberOrNull, min: num(0), max: num(100),
				sev: SevWarning, expected: "a percentage 0..100 (or null)", effect: "default used: " + parent.def})
		}
	}
	// Operation errors and quota snapshots, in main and in every account.
	for _, owner := range []string{"main", "accounts.*"} {
		errs := []string{"lastRefreshError", "lastQuotaRefreshError"}
		if owner == "main" {
			errs = []string{"lastRefreshError", "lastQuotaApiError"}
		}
		for _, e := range errs {
			p := owner + "." + e
			r = append(r,
				checkRule{file: stateFile, path: p, kind: kindObject, sev: SevError, expected: "an object {message, checkedAt, ...}", effect: effectNotLoaded},
				checkRule{file: stateFile, path: p + ".message", kind: kindString, required: true, sev: SevError, expected: "a string", effect: effectNotLoaded, missing: SevWarning, missingEffect: effectRecordSkip},
				checkRule{file: stateFile, path: p + ".checkedAt", kind: kindNumber, required: true, sev: SevError, expected: "epoch milliseconds", effect: effectNotLoaded, missing: SevWarning, missingEffect: effectRecordSkip},
				checkRule{file: stateFile, path: p + ".nextRetryAt", kind: kindNumber, sev: SevError, expected: "epoch milliseconds", effect: effectNotLoaded},
			)
		}
		q := owner + ".quota"
		r = append(r,
			checkRule{file: stateFile, path: q, kind: kindObject, sev: SevError, expected: "a quota snapshot object", effect: effectNotLoaded},
			checkRule{file: stateFile, path: q + ".scoped", kind: kindArray, sev: SevError, expected: "an array of model windows", effect: effectNotLoaded},
		)
		for _, w := range []string{q + ".five_hour", q + ".seven_day", q + ".scoped[]"} {
			r = append(r,
				checkRule{file: stateFile, path: w, kind: kindObject, sev: SevError, expected: "a window {usedPercent, remainingPercent, resetsAt, checkedAt}", effect: effectNotLoaded},
				checkRule{file: stateFile, path: w + ".remainingPercent", kind: kindNumber, min: num(0), max: num(100), sev: SevError, expected: "a percentage 0..100", effect: effectNotLoaded, rangeSev: SevWarning, rangeEffect: "read as the nearest of 0 and 100"},
				checkRule{file: stateFile, path: w + ".usedPercent", kind: kindNumber, min: num(0), max: num(100), sev: SevError, expected: "a percentage 0..100", effect: effectNotLoaded, rangeSev: SevWarning, rangeEffect: "read as the nearest of 0 and 100"},
				checkRule{file: stateFile, path: w + ".resetsAt", kind: kindTimestamp, sev: SevError, expected: "an RFC 3339 time", effect: effectNotLoaded, rangeSev: SevWarning, rangeEffect: "the reset is unknown"},
				checkRule{file: stateFile, path: w + ".checkedAt", kind: kindNumber, sev: SevError, expected: "epoch milliseconds", effect: effectNotLoaded},
			)
		}
	}
	// anthropic-auth-routing-state.json (BEHAVIOUR.md §1.5)
	r = append(r,
		checkRule{file: routingFile, path: "version", kind: kindInteger, sev: SevWarning, expected: "1", effect: "read as version 1"},
		checkRule{file: routingFile, path: "assignments", kind: kindObject, sev: SevError, expected: "an object keyed by session hash", effect: "sticky assignments are not used"},
		checkRule{file: routingFile, path: "assignments.*", kind: kindObject, sev: SevWarning, expected: "an assignment object", effect: "the assignment is dropped"},
		checkRule{file: routingFile, path: "assignments.*.accountId", kind: kindString, required: true, sev: SevWarning, expected: "an account id", effect: "the assignment is dropped"},
		checkRule{file: routingFile, path: "assignments.*.lastSeenAt", kind: kindNumber, sev: SevWarning, expected: "epoch milliseconds", effect: "the assignment is dropped"},
		checkRule{file: routingFile, path: "assignments.*.assignedAt", kind: kindNumber, sev: SevWarning, expected: "epoch milliseconds", effect: "the assignment is dropped"},
	)
	return r
}()
