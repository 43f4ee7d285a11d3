package serviceaccount_test

import (
	"regexp"
	"testing"

	sa "github.com/opentrace/service-accounts/pkg/serviceaccount"
)

// The id checks are loops rather than regular expressions, so that no function pays for
// compiling them at start-up. These tests hold the loops to the expressions they replaced.
var (
	orgIDPattern   = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	saIDPattern    = regexp.MustCompile(`^sa_[0-9A-HJKMNP-TV-Z]{26}$`)
	tokenIDPattern = regexp.MustCompile(`^tok_[0-9A-HJKMNP-TV-Z]{26}$`)
)

var idSeeds = []string{
	"", "a", "org_1", "Org-A", "org 1", "org/1", "org.1", "ö", "org\x00",
	"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	"sa_01HZX3KQ7M2N4P5R6S7T8V9W0X", "tok_01HZX3KQ7M2N4P5R6S7T8V9W0X",
	"sa_01HZX3KQ7M2N4P5R6S7T8V9W0", "sa_01HZX3KQ7M2N4P5R6S7T8V9W0XY",
	"sa_01hzx3kq7m2n4p5r6s7t8v9w0x", "sa_01HZX3KQ7M2N4P5R6S7T8V9W0I",
	"sa_01HZX3KQ7M2N4P5R6S7T8V9W0L", "sa_01HZX3KQ7M2N4P5R6S7T8V9W0O",
	"sa_01HZX3KQ7M2N4P5R6S7T8V9W0U", "tok_01HZX3KQ7M2N4P5R6S7T8V9W0Ö",
	"SA_01HZX3KQ7M2N4P5R6S7T8V9W0X", "tok_", "sa_", "tok_sa_01HZX3KQ7M2N4P5R6S7T8V9W",
}

func TestIDChecksMatchTheirPatterns(t *testing.T) {
	for _, id := range idSeeds {
		checkIDs(t, id)
	}
}

func FuzzIDChecks(f *testing.F) {
	for _, id := range idSeeds {
		f.Add(id)
	}
	f.Fuzz(checkIDs)
}

func checkIDs(t *testing.T, id string) {
	if got, want := sa.ValidOrgID(id), orgIDPattern.MatchString(id); got != want {
		t.Errorf("ValidOrgID(%q) = %v, want %v", id, got, want)
	}
	if got, want := sa.ValidServiceAccountID(id), saIDPattern.MatchString(id); got != want {
		t.Errorf("ValidServiceAccountID(%q) = %v, want %v", id, got, want)
	}
	if got, want := sa.ValidTokenID(id), tokenIDPattern.MatchString(id); got != want {
		t.Errorf("ValidTokenID(%q) = %v, want %v", id, got, want)
	}
}
