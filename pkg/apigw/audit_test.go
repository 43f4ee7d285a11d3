package apigw_test

import (
	"strings"
	"testing"
	"time"

	"github.com/opentrace/service-accounts/pkg/audit"
	"github.com/opentrace/service-accounts/pkg/dynamo"
	sa "github.com/opentrace/service-accounts/pkg/serviceaccount"
)

// runAudit runs the scheduled audit over the fixture's table as of at.
func (f *fixture) runAudit(t *testing.T, at time.Time) {
	t.Helper()
	store, err := dynamo.New(f.w.DB, f.w.Table, []byte(strings.Repeat("c", 32)))
	if err != nil {
		t.Fatal(err)
	}
	if sum, err := (&audit.Runner{Store: store, Thresholds: audit.DefaultThresholds}).Run(f.ctx, at); err != nil || !sum.Complete {
		t.Fatalf("audit: %+v, %v", sum, err)
	}
}

// TestAuditRoute covers GET /orgs/{orgId}/audit: admins and members of the org read its latest
// report; other orgs and service-account tokens are refused; before any run the report is
// empty with a null generatedAt.
func TestAuditRoute(t *testing.T) {
	// The fixture's tokens and accounts are created now and never used: 100 days on, each
	// account is unused, each live token never used and due for rotation.
	later := time.Now().UTC().Add(100 * audit.Day).Truncate(time.Millisecond)
	for _, tc := range []struct {
		name    string
		caller  *sa.Principal
		run     bool
		status  int
		problem string
	}{
		{name: "Audit200EmptyBeforeAnyRun", status: 200},
		{name: "Audit200Admin", run: true, status: 200},
		{name: "Audit200Member", caller: &member, run: true, status: 200},
		{name: "Audit403OtherOrg", caller: &otherAdmin, run: true, status: 403, problem: sa.EFORBIDDEN},
		{name: "Audit403ServiceAccountToken", caller: &tokenCaller, run: true, status: 403, problem: sa.EFORBIDDEN},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			if tc.run {
				f.runAudit(t, later)
			}
			resp, body := f.call(t, request{event: "audit", caller: tc.caller})
			if resp.StatusCode != tc.status {
				t.Fatalf("status = %d, want %d; body %s", resp.StatusCode, tc.status, resp.Body)
			}
			if resp.Headers["Cache-Control"] != "no-store" {
				t.Errorf("Cache-Control = %q", resp.Headers["Cache-Control"])
			}
			if tc.problem != "" {
				assertProblem(t, resp, body, tc.status, tc.problem, "")
				return
			}
			wantKeys(t, body, "generatedAt", "findings")
			findings, ok := body["findings"].([]any)
			if !ok {
				t.Fatalf("findings = %#v, want a list", body["findings"])
			}
			if !tc.run {
				if body["generatedAt"] != nil || len(findings) != 0 {
					t.Fatalf("report before any run = %v", body)
				}
				return
			}
			if body["generatedAt"] != later.Format(time.RFC3339Nano) {
				t.Fatalf("generatedAt = %v, want %v", body["generatedAt"], later.Format(time.RFC3339Nano))
			}
			kinds := map[string]int{}
			for _, raw := range findings {
				fj := raw.(map[string]any)
				wantKeys(t, fj, "serviceAccountId", "tokenId", "kind", "since", "detail")
				kind := fj["kind"].(string)
				kinds[kind]++
				if (kind == sa.FindingUnusedAccount) != (fj["tokenId"] == nil) {
					t.Errorf("%s finding with tokenId %v", kind, fj["tokenId"])
				}
				if since, err := time.Parse(time.RFC3339, fj["since"].(string)); err != nil || since.Location() != time.UTC {
					t.Errorf("since = %v (%v)", fj["since"], err)
				}
				if fj["serviceAccountId"] == f.ids["{otherSA}"] || fj["tokenId"] == f.ids["{otherTok}"] || fj["tokenId"] == f.ids["{revoked}"] {
					t.Errorf("finding about another org's or a revoked token: %v", fj)
				}
			}
			// Accounts {sa} and {full}; {sa}'s live token and {full}'s two, never used and old.
			want := map[string]int{sa.FindingUnusedAccount: 2, sa.FindingNeverUsed: 3, sa.FindingRotationDue: 3}
			if len(kinds) != len(want) {
				t.Fatalf("kinds = %v, want %v", kinds, want)
			}
			for k, n := range want {
				if kinds[k] != n {
					t.Fatalf("kinds = %v, want %v", kinds, want)
				}
			}
		})
	}
}
