package core

import (
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"testing"
)

// childRoleEnv names the role a re-executed core test binary plays. It is
// the one harness of core's process tests: childCommand starts the binary
// in a role, TestChild runs that role's body.
const childRoleEnv = "ACCTPOOL_TEST_CHILD"

// childRoles are the bodies of the roles, each in the file of its tests.
// A body's error makes the child exit 1 after printing it to stderr.
var childRoles = map[string]func() error{
	// durability_process_test.go, durability_enospc_test.go
	"durable-refresh": durableRefreshChild,
	"reserve":         reserveChild,
	"rotation-hammer": rotationHammerChild,
	"fsizelimit":      fsizeLimitChild,
	// store_process_test.go
	"store-hammer":   hammerChild,
	"killwrite":      killWriteChild,
	"refreshaccount": refreshAccountChild,
	// refresh_process_test.go
	"refresh-race": func() error {
		if code := refreshChild(); code != 0 {
			return fmt.Errorf("refresh child exited %d", code)
		}
		return nil
	},
	// writebehind_process_test.go
	"write-behind": func() error { return writeBehindChild(os.Getenv("ACCTPOOL_DIR")) },
}

// TestChild is the body of a re-executed child process; in a normal run
// it has nothing to do and returns at once.
func TestChild(t *testing.T) {
	role := os.Getenv(childRoleEnv)
	if role == "" {
		return
	}
	body, ok := childRoles[role]
	if !ok {
		roles := make([]string, 0, len(childRoles))
		for r := range childRoles {
			roles = append(roles, r)
		}
		sort.Strings(roles)
		fmt.Fprintf(os.Stderr, "child: unknown role %q (known: %s)\n", role, strings.Join(roles, ", "))
		os.Exit(1)
	}
	if err := body(); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// childCommand is this test binary re-executed as role, with env added to
// the parent's environment; the caller wires its pipes and starts it.
func childCommand(role string, env ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^TestChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), append([]string{childRoleEnv + "=" + role}, env...)...)
	return cmd
}
