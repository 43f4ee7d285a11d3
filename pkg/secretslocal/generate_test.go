package secretslocal_test

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/opentrace/service-accounts/pkg/secretslocal"
)

// TestGenerate: the secret strings of the template's two kinds of secret, as CloudFormation
// generates them.
func TestGenerate(t *testing.T) {
	pepper, err := secretslocal.ParseGenerate(map[string]any{
		"SecretStringTemplate": `{"currentVersion":"1"}`, "GenerateStringKey": "current",
		"PasswordLength": 64, "ExcludePunctuation": true,
	})
	if err != nil {
		t.Fatal(err)
	}
	a, err := pepper.Generate(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pepper.Generate(rand.Reader)
	var fields map[string]string
	if err := json.Unmarshal([]byte(a), &fields); err != nil {
		t.Fatal(err)
	}
	if len(fields) != 2 || fields["currentVersion"] != "1" || !regexp.MustCompile(`^[A-Za-z0-9]{64}$`).MatchString(fields["current"]) || a == b {
		t.Fatalf("pepper secret %s (then %s): want currentVersion 1 and 64 fresh alphanumerics", a, b)
	}

	plain, err := secretslocal.ParseGenerate(map[string]any{"PasswordLength": 40, "ExcludeCharacters": `"'\`})
	if err != nil {
		t.Fatal(err)
	}
	key, err := plain.Generate(rand.Reader)
	if err != nil || len(key) != 40 || strings.ContainsAny(key, `"'\`) {
		t.Fatalf("plain secret %q, %v: want 40 characters without the excluded ones", key, err)
	}

	// 0→A, 61→9, 62→A; 248 and above would bias the draw and are skipped.
	fixed := secretslocal.GenerateSecretString{PasswordLength: 8, ExcludePunctuation: true}
	got, err := fixed.Generate(bytes.NewReader(bytes.Repeat([]byte{0, 61, 62, 248}, 10)))
	if err != nil || got != "A9AA9AA9" {
		t.Fatalf("deterministic draw = %q, %v; want A9AA9AA9", got, err)
	}
	if _, err := fixed.Generate(bytes.NewReader(bytes.Repeat([]byte{0xff}, 1<<16))); err == nil {
		t.Fatal("a source of only rejected bytes must fail, not hang")
	}
	boom := errors.New("entropy unavailable")
	if _, err := fixed.Generate(iotest.ErrReader(boom)); !errors.Is(err, boom) {
		t.Fatalf("reader error = %v, want %v", err, boom)
	}

	for name, props := range map[string]map[string]any{
		"Unknown":         {"IncludeSpace": true},
		"TemplateWithout": {"SecretStringTemplate": `{}`},
		"LengthZero":      {"PasswordLength": 0},
		"LengthNotNumber": {"PasswordLength": "64"},
	} {
		if _, err := secretslocal.ParseGenerate(props); err == nil {
			t.Errorf("%s: ParseGenerate accepted %v", name, props)
		}
	}
}
