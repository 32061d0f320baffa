package hostfuncs

// Import is one import a plugin module may declare, with the reason it is
// allowed. The reason is documentation that travels with the table, so a
// reviewer widening the list has to say why.
type Import struct {
	// Module is the import module, [ModuleEnv] or [ModuleWASI].
	Module string
	// Name is the function's name within Module.
	Name string
	// Reason says why a plugin may import it.
	Reason string
}

// The import modules of the table.
const (
	// ModuleEnv holds the host functions acctpool itself provides.
	ModuleEnv = "env"
	// ModuleWASI is WASI preview1, satisfied without capabilities.
	ModuleWASI = "wasi_snapshot_preview1"
)

// allowList is the one table of permitted imports. Everything else is
// rejected when a module is loaded.
var allowList = [...]Import{
	{ModuleEnv, "errclass_log", "the only acctpool host function: bounded, sanitised logging to slog"},
	{ModuleWASI, "args_get", "Go and wasi-libc runtimes read args at start; there are none"},
	{ModuleWASI, "args_sizes_get", "pairs with args_get; reports zero args"},
	{ModuleWASI, "environ_get", "Go and wasi-libc runtimes read the environment at start; it is empty"},
	{ModuleWASI, "environ_sizes_get", "pairs with environ_get; reports an empty environment"},
	{ModuleWASI, "clock_time_get", "Go's runtime needs a clock; wazero's fake clock advances 1 ms per read"},
	{ModuleWASI, "random_get", "Go's runtime seeds its maps; the source is deterministic"},
	{ModuleWASI, "fd_write", "panic and print output; stdout and stderr go to a bounded buffer"},
	{ModuleWASI, "fd_close", "wasi-libc stdio; no descriptor is open beyond 0-2"},
	{ModuleWASI, "fd_seek", "wasi-libc stdio; fails on the standard streams"},
	{ModuleWASI, "proc_exit", "a guest that exits ends its own instance, which the host discards"},
	{ModuleWASI, "sched_yield", "Go's runtime yields; the host's yield is a no-op"},
	{ModuleWASI, "poll_oneoff", "Go's runtime sleeps through it; sleeping returns at once"},
}

// Allowed reports whether a plugin may import module.name.
func Allowed(module, name string) bool {
	for _, imp := range allowList {
		if imp.Module == module && imp.Name == name {
			return true
		}
	}
	return false
}

// AllowList returns a copy of the table of permitted imports, in the order
// it is documented.
func AllowList() []Import {
	out := make([]Import, len(allowList))
	copy(out, allowList[:])
	return out
}
