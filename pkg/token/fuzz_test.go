package token_test

import (
	"errors"
	"hash/crc32"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/opentrace/service-accounts/pkg/testkit"
	"github.com/opentrace/service-accounts/pkg/token"
)

// FuzzParse checks that Parse never panics, accepts only strings that meet the
// contract, and returns errors that cannot carry any of its input. Seeds live
// in testdata/fuzz/FuzzParse as well as below.
func FuzzParse(f *testing.F) {
	valid := withChecksum(f, "otsa_"+"0123456789ABCDEFGHIJKLMNOPQRSTUV")
	for _, s := range []string{
		valid,
		seededTokens(f, 1, 77)[0],
		valid[:42] + "0",
		"OTSA_" + valid[5:],
		valid[:20],
		valid + "Z",
		valid[:20] + "é" + valid[22:],
		"",
		"otsa_",
		"otsa_…" + valid[39:],
		valid[:37] + "zzzzzz",
		strings.Repeat("\x00", 43),
	} {
		f.Add(s)
	}

	messages := map[string]bool{
		token.ErrMalformed.Error(): true,
		token.ErrChecksum.Error():  true,
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := token.Parse(s)
		if err != nil {
			if !errors.Is(err, token.ErrMalformed) && !errors.Is(err, token.ErrChecksum) {
				t.Fatalf("Parse(%q) = %v, not a sentinel", s, err)
			}
			// A message drawn from a fixed set cannot carry the input.
			if !messages[err.Error()] {
				t.Fatalf("Parse(%q) error text %q is not one of the fixed messages", s, err)
			}
			if len(s) >= 8 && strings.Contains(err.Error(), s) {
				t.Fatalf("Parse error %q contains the input", err)
			}
			return
		}

		if !tokenRE.MatchString(s) {
			t.Fatalf("Parse accepted %q, which does not match %s", s, tokenRE)
		}
		if want := base62CRC(t, crc32.ChecksumIEEE([]byte(s[:37]))); s[37:] != want {
			t.Fatalf("Parse accepted %q, whose checksum should be %q", s, want)
		}
		hint := token.Hint(s)
		if want := "otsa_\u2026" + s[len(s)-4:]; hint != want {
			t.Fatalf("Hint(%q) = %q, want %q", s, hint, want)
		}
		if !utf8.ValidString(hint) || utf8.RuneCountInString(hint) != 10 {
			t.Fatalf("Hint(%q) = %q, want 10 valid runes", s, hint)
		}
	})
}

// TestFuzzCorpus keeps the committed seeds meaningful: files named valid*
// hold tokens that parse, and every other file holds one that does not.
func TestFuzzCorpus(t *testing.T) {
	for _, f := range testkit.Corpus(t, "FuzzParse", 8) {
		t.Run(f.Name, func(t *testing.T) {
			var s string
			f.Scan(t, &s)
			err := token.Parse(s)
			if wantValid := strings.HasPrefix(f.Name, "valid"); wantValid != (err == nil) {
				t.Errorf("Parse(%q) = %v; file name says valid=%v", s, err, wantValid)
			}
		})
	}
}
