// Package secret keeps credentials out of text: [Secret] is a token or API
// key that formats as a placeholder, and [Redact] is the one function that
// strips credential-shaped substrings and known secrets from text before it
// reaches a log line, an error, a file, an RPC result or a plugin.
//
// It is a leaf (standard library and goccy/go-json only), shared by the
// engine, the plugin host and the commands.
package secret
