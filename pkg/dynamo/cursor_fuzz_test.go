package dynamo

import (
	"errors"
	"strings"
	"testing"

	"github.com/opentrace/service-accounts/pkg/testkit"
)

// fuzzCursorKey is the key FuzzCursor seals with. The committed corpus holds cursors sealed
// with it, so changing it turns those seeds from valid cursors into forgeries.
var fuzzCursorKey = []byte(strings.Repeat("k", 32))

// fuzzMaxCursor is the longest cursor open considers; seal makes longer ones only for
// positions far longer than an account id.
const fuzzMaxCursor = 256

// FuzzCursor checks the listing cursor's invariant: open never panics and fails only with
// errBadCursor; a string opens for an org only if it is exactly what seal produced for that
// org, and then yields the sealed position; a cursor sealed for one org never opens for
// another; and no single-byte change to a sealed cursor opens, for its own org or any other.
// Together: a client can neither forge, alter, re-encode nor replay a cursor. Seeds live in
// testdata/fuzz/FuzzCursor as well as below.
//
// The inputs are the org a cursor is sealed for, another org, the position, an arbitrary
// candidate cursor, and a byte to write at an offset of the sealed cursor.
func FuzzCursor(f *testing.F) {
	c := cursorSigner{key: fuzzCursorKey}
	id := "sa_01JD5Z3Q7K8M9N0P1R2S3T4V5W"
	sealed := c.seal("org_a", id)
	for _, s := range []struct {
		org, other, pos, cursor string
		at                      uint16
		b                       byte
	}{
		{"org_a", "org_b", id, sealed, 0, 'C'},
		{"org_a", "org_a ", id, sealed, uint16(len(sealed) - 1), 'B'},
		{"org_a", "org_b", id, c.seal("org_b", id), 3, 'A'},
		{"org_a", "", "", c.seal("org_a", ""), 2, '.'},
		{"org_a", "org_A", id, sealed + "=", 40, '\n'},
		{"a\x00b", "a", "c", c.seal("a", "b\x00c"), 5, 0},
		{"org_a", "org_b", strings.Repeat("p", 200), "c1." + strings.Repeat("A", 300) + ".AA", 7, 0xff},
		{"", "", "", "", 0, 0},
		{"org_a", "org_b", id, "c1..", 1, '2'},
	} {
		f.Add(s.org, s.other, s.pos, s.cursor, s.at, s.b)
	}

	f.Fuzz(func(t *testing.T, org, other, pos, cursor string, at uint16, b byte) {
		// An arbitrary string opens only if it is the canonical seal of what it yields.
		if got, err := c.open(org, cursor); err != nil {
			if !errors.Is(err, errBadCursor) {
				t.Fatalf("open(%q, %q) = %v, want errBadCursor", org, cursor, err)
			}
		} else if want := c.seal(org, got); cursor != want {
			t.Fatalf("open(%q, %q) accepted a cursor seal did not produce: it yields position %q, whose cursor is %q",
				org, cursor, got, want)
		}

		s := c.seal(org, pos)
		if len(s) <= fuzzMaxCursor {
			if got, err := c.open(org, s); err != nil || got != pos {
				t.Fatalf("open(%q, seal(%q, %q)) = %q, %v; want the position back", org, org, pos, got, err)
			}
		}
		if other != org {
			if got, err := c.open(other, s); err == nil {
				t.Fatalf("a cursor sealed for org %q opened for org %q, yielding %q", org, other, got)
			}
		}

		i := int(at) % len(s)
		if s[i] == b {
			return
		}
		mutated := s[:i] + string([]byte{b}) + s[i+1:]
		for _, o := range []string{org, other} {
			if got, err := c.open(o, mutated); err == nil {
				t.Fatalf("cursor %q, sealed for org %q and position %q, with byte %d changed to %q, opened for org %q yielding %q",
					s, org, pos, i, b, o, got)
			}
		}
	})
}

// TestFuzzCursorCorpus keeps the committed seeds meaningful: files named valid* hold a
// cursor sealed with fuzzCursorKey for their org, and every other file one that does not open.
func TestFuzzCursorCorpus(t *testing.T) {
	c := cursorSigner{key: fuzzCursorKey}
	for _, f := range testkit.Corpus(t, "FuzzCursor", 6) {
		if !strings.HasPrefix(f.Name, "valid") && !strings.HasPrefix(f.Name, "bad") {
			continue // a file the fuzzer wrote: a regression input, checked by FuzzCursor itself
		}
		t.Run(f.Name, func(t *testing.T) {
			var org, other, pos, cursor string
			var at uint16
			var b byte
			f.Scan(t, &org, &other, &pos, &cursor, &at, &b)
			_, err := c.open(org, cursor)
			if wantValid := strings.HasPrefix(f.Name, "valid"); wantValid != (err == nil) {
				t.Errorf("open(%q, %q) = %v; file name says valid=%v", org, cursor, err, wantValid)
			}
		})
	}
}
