package audit_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/opentrace/service-accounts/pkg/audit"
	sa "github.com/opentrace/service-accounts/pkg/serviceaccount"
	"github.com/opentrace/service-accounts/pkg/testkit"
)

// acmeTable builds, through the service, org_acme with an account ci-pipeline holding four
// tokens (never used, stale, expiring, healthy) and an account never used; org_quiet with one
// healthy account and token; and org_gone, whose only account was deleted. It returns the ids
// and the time to audit at, 105 days after t0.
func acmeTable(t *testing.T, e *env) (ids map[string]string, now time.Time) {
	t.Helper()
	now = t0.Add(105 * audit.Day)
	ids = map[string]string{}
	create := func(org, name string, at time.Time) string {
		e.now = at
		a, _, err := e.svc.Create(e.ctx, org, "user_admin", sa.CreateInput{Name: name})
		e.must(t, err)
		return a.ID
	}
	generate := func(org, saID string, at time.Time, days *int) string {
		e.now = at
		tk, _, err := e.svc.GenerateToken(e.ctx, org, saID, "user_admin", sa.GenerateInput{ExpiresInDays: days})
		e.must(t, err)
		return tk.ID
	}
	sixty := 60
	ids["ci"] = create("org_acme", "ci-pipeline", t0)
	ids["never"] = generate("org_acme", ids["ci"], t0, nil)
	ids["stale"] = generate("org_acme", ids["ci"], t0, nil)
	ids["expiring"] = generate("org_acme", ids["ci"], t0.Add(50*audit.Day), &sixty)
	ids["fine"] = generate("org_acme", ids["ci"], t0.Add(60*audit.Day), nil)
	e.setLastUsed(t, "org_acme", ids["ci"], ids["stale"], t0.Add(audit.Day))
	e.setLastUsed(t, "org_acme", ids["ci"], ids["expiring"], t0.Add(100*audit.Day))
	e.setLastUsed(t, "org_acme", ids["ci"], ids["fine"], now.Add(-time.Hour))
	ids["unused"] = create("org_acme", "billing-sync", t0)
	ids["healthy"] = create("org_quiet", "deploy-bot", t0)
	ids["healthyTok"] = generate("org_quiet", ids["healthy"], t0.Add(99*audit.Day), nil)
	e.setLastUsed(t, "org_quiet", ids["healthy"], ids["healthyTok"], now.Add(-time.Hour))
	gone := create("org_gone", "old-integration", t0)
	e.must(t, e.svc.Delete(e.ctx, "org_gone", gone, "user_admin"))
	return ids, now
}

type findingKey struct{ sa, tok, kind string }

func keysOf(fs []sa.Finding) []findingKey {
	out := []findingKey{}
	for _, f := range fs {
		out = append(out, findingKey{f.ServiceAccountID, f.TokenID, f.Kind})
	}
	return out
}

