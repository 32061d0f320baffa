// Package cli holds the terminal commands of the acctpool binary: looking
// at the pool (status, statusline), checking the files (check), and
// managing accounts (login, accounts, add-key). Each command reads and
// writes the same files under the same locks as the server, so it is safe
// while a server or the upstream TypeScript plugin runs.
//
// Every command is a [Command]; cmd/acctpool's subcommand table maps a name
// to one:
//
//	status       Status       every account, its quota bars and the next route
//	statusline   Statusline   one short line for editor and shell status bars
//	check        Check        validate config, state, routing state, plugin manifests
//	login        Login        add (or --replace) an OAuth fallback through PKCE
//	accounts     Accounts     list | remove | enable | disable | move | reset-backoff
//	add-key      AddKey       add an API-key route; the key comes from stdin
//
// Commands never print a token or key. They judge time on the system clock,
// or on --now for reproducible output.
package cli

import "io"

// Command is the signature of every subcommand: it parses args, reads
// stdin, writes stdout and stderr, looks up environment variables through
// env, and returns the process exit status.
type Command func(args []string, stdin io.Reader, stdout, stderr io.Writer, env func(string) string) int
