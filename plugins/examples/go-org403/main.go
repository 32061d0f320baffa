// Command go-org403 is an example acctpool classification plugin: it
// treats a 403 from one organisation as invalid_grant, so acctpool stops
// refreshing that account's token instead of parking it as an org policy
// failure. Build it with GOOS=wasip1 GOARCH=wasm (see README.md).
package main

import (
	"strings"

	"github.com/acctpool/acctpool/plugins/sdk"
)

// revokedOrg is the organisation whose 403s mean our grant was revoked.
const revokedOrg = "org-acme-0001"

func init() { sdk.Handle(Classify) }

// Classify treats revokedOrg's 403s as invalid_grant and has no opinion
// about anything else.
func Classify(in sdk.Input) (sdk.Verdict, bool) {
	if in.Status != 403 {
		return sdk.Verdict{}, false
	}
	if in.Headers["anthropic-organization-id"] != revokedOrg && !strings.Contains(in.Body, revokedOrg) {
		return sdk.Verdict{}, false
	}
	v := in.Builtin
	v.Class = sdk.ClassInvalidGrant
	v.Reason = "403 from " + revokedOrg + ": grant revoked by the organisation"
	return v, true
}

func main() {}