// TestRunReportsFindings: one run flags what the rules say, writes every org's report (an org
// with nothing to report gets an empty one), logs one line, emits one metrics line, and leaves
// no checkpoint; a second run with nothing changed writes no findings; a use clears a finding.
func TestRunReportsFindings(t *testing.T) {
	e := newEnv(t)
	ids, now := acmeTable(t, e)
	if r, err := e.svc.AuditReport(e.ctx, "org_acme"); err != nil || !r.GeneratedAt.IsZero() || len(r.Findings) != 0 {
		t.Fatalf("report before any run = %+v, %v", r, err)
	}
	runner, logs, metrics := e.runner(audit.DefaultThresholds)
	sum, err := runner.Run(e.ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	wantFindings := map[string]int{sa.FindingNeverUsed: 1, sa.FindingStale: 1, sa.FindingRotationDue: 2, sa.FindingExpiring: 1, sa.FindingUnusedAccount: 1}
	if !sum.Complete || !sum.RunAt.Equal(now) || sum.Orgs != 3 || sum.Accounts != 3 || sum.Tokens != 5 || sum.Revoked != 0 ||
		!reflect.DeepEqual(sum.Findings, wantFindings) || sum.Pages < 2 {
		t.Fatalf("summary = %+v", sum)
	}

	report, err := e.svc.AuditReport(e.ctx, "org_acme")
	if err != nil {
		t.Fatal(err)
	}
	var wantOrder []sa.Finding // reports list findings by account, then token, then kind
	for _, k := range []findingKey{
		{ids["ci"], ids["never"], sa.FindingNeverUsed}, {ids["ci"], ids["never"], sa.FindingRotationDue},
		{ids["ci"], ids["stale"], sa.FindingStale}, {ids["ci"], ids["stale"], sa.FindingRotationDue},
		{ids["ci"], ids["expiring"], sa.FindingExpiring}, {ids["unused"], "", sa.FindingUnusedAccount},
	} {
		wantOrder = append(wantOrder, sa.Finding{ServiceAccountID: k.sa, TokenID: k.tok, Kind: k.kind})
	}
	slices.Reverse(wantOrder)
	audit.SortFindings(wantOrder)
	want := keysOf(wantOrder)
	if want[0].kind == sa.FindingUnusedAccount && want[0].sa != ids["unused"] {
		t.Fatal("SortFindings does not order by account")
	}
	if !report.GeneratedAt.Equal(now) || !reflect.DeepEqual(keysOf(report.Findings), want) {
		t.Fatalf("org_acme report at %v:\n got %v\nwant %v", report.GeneratedAt, keysOf(report.Findings), want)
	}
	for _, f := range report.Findings {
		wantSince := map[string]time.Time{
			ids["never"] + sa.FindingNeverUsed: t0, ids["never"] + sa.FindingRotationDue: t0,
			ids["stale"] + sa.FindingStale: t0.Add(audit.Day), ids["stale"] + sa.FindingRotationDue: t0,
			ids["expiring"] + sa.FindingExpiring: t0.Add(110 * audit.Day), sa.FindingUnusedAccount: t0,
		}[f.TokenID+f.Kind]
		if !f.Since.Equal(wantSince) || f.Detail == "" {
			t.Errorf("finding %s %s: since %v, want %v; detail %q", f.TokenID, f.Kind, f.Since, wantSince, f.Detail)
		}
	}
	for _, org := range []string{"org_quiet", "org_gone"} {
		if r, err := e.svc.AuditReport(e.ctx, org); err != nil || !r.GeneratedAt.Equal(now) || len(r.Findings) != 0 {
			t.Fatalf("%s report = %+v, %v; want an empty one generated at %v", org, r, err, now)
		}
	}
	if _, err := e.store.GetCheckpoint(e.ctx); sa.ErrorCode(err) != sa.ENOTFOUND {
		t.Fatalf("a complete run left a checkpoint: %v", err)
	}

	lines := logs.Lines()
	if len(lines) != 1 {
		t.Fatalf("%d log lines, want 1: %v", len(lines), lines)
	}
	if l := decodeJSONLine(t, lines[0]); l["msg"] != "audit run" || l["complete"] != true || l["tokens"] != 5.0 || l["level"] != "INFO" {
		t.Fatalf("log line = %v", l)
	}
	assertEMF(t, metrics.Lines(), map[string]float64{
		"TokensAudited": 5, "AccountsAudited": 3, "OrgsReported": 3, "Findings": 6, "NeverUsed": 1, "Stale": 1,
		"RotationDue": 2, "Expiring": 1, "UnusedAccount": 1, "Revoked": 0, "RunsCompleted": 1, "Errors": 0,
	})

	t.Run("SteadyStateWritesNoFindings", func(t *testing.T) {
		runner, _, _ := e.runner(audit.DefaultThresholds)
		later := now.Add(time.Hour)
		if _, err := runner.Run(e.ctx, later); err != nil {
			t.Fatal(err)
		}
		out, err := e.db.Client.Scan(e.ctx, &dynamodb.ScanInput{TableName: aws.String(e.db.Table)})
		e.must(t, err)
		for _, it := range out.Items {
			if at, ok := it["auditedAt"].(*types.AttributeValueMemberN); ok && at.Value != strconv.FormatInt(now.UnixMilli(), 10) {
				t.Fatalf("%v rewritten by a run that changed nothing", it["sk"])
			}
		}
	})
	t.Run("UseClearsStale", func(t *testing.T) {
		e.setLastUsed(t, "org_acme", ids["ci"], ids["stale"], now.Add(2*time.Hour))
		runner, _, _ := e.runner(audit.DefaultThresholds)
		if _, err := runner.Run(e.ctx, now.Add(3*time.Hour)); err != nil {
			t.Fatal(err)
		}
		report, err := e.svc.AuditReport(e.ctx, "org_acme")
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keysOf(report.Findings) {
			if k.kind == sa.FindingStale {
				t.Fatalf("stale finding survived a use: %v", keysOf(report.Findings))
			}
		}
	})
}

// assertEMF checks the one CloudWatch embedded-metric-format line and the values named.
func assertEMF(t *testing.T, lines []string, want map[string]float64) {
	t.Helper()
	if len(lines) != 1 {
		t.Fatalf("%d metrics lines, want 1: %v", len(lines), lines)
	}
	m := decodeJSONLine(t, lines[0])
	var meta struct {
		Timestamp         int64
		CloudWatchMetrics []struct {
			Namespace  string
			Dimensions [][]string
			Metrics    []struct{ Name, Unit string }
		}
	}
	raw, _ := json.Marshal(m["_aws"])
	if err := json.Unmarshal(raw, &meta); err != nil || len(meta.CloudWatchMetrics) != 1 {
		t.Fatalf("_aws = %s", raw)
	}
	d := meta.CloudWatchMetrics[0]
	if d.Namespace != audit.MetricsNamespace || !reflect.DeepEqual(d.Dimensions, [][]string{{}}) ||
		time.Since(time.UnixMilli(meta.Timestamp)) > time.Minute {
		t.Fatalf("directive = %+v at %d", d, meta.Timestamp)
	}
	for _, metric := range d.Metrics {
		if _, ok := m[metric.Name].(float64); !ok || metric.Unit == "" {
			t.Errorf("metric %+v has no value", metric)
		}
	}
	for name, v := range want {
		if m[name] != v {
			t.Errorf("%s = %v, want %v", name, m[name], v)
		}
	}
}

// TestAutoRevoke: with auto-revocation on, a token unused for AutoRevokeAfter is revoked (it no
// longer authenticates, the audit trail names the audit, the finding says so); off, it is only
// reported.
func TestAutoRevoke(t *testing.T) {
	for _, tc := range []struct {
		name   string
		on     bool
		unused time.Duration
		revoke bool
	}{
		{"OnAfterThreshold", true, 180 * audit.Day, true},
		{"OnJustBeforeThreshold", true, 180*audit.Day - time.Millisecond, false},
		{"Off", false, 400 * audit.Day, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			acct, _, err := e.svc.Create(e.ctx, "org_acme", "user_admin", sa.CreateInput{Name: "nightly-export"})
			e.must(t, err)
			tok, secret, err := e.svc.GenerateToken(e.ctx, "org_acme", acct.ID, "user_admin", sa.GenerateInput{})
			e.must(t, err)
			lastUse := t0.Add(audit.Day)
			e.setLastUsed(t, "org_acme", acct.ID, tok.ID, lastUse)
			th := audit.DefaultThresholds
			th.AutoRevoke = tc.on
			runner, _, metrics := e.runner(th)
			now := lastUse.Add(tc.unused)
			sum, err := runner.Run(e.ctx, now)
			if err != nil {
				t.Fatal(err)
			}
			if sum.Revoked != map[bool]int{true: 1}[tc.revoke] {
				t.Fatalf("revoked = %d", sum.Revoked)
			}
			assertEMF(t, metrics.Lines(), map[string]float64{"Revoked": float64(sum.Revoked)})
			e.now = now
			_, authErr := e.svc.Authenticate(e.ctx, secret)
			if tc.revoke != (sa.ErrorCode(authErr) == sa.EUNAUTHORIZED) {
				t.Fatalf("authenticate after the audit: %v (revoke %v)", authErr, tc.revoke)
			}
			report, err := e.svc.AuditReport(e.ctx, "org_acme")
			e.must(t, err)
			var stale *sa.Finding
			for i, f := range report.Findings {
				if f.TokenID == tok.ID && f.Kind == sa.FindingStale {
					stale = &report.Findings[i]
				}
			}
			if stale == nil || strings.Contains(stale.Detail, "Revoked") != tc.revoke {
				t.Fatalf("report = %+v", report.Findings)
			}
			if got := auditTrail(t, e, "token.revoked"); tc.revoke != slices.Equal(got, []string{audit.Actor}) {
				t.Fatalf("token.revoked events by %v (revoke %v)", got, tc.revoke)
			}
			if !tc.revoke {
				return
			}
			// The next run finds the token closed: nothing to report or revoke any more.
			again, _, _ := e.runner(th)
			sum, err = again.Run(e.ctx, now.Add(audit.Day))
			e.must(t, err)
			report, err = e.svc.AuditReport(e.ctx, "org_acme")
			e.must(t, err)
			for _, f := range report.Findings {
				if f.TokenID == tok.ID {
					t.Fatalf("a revoked token is still reported: %+v", f)
				}
			}
			if sum.Revoked != 0 {
				t.Fatalf("revoked again: %d", sum.Revoked)
			}
		})
	}
}

