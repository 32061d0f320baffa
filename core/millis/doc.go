// Package millis is the one conversion of a millisecond count read from
// outside (RPC params, plugin output, plugin manifests, the config file)
// into a [time.Duration], range-checked before it multiplies. It is a leaf:
// it imports only the standard library, so the plugin host and the engine
// share it without importing each other.
//
// Entry point: [Duration]; out of range is a *[RangeError].
package millis
