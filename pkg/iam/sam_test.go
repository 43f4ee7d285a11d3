package iam_test

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/opentrace/service-accounts/pkg/iam"
	"github.com/opentrace/service-accounts/pkg/template"
	"github.com/opentrace/service-accounts/pkg/testkit"
)

// TestExpansionMatchesSAM: for every function of template.yaml, and of a template that uses
// what the expansion models beyond it (policy templates, managed policies by name and ARN,
// mixed Policies, event sources, an SQS failure destination, tracing modes), the Go expansion
// of its execution role equals what aws-sam-translator generates, policy by policy.
func TestExpansionMatchesSAM(t *testing.T) {
	// aws-sam-translator comes with aws-sam-cli, which `make test` installs into the virtualenv.
	py := testkit.Installed(t, "the Python of the project's virtualenv", "VENV_PYTHON", "../../.venv/bin/python")
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