// failingFindings fails the first SetFindings of a token, which comes after the audit revoked
// it.
type failingFindings struct {
	audit.Store
	failed bool
}

func (f *failingFindings) SetFindings(ctx context.Context, org, saID, tokenID string, fs []sa.Finding, at time.Time) error {
	if tokenID != "" && !f.failed {
		f.failed = true
		return errInjected
	}
	return f.Store.SetFindings(ctx, org, saID, tokenID, fs, at)
}

// TestAutoRevokeRedonePage: when writing the findings of a token the audit has just revoked
// fails, the retry finds the token closed by this very run: it records why it was revoked,
// counts the revocation once, and does not revoke again.
func TestAutoRevokeRedonePage(t *testing.T) {
	e := newEnv(t)
	acct, _, err := e.svc.Create(e.ctx, "org_acme", "user_admin", sa.CreateInput{Name: "nightly-export"})
	e.must(t, err)
	tok, _, err := e.svc.GenerateToken(e.ctx, "org_acme", acct.ID, "user_admin", sa.GenerateInput{})
	e.must(t, err)
	th := audit.DefaultThresholds
	th.AutoRevoke = true
	runner, _, _ := e.runner(th)
	runner.Store = &failingFindings{Store: e.store}
	now := t0.Add(200 * audit.Day)
	if _, err := runner.Run(e.ctx, now); !errors.Is(err, errInjected) {
		t.Fatalf("first attempt: %v, want the injected fault", err)
	}
	sum, err := runner.Run(e.ctx, now.Add(time.Hour))
	if err != nil || !sum.Complete || sum.Revoked != 1 || !sum.RunAt.Equal(now) {
		t.Fatalf("retry: %+v, %v", sum, err)
	}
	report, err := e.svc.AuditReport(e.ctx, "org_acme")
	e.must(t, err)
	var found bool
	for _, f := range report.Findings {
		if f.TokenID == tok.ID {
			found = f.Kind == sa.FindingNeverUsed && strings.Contains(f.Detail, "Revoked")
		}
	}
	if !found || len(auditTrail(t, e, "token.revoked")) != 1 {
		t.Fatalf("report %+v, revocations %v", report.Findings, auditTrail(t, e, "token.revoked"))
	}
}

