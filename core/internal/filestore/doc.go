// Package filestore is the file layer of the store: reading
// anthropic-auth.json and anthropic-auth-state.json (a missing file is not
// an error, a corrupt one is and is never overwritten), writing them and
// the routing-state file atomically with mode 0600, and the upstream
// lock-file protocol around every write (BEHAVIOUR.md §1.7): the config and
// state write locks, named locks beside the config (refresh and quota-poll
// locks) and the routing-state file's write lock. It also reserves the
// disk room a token rotation's save needs before the token is consumed.
//
// It knows the documents (core/record) but not the engine: what a write
// changes, the snapshot built from the files and the observations written
// behind are core's.
//
// It may import the standard library, goccy/go-json, core/record and
// core/internal/{atomicfile,lockfile}; only core imports it. Entry points:
// [Files] (ReadConfig, ReadState, WithLock, Acquire, RetryLost,
// ReserveState, UpdateRoutingState), [WriteIfChanged], [StampOf].
package filestore
