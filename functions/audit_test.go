package functions_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/opentrace/service-accounts/pkg/audit"
	"github.com/opentrace/service-accounts/pkg/config"
	"github.com/opentrace/service-accounts/pkg/dynamo/dynamotest"
	sa "github.com/opentrace/service-accounts/pkg/serviceaccount"
	"github.com/opentrace/service-accounts/pkg/testworld"
)

// TestAuditUnderRuntimeEmulator runs the audit function's bootstrap under the emulator with
// the environment template.yaml gives it (no pepper secret: the audit needs none) and invokes
// it with events/audit-schedule.json: it audits as of the event's time and returns its summary.
func TestAuditUnderRuntimeEmulator(t *testing.T) {
	ctx := context.Background()
	db := dynamotest.Start(t)
	raw, err := os.ReadFile(filepath.Join("..", "events", "audit-schedule.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ev struct{ Time time.Time }
	if err := json.Unmarshal(raw, &ev); err != nil {
		t.Fatal(err)
	}

	// An account with one token, both created 90 days before the event and never used.
	created := ev.Time.Add(-90 * audit.Day)
	svc := testworld.Service(t, db, testworld.Pepper, sa.WithClock(func() time.Time { return created }))
	acct, _, err := svc.Create(ctx, "org_acme", "user_admin", sa.CreateInput{Name: "nightly-export"})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := svc.GenerateToken(ctx, "org_acme", acct.ID, "user_admin", sa.GenerateInput{}); err != nil {
		t.Fatal(err)
	}

	url := startFunction(t, "audit", []string{
		"AWS_REGION=us-east-1", "AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test",
		"AWS_ENDPOINT_URL_DYNAMODB=" + db.URL, config.EnvTable + "=" + db.Table,
		audit.EnvStaleDays + "=90", audit.EnvAutoRevoke + "=false", config.EnvLogLevel + "=info",
	})
	sum := invoke[audit.Summary](t, url, json.RawMessage(raw))
	want := map[string]int{sa.FindingNeverUsed: 1, sa.FindingRotationDue: 1, sa.FindingUnusedAccount: 1, sa.FindingStale: 0, sa.FindingExpiring: 0}
	if !sum.Complete || !sum.RunAt.Equal(ev.Time) || sum.Tokens != 1 || sum.Accounts != 1 || sum.Orgs != 1 {
		t.Fatalf("summary = %+v", sum)
	}
	for k, n := range want {
		if sum.Findings[k] != n {
			t.Fatalf("findings = %v, want %v", sum.Findings, want)
		}
	}
	report, err := svc.AuditReport(ctx, "org_acme")
	if err != nil || !report.GeneratedAt.Equal(ev.Time) || len(report.Findings) != 3 {
		t.Fatalf("report = %+v, %v", report, err)
	}
}
