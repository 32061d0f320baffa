package plugincheck

import (
	"bytes"
	"embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strings"
	"text/template"
)

// templates are the starter plugins, one directory per language; every
// file is a text/template ending in .tmpl (so the Go starter is not a
// package of this module) and is written without that suffix.
//
//go:embed all:templates
var templates embed.FS

// Languages are the starters plugin init can write.
var Languages = []string{"go", "assemblyscript"}

// modulePath is acctpool's module; the Go starter requires its sdk.
const modulePath = "github.com/acctpool/acctpool"

var idPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// InitOptions configure [Init].
type InitOptions struct {
	// Lang is "go" or "assemblyscript".
	Lang string
	// Dir is where the starter goes; it must be empty or absent.
	Dir string
	// ID is the plugin id (manifest id and file names); default: Dir's
	// base name, lower-cased.
	ID string
	// Module is the Go starter's module path; default example.com/<id>.
	Module string
	// SDK, for the Go starter, is a local acctpool checkout to build
	// against (a replace directive) instead of a released version.
	SDK string
}

// templateData is what the templates see.
type templateData struct {
	ID, Module string
	// Require is the acctpool version to require, "" to let `go mod tidy`
	// pick the latest.
	Require string
	// Replace is a local acctpool checkout, or "".
	Replace string
}

// Init writes a starter plugin and returns the files written, relative to
// Dir.
func Init(opts InitOptions) ([]string, error) {
	root := path.Join("templates", opts.Lang)
	if _, err := fs.Stat(templates, root); err != nil {
		return nil, fmt.Errorf("--lang %q: want one of %s", opts.Lang, strings.Join(Languages, ", "))
	}
	if opts.Dir == "" {
		return nil, errors.New("want a DIR to write the plugin to")
	}
	if entries, err := os.ReadDir(opts.Dir); err == nil && len(entries) > 0 {
		return nil, fmt.Errorf("%s is not empty; init writes only into an empty or new directory", opts.Dir)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	data := templateData{ID: opts.ID, Module: opts.Module}
	if data.ID == "" {
		abs, err := filepath.Abs(opts.Dir)
		if err != nil {
			return nil, err
		}
		data.ID = strings.ToLower(filepath.Base(abs))
	}
	if !idPattern.MatchString(data.ID) {
		return nil, fmt.Errorf("plugin id %q must match %s (pass --id)", data.ID, idPattern)
	}
	if data.Module == "" {
		data.Module = "example.com/" + data.ID
	}
	if opts.SDK != "" {
		abs, err := filepath.Abs(opts.SDK)
		if err != nil {
			return nil, err
		}
		if _, err := os.Stat(filepath.Join(abs, "plugins", "sdk")); err != nil {
			return nil, fmt.Errorf("--sdk %s: not an acctpool checkout (no plugins/sdk): %w", opts.SDK, err)
		}
		data.Replace, data.Require = abs, "v0.0.0"
	} else {
		data.Require = releasedVersion()
	}

	type file struct {
		name string
		body []byte
	}
	var files []file
	err := fs.WalkDir(templates, root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		src, err := fs.ReadFile(templates, p)
		if err != nil {
			return err
		}
		t, err := template.New(p).Option("missingkey=error").Parse(string(src))
		if err != nil {
			return err
		}
		var buf bytes.Buffer
		if err := t.Execute(&buf, data); err != nil {
			return err
		}
		rel := strings.TrimSuffix(strings.TrimPrefix(p, root+"/"), ".tmpl")
		files = append(files, file{rel, buf.Bytes()})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("render templates: %w", err)
	}
	var written []string
	for _, f := range files {
		dst := filepath.Join(opts.Dir, filepath.FromSlash(f.name))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return written, err
		}
		mode := os.FileMode(0o644)
		if strings.HasSuffix(f.name, ".sh") {
			mode = 0o755
		}
		if err := os.WriteFile(dst, f.body, mode); err != nil {
			return written, err
		}
		written = append(written, f.name)
	}
	return written, nil
}

// releasedVersion is the acctpool version this binary was built from, when
// it is a released one (installed with go install ...@vX), else "".
func releasedVersion() string {
	info, ok := debug.ReadBuildInfo()
	if !ok || info.Main.Path != modulePath {
		return ""
	}
	v := info.Main.Version
	if v == "" || v == "(devel)" {
		return ""
	}
	return v
}

func mainInit(args []string, stdout, stderr io.Writer) int {
	fl := flag.NewFlagSet("plugin init", flag.ContinueOnError)
	fl.SetOutput(io.Discard)
	var opts InitOptions
	fl.StringVar(&opts.Lang, "lang", "", "")
	fl.StringVar(&opts.ID, "id", "", "")
	fl.StringVar(&opts.Module, "module", "", "")
	fl.StringVar(&opts.SDK, "sdk", "", "")
	pos, err := parseInterleaved(fl, args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, usage)
		return ExitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "acctpool plugin init: %v\nTry: acctpool plugin help\n", err)
		return ExitUsage
	}
	if opts.Lang == "" || len(pos) != 1 {
		fmt.Fprintf(stderr, "acctpool plugin init: want --lang %s and one DIR\nTry: acctpool plugin help\n", strings.Join(Languages, "|"))
		return ExitUsage
	}
	opts.Dir = pos[0]
	written, err := Init(opts)
	if err != nil {
		fmt.Fprintf(stderr, "acctpool plugin init: %v\n", err)
		return ExitUsage
	}
	fmt.Fprintf(stdout, "wrote the %s starter plugin to %s:\n", opts.Lang, opts.Dir)
	for _, f := range written {
		fmt.Fprintf(stdout, "  %s\n", f)
	}
	switch opts.Lang {
	case "go":
		fmt.Fprintf(stdout, "next: cd %s && sh build.sh && acctpool plugin check --cases cases.json plugin.json\n", opts.Dir)
	case "assemblyscript":
		fmt.Fprintf(stdout, "next: cd %s && npm install && npm run build && acctpool plugin check --cases cases.json plugin.json\n", opts.Dir)
	}
	return ExitOK
}
