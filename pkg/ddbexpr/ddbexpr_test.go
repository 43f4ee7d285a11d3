package ddbexpr_test

import (
	"reflect"
	"testing"

	"github.com/opentrace/service-accounts/pkg/ddbexpr"
)

func TestTopLevelNames(t *testing.T) {
	names := map[string]string{"#t": "type", "#ttl": "ttl"}
	for expr, want := range map[string][]string{
		"attribute_exists(pk) AND (attribute_not_exists(lastUsedAt) OR lastUsedAt <= :nb)": {"pk", "lastUsedAt"},
		"#t IN (:token, :sa) OR sk = :org":                                                 {"type", "sk"},
		"SET closedAt = :at, #ttl = :ttl REMOVE a.b[2], c":                                 {"closedAt", "ttl", "a", "c"},
		"pk = :pk AND begins_with(sk, :prefix)":                                            {"pk", "sk"},
		"saId, tokenId, findings":                                                          {"saId", "tokenId", "findings"},
		"":                                                                                 nil,
	} {
		if got := ddbexpr.TopLevelNames(expr, names); !reflect.DeepEqual(got, want) {
			t.Errorf("%q: %v, want %v", expr, got, want)
		}
	}
}

func TestUpdateActions(t *testing.T) {
	names := map[string]string{"#f": "findings"}
	for _, tc := range []struct {
		expr             string
		removed, updated []string
	}{
		{"SET auditedAt = :at REMOVE #f", []string{"findings"}, []string{"auditedAt", "findings"}},
		{"REMOVE a, b.c, d[0] SET e = list_append(e, f)", []string{"a"}, []string{"a", "b", "d", "e"}},
		{"SET accounts = if_not_exists(accounts, :zero) + :one", nil, []string{"accounts"}},
		{"ADD n :one DELETE s :v", nil, []string{"n", "s"}},
	} {
		if got := ddbexpr.Removed(tc.expr, names); !reflect.DeepEqual(got, tc.removed) {
			t.Errorf("Removed(%q) = %v, want %v", tc.expr, got, tc.removed)
		}
		if got := ddbexpr.UpdatedNames(tc.expr, names); !reflect.DeepEqual(got, tc.updated) {
			t.Errorf("UpdatedNames(%q) = %v, want %v", tc.expr, got, tc.updated)
		}
	}
}

func TestCounts(t *testing.T) {
	if n := ddbexpr.MaxInOperands("a IN (:1, :2, :3) AND b IN (:4)"); n != 3 {
		t.Errorf("IN operands = %d", n)
	}
	if n := ddbexpr.Operators("attribute_exists(pk) AND activeTokens < :max AND NOT a = :b"); n != 6 {
		t.Errorf("operators = %d", n)
	}
	names, values := ddbexpr.Placeholders("#a = :x AND #b <> :x")
	if !reflect.DeepEqual(names, []string{"#a", "#b"}) || !reflect.DeepEqual(values, []string{":x"}) {
		t.Errorf("placeholders %v %v", names, values)
	}
}
