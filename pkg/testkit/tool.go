package testkit

import (
	"os"
	"path/filepath"
	"testing"
)

// Installed returns the absolute path of a tool that `make test` installs (what names it in
// the failure): $env when set, else def, relative to the package under test. A missing tool
// fails the test rather than skipping it: a skipped test would pass silently on exactly the
// machine that never ran it.
func Installed(tb testing.TB, what, env, def string) string {
	tb.Helper()
	path := os.Getenv(env)
	if path == "" {
		path = def
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := os.Stat(abs); err != nil {
		tb.Fatalf("%s is not installed at %s (%v): run `make test`, which installs it, or set %s to its path", what, abs, err, env)
	}
	return abs
}
