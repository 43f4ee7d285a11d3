package secrets_test

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/opentrace/service-accounts/pkg/secrets"
	"github.com/opentrace/service-accounts/pkg/testkit"
	"github.com/opentrace/service-accounts/pkg/token"
)

// Keys that tests put into secrets. Each is distinctive so that a leak is easy to spot.
const (
	keyV1 = "PEPPER-ONE-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	keyV2 = "PEPPER-TWO-bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	keyV3 = "PEPPER-THREE-cccccccccccccccccccccccccccccccccccccccccccccccccccccc"
)

// allKeys is every key the tests use, for leak checks.
var allKeys = []string{keyV1, keyV2, keyV3}

// sampleToken is hashed to check which pepper a Hasher holds.
const sampleToken = "otsa_sample-token-for-hash-comparison"

// secretJSON builds a secret string from alternating field names and values.
func secretJSON(t *testing.T, kv ...string) string {
	t.Helper()
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// wantHasher fails unless h holds the pepper version/key.
func wantHasher(t *testing.T, name string, h *token.Hasher, version, key string) {
	t.Helper()
	if h == nil {
		t.Fatalf("%s hasher is nil, want version %q", name, version)
	}
	if got := h.Version(); got != version {
		t.Errorf("%s version = %q, want %q", name, got, version)
	}
	ref, err := token.NewHasher(token.Pepper{Version: version, Key: []byte(key)})
	if err != nil {
		t.Fatal(err)
	}
	if h.Hash(sampleToken) != ref.Hash(sampleToken) {
		t.Errorf("%s hasher does not hash with the expected key", name)
	}
}

// forbidden lists renderings of key material that must never appear in output.
func forbidden(keys ...string) []string {
	var out []string
	for _, k := range keys {
		for _, b := range [][]byte{[]byte(k)} {
			out = append(out,
				string(b),
				hex.EncodeToString(b),
				strings.ToUpper(hex.EncodeToString(b)),
				base64.StdEncoding.EncodeToString(b),
				fmt.Sprint(b),
				strings.Trim(fmt.Sprint(b), "[]"),
			)
		}
		// A prefix catches truncated echoes such as those encoding/json makes.
		out = append(out, k[:16])
	}
	return out
}

// assertNoLeak fails if s contains any rendering of key material.
func assertNoLeak(t *testing.T, what, s string) {
	t.Helper()
	for _, f := range forbidden(allKeys...) {
		if strings.Contains(s, f) {
			t.Fatalf("%s leaks key material %q:\n%s", what, f, s)
		}
	}
}

// newFakeClock returns a settable clock for WithClock, safe for the refresh goroutine that
// reads it.
func newFakeClock() *testkit.Clock {
	return testkit.NewClock(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
}

// mustStatic builds a Static or fails the test.
func mustStatic(t *testing.T, current token.Pepper, previous *token.Pepper) *secrets.Static {
	t.Helper()
	s, err := secrets.NewStatic(secrets.Ring{Current: current, Previous: previous})
	if err != nil {
		t.Fatalf("NewStatic: %v", err)
	}
	return s
}
