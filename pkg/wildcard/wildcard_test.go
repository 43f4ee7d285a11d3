package wildcard_test

import (
	"strings"
	"testing"

	"github.com/opentrace/service-accounts/pkg/wildcard"
)

func TestMatch(t *testing.T) {
	for _, tc := range []struct {
		pattern, s string
		want       bool
	}{
		{"*", "", true}, {"a*c", "abbbc", true}, {"a*c", "abbb", false}, {"a?c", "abc", true},
		{"a?c", "ac", false}, {"*/index/*", "t/index/i", true}, {"arn:*:t", "arn:x:t/index", false},
		{"GET/orgs/org_a/*", "GET/orgs/org_a/service-accounts", true}, {"GET/orgs/org_a/*", "GET/orgs/org_ab", false},
		{"", "", true}, {"", "a", false}, {"**", "abc", true},
	} {
		if got := wildcard.Match(tc.pattern, tc.s); got != tc.want {
			t.Errorf("Match(%q, %q) = %v", tc.pattern, tc.s, got)
		}
	}
	// No exponential backtracking: many stars against a long string that never matches.
	if wildcard.Match(strings.Repeat("*a", 1000)+"b", strings.Repeat("a", 100_000)) {
		t.Fatal("matched")
	}
}
