package record

import "github.com/acctpool/acctpool/core/internal/jsonscan"

// RoutingAssignment is one sticky session's account in
// anthropic-auth-routing-state.json, keyed in the file by the sha256 hex of
// the session id (never the id itself).
type RoutingAssignment struct {
	AccountID         string `json:"accountId"`
	Family            string `json:"family"`
	AffinityModelID   string `json:"affinityModelId,omitempty"`
	AssignedAt        int64  `json:"assignedAt"`
	LastSeenAt        int64  `json:"lastSeenAt"`
	InitialInputBytes int64  `json:"initialInputBytes"`
	QuotaCheckedAt    int64  `json:"quotaCheckedAt"`
	Extra             Extra  `json:"-"`
}

// UnmarshalJSON decodes the object in one pass, keeping unknown keys in
// Extra (decode.go).
func (a *RoutingAssignment) UnmarshalJSON(b []byte) error {
	return decodeDoc(b, func(s *jsonscan.Scanner) error { return decodeRoutingAssignment(s, a) })
}

// MarshalJSON writes the object once, unknown keys after the known ones
// (encode.go).
func (a RoutingAssignment) MarshalJSON() ([]byte, error) { return encodeDoc("", a.encodeJSON) }

// RoutingStateFile is anthropic-auth-routing-state.json: the sticky
// sessions' assignments (BEHAVIOUR.md §1.5).
type RoutingStateFile struct {
	Version     int                           `json:"version"`
	UpdatedAt   int64                         `json:"updatedAt"`
	Assignments map[string]*RoutingAssignment `json:"assignments"`
	Extra       Extra                         `json:"-"`
}

// UnmarshalJSON decodes the file in one pass, keeping unknown keys in
// Extra (decode.go).
func (f *RoutingStateFile) UnmarshalJSON(b []byte) error {
	return decodeDoc(b, func(s *jsonscan.Scanner) error { return decodeRoutingStateFile(s, f) })
}

// MarshalJSON writes the file once, unknown keys after the known ones
// (encode.go); an absent assignments object is written as {}.
func (f RoutingStateFile) MarshalJSON() ([]byte, error) {
	return encodeSized("", &routingSize, f.encodeJSON)
}