// auditTrail returns the actors of an org's audit-trail events of one action.
func auditTrail(t *testing.T, e *env, action string) []string {
	t.Helper()
	out, err := e.db.Client.Query(e.ctx, &dynamodb.QueryInput{
		TableName:              aws.String(e.db.Table),
		KeyConditionExpression: aws.String("pk = :pk AND begins_with(sk, :ev)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":pk": s("ORG#org_acme"), ":ev": s("EVENT#"),
		},
	})
	e.must(t, err)
	var actors []string
	for _, it := range out.Items {
		if it["action"].(*types.AttributeValueMemberS).Value == action {
			actors = append(actors, it["actor"].(*types.AttributeValueMemberS).Value)
		}
	}
	return actors
}

// slowStore makes every page read take a minute of wall time, and can fail one page read.
type slowStore struct {
	audit.Store
	wall   *testkit.Clock // the Runner's wall clock, which the store moves forward
	failAt int            // fail the failAt-th page read (1-based); 0 never
	reads  int
}

var errInjected = sa.Unavailable(errors.New("injected fault"))

func (s *slowStore) read() error {
	s.wall.Advance(time.Minute)
	s.reads++
	if s.reads == s.failAt {
		return errInjected
	}
	return nil
}

func (s *slowStore) ScanAudit(ctx context.Context, cursor string, limit int) (audit.Page, error) {
	if err := s.read(); err != nil {
		return audit.Page{}, err
	}
	return s.Store.ScanAudit(ctx, cursor, limit)
}

