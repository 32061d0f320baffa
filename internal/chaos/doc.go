// Package chaos holds the multi-server chaos run of the PostgreSQL store
// (test only; `go test ./internal/chaos -run TestChaos -v`): several real
// server processes, each with a home directory of its own as if on its
// own machine, share one database and are hammered over their stdio
// JSON-RPC while some are killed with SIGKILL and started again. See
// chaos_test.go for what it asserts and the figures it prints.
package chaos
