// Package plugincheck implements "acctpool plugin check" and "acctpool
// plugin init", the tools for classification-plugin authors and their CI.
//
// check ([Check]) loads a plugin through plugins.NewHost, exactly as the
// server does (manifest limits, sha256, ABI validation, _initialize), and
// classifies a built-in corpus of realistic upstream failures (corpus.json:
// every row of the classification table) plus the author's own cases
// ([ParseCases]). For each it reports the built-in verdict, the plugin's,
// the consequences that would differ (verdict.EffectOf and the backoff
// schedules), and any fault with its kind; a fault, a rejected plugin or
// an unmet expectation fails the check. Reports are a table, JSON, or
// JUnit XML (conformance/junit).
//
// init ([Init]) writes a starter plugin in Go (plugins/sdk) or
// AssemblyScript from the embedded templates/ that builds and passes check.
//
// cmd/acctpool wires both through [Main]. plugincheck imports core,
// plugins and conformance/junit.
package plugincheck