func (s *slowStore) MarkedOrgs(ctx context.Context, runAt time.Time, after string, limit int) ([]audit.OrgMark, bool, error) {
	if err := s.read(); err != nil {
		return nil, false, err
	}
	return s.Store.MarkedOrgs(ctx, runAt, after, limit)
}

// TestRunResumes: a run stopped by its deadline, or by a failure, resumes from its checkpoint
// in the next invocation (with the first invocation's time, whatever the next event says) and
// ends with exactly the table an uninterrupted run leaves.
func TestRunResumes(t *testing.T) {
	shape := seedShape{tokens: 200, orgs: 25, tokensPerAccount: 10, riskyEvery: 2}
	now := t0.Add(400 * audit.Day)
	reference := newEnv(t)
	seedBulk(t, reference.db, shape, now)
	ref, _, _ := reference.runner(audit.DefaultThresholds)
	ref.PageSize = 10
	want, err := ref.Run(reference.ctx, now)
	if err != nil || !want.Complete {
		t.Fatalf("uninterrupted run: %+v, %v", want, err)
	}
	wantState := tableState(t, reference)

	for _, tc := range []struct {
		name   string
		failAt int
	}{
		{"Deadline", 0},
		{"FailureThenDeadline", 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			seedBulk(t, e.db, shape, now)
			wall := &testkit.Clock{}
			store := &slowStore{Store: e.store, wall: wall, failAt: tc.failAt}
			phases := map[string]bool{}
			var tokensAudited float64
			var got audit.Summary
			for inv := 0; !got.Complete; inv++ {
				if inv == 20 {
					t.Fatal("the run does not finish")
				}
				runner, logs, metrics := e.runner(audit.DefaultThresholds)
				runner.Store, runner.PageSize, runner.Margin, runner.Wall = store, 10, 30*time.Second, wall.Now
				// Five minutes per invocation at a minute per page: five pages, then a checkpoint.
				wall.Set(time.Now())
				ctx, cancel := context.WithDeadline(e.ctx, wall.Now().Add(5*time.Minute))
				got, err = runner.Run(ctx, now.Add(time.Duration(inv)*time.Hour))
				cancel()
				switch {
				case tc.failAt > 0 && store.reads == tc.failAt && !errors.Is(err, errInjected):
					t.Fatalf("invocation %d: err = %v, want the injected fault", inv, err)
				case err != nil && !errors.Is(err, errInjected):
					t.Fatalf("invocation %d: %v", inv, err)
				}
				if len(logs.Lines()) != 1 || len(metrics.Lines()) != 1 {
					t.Fatalf("invocation %d: %d log lines, %d metrics lines", inv, len(logs.Lines()), len(metrics.Lines()))
				}
				tokensAudited += decodeJSONLine(t, metrics.Lines()[0])["TokensAudited"].(float64)
				if err == nil && !got.RunAt.Equal(now) {
					t.Fatalf("invocation %d ran at %v, want the run's %v", inv, got.RunAt, now)
				}
				if cp, err := e.store.GetCheckpoint(e.ctx); err == nil {
					phases[cp.Phase] = true
					if !cp.RunAt.Equal(now) {
						t.Fatalf("checkpoint at %v", cp.RunAt)
					}
				}
			}
			if !phases[audit.PhaseScan] || !phases[audit.PhaseReport] {
				t.Fatalf("checkpoints in phases %v; the test must interrupt both", phases)
			}
			if got.Tokens != want.Tokens || got.Accounts != want.Accounts || got.Orgs != want.Orgs || got.Pages != want.Pages ||
				!reflect.DeepEqual(got.Findings, want.Findings) || tokensAudited != float64(want.Tokens) {
				t.Fatalf("resumed summary %+v (metrics: %v tokens)\nuninterrupted %+v", got, tokensAudited, want)
			}
			if gotState := tableState(t, e); !reflect.DeepEqual(gotState, wantState) {
				for k, v := range wantState {
					if gotState[k] != v {
						t.Errorf("%s:\n resumed       %s\n uninterrupted %s", k, gotState[k], v)
					}
				}
				t.Fatalf("%d items differ", len(wantState))
			}
		})
	}
}

