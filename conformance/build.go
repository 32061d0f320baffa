package conformance

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
)

// ModulePath is this module's path; [BuildServer] builds only inside it.
const ModulePath = "github.com/acctpool/acctpool"

// ErrNotInModule is returned by [BuildServer] when the working directory
// is not inside a checkout of [ModulePath] (for example when the command
// runs as `go run ...@version` from another project): there is no server
// source to build, so the server command must be given.
var ErrNotInModule = errors.New("not inside a checkout of " + ModulePath)

// BuildServer compiles this module's ./cmd/stdio-server into dir with the
// given build tags and returns the binary's path. It runs the go command
// found on PATH from the root of the acctpool checkout that contains the
// working directory, and fails with [ErrNotInModule] outside one.
func BuildServer(ctx context.Context, dir string, tags ...string) (string, error) {
	root, err := moduleRoot(ctx)
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "stdio-server")
	args := []string{"build", "-o", bin}
	if len(tags) > 0 {
		args = append(args, "-tags", strings.Join(tags, ","))
	}
	args = append(args, "./cmd/stdio-server")
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build server: %w\n%s", err, out)
	}
	return bin, nil
}

func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("find module root: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("%w: the working directory is in no Go module", ErrNotInModule)
	}
	data, err := os.ReadFile(mod)
	if err != nil {
		return "", fmt.Errorf("find module root: %w", err)
	}
	m := moduleLine.FindSubmatch(data)
	if m == nil || string(m[1]) != ModulePath {
		name := "an unnamed module"
		if m != nil {
			name = "module " + string(m[1])
		}
		return "", fmt.Errorf("%w: %s is %s", ErrNotInModule, mod, name)
	}
	return filepath.Dir(mod), nil
}

var moduleLine = regexp.MustCompile(`(?m)^module\s+"?([^\s"]+)"?\s*$`)
