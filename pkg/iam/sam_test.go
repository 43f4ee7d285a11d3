package iam_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/opentrace/service-accounts/pkg/iam"
	"github.com/opentrace/service-accounts/pkg/template"
)

// venvPython is the Python of the project's virtualenv, where `make test` installs
// aws-sam-cli and with it aws-sam-translator; $VENV_PYTHON overrides it. Its absence fails the
// test: a skipped parity test would pass silently on exactly the machine that never ran it.
func venvPython(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("VENV_PYTHON")
	if bin == "" {
		bin = "../../.venv/bin/python"
	}
	abs, err := filepath.Abs(bin)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(abs); err != nil {
		t.Fatalf("the project's virtualenv is not installed at %s (%v): run `make test`, or set VENV_PYTHON", abs, err)
	}
	return abs
}

// TestExpansionMatchesSAM: for every function of template.yaml, and of a template that uses
// what the expansion models beyond it (policy templates, managed policies by name and ARN,
// mixed Policies, event sources, an SQS failure destination, tracing modes), the Go expansion
// of its execution role equals what aws-sam-translator generates, policy by policy.
func TestExpansionMatchesSAM(t *testing.T) {
	py := venvPython(t)
	for _, path := range []string{"../../template.yaml", "testdata/variations.yaml"} {
		t.Run(filepath.Base(path), func(t *testing.T) {
			out, err := exec.Command(py, "testdata/sam_roles.py", path).Output()
			if err != nil {
				if ee, ok := err.(*exec.ExitError); ok {
					t.Fatalf("aws-sam-translator: %v\n%s", err, ee.Stderr)
				}
				t.Fatal(err)
			}
			var want map[string]any
			if err := json.Unmarshal(out, &want); err != nil {
				t.Fatal(err)
			}
			tpl, err := template.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			functions, err := tpl.Functions()
			if err != nil {
				t.Fatal(err)
			}
			if len(functions) != len(want) || len(want) == 0 {
				t.Fatalf("%d functions here, %d from aws-sam-translator", len(functions), len(want))
			}
			for id, f := range functions {
				def, err := iam.Expand(tpl, f, template.Resolver{})
				if err != nil {
					t.Fatalf("%s: %v", id, err)
				}
				raw, _ := json.Marshal(def)
				var got any
				_ = json.Unmarshal(raw, &got)
				if !reflect.DeepEqual(got, want[id]) {
					g, _ := json.MarshalIndent(got, "", " ")
					w, _ := json.MarshalIndent(want[id], "", " ")
					t.Errorf("%s's role differs from aws-sam-translator's:\n got  %s\n want %s", id, g, w)
				}
			}
		})
	}
}