// TestFailureIsLoggedAndCounted: a failed invocation still logs its one line, at error level,
// and counts an error in its metrics.
func TestFailureIsLoggedAndCounted(t *testing.T) {
	e := newEnv(t)
	acmeTable(t, e)
	runner, logs, metrics := e.runner(audit.DefaultThresholds)
	runner.Store = &slowStore{Store: e.store, wall: &testkit.Clock{}, failAt: 1}
	if _, err := runner.Run(e.ctx, t0); sa.ErrorCode(err) != sa.EUNAVAILABLE {
		t.Fatalf("err = %v, want EUNAVAILABLE", err)
	}
	if l := decodeJSONLine(t, logs.Lines()[0]); len(logs.Lines()) != 1 || l["level"] != "ERROR" || l["code"] != sa.EUNAVAILABLE {
		t.Fatalf("log = %v", logs.Lines())
	}
	assertEMF(t, metrics.Lines(), map[string]float64{"Errors": 1, "RunsCompleted": 0})
}

// TestHandleScheduledEvent: the handler audits as of the scheduled event's time (events/ holds
// the event EventBridge sends), and as of the wall clock for an event without one.
func TestHandleScheduledEvent(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "events", "audit-schedule.json"))
	if err != nil {
		t.Fatal(err)
	}
	var scheduled events.EventBridgeEvent
	if err := json.Unmarshal(raw, &scheduled); err != nil {
		t.Fatal(err)
	}
	if scheduled.DetailType != "Scheduled Event" || scheduled.Source != "aws.events" || scheduled.Time.IsZero() {
		t.Fatalf("events/audit-schedule.json = %+v", scheduled)
	}
	wall := time.Date(2027, 3, 4, 5, 6, 7, 0, time.UTC)
	for _, tc := range []struct {
		name  string
		event events.EventBridgeEvent
		want  time.Time
	}{
		{"ScheduledEvent", scheduled, scheduled.Time},
		{"NoTime", events.EventBridgeEvent{}, wall},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			acmeTable(t, e)
			runner, _, _ := e.runner(audit.DefaultThresholds)
			runner.Wall = func() time.Time { return wall }
			sum, err := runner.Handle(e.ctx, tc.event)
			if err != nil || !sum.Complete || !sum.RunAt.Equal(tc.want) {
				t.Fatalf("summary = %+v, %v; want a run at %v", sum, err, tc.want)
			}
			if b, _ := json.Marshal(sum); !strings.Contains(string(b), `"runAt":"`+tc.want.Format(time.RFC3339)) {
				t.Fatalf("result JSON = %s", b)
			}
		})
	}
}
