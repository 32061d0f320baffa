// Package anthropic is acctpool's client of Anthropic's OAuth endpoints: the
// token endpoint (refresh and the PKCE code exchange), the usage endpoint
// and the profile endpoint, with the request headers upstream sends and the
// parsers of their answers (BEHAVIOUR.md §2.1 and §3.1). It performs HTTP
// and parses; it decides nothing: a failed call comes back as a
// [verdict.Failure] for the engine to classify and record.
//
// It may import the standard library, goccy/go-json and core's leaf and
// document packages (core/verdict, core/secret, core/record); only core
// imports it. Entry points: [Client] (Refresh, Exchange, Usage, Profile,
// Failure), [AuthorizeURL], [ParseUsage], [QuotaFromHeaders],
// [SpentFromHeaders].
package anthropic
