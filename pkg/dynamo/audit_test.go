package dynamo_test

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/opentrace/service-accounts/pkg/audit"
	"github.com/opentrace/service-accounts/pkg/dynamo"
	"github.com/opentrace/service-accounts/pkg/dynamo/dynamotest"
	sa "github.com/opentrace/service-accounts/pkg/serviceaccount"
)

var auditT0 = time.UnixMilli(1_700_000_000_000).UTC()

// auditCountingDB is the real SDK client, counting Scan requests and the largest response.
type auditCountingDB struct {
	dynamo.API
	scans, maxItems atomic.Int64
}

func (c *auditCountingDB) Scan(ctx context.Context, in *dynamodb.ScanInput, opts ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error) {
	out, err := c.API.Scan(ctx, in, opts...)
	if err == nil {
		c.scans.Add(1)
		if n := int64(len(out.Items)); n > c.maxItems.Load() {
			c.maxItems.Store(n)
		}
	}
	return out, err
}

// auditSeed creates, through the store's own writes, org_a with accounts sa_1 (tokens tok_1,
// tok_2; tok_2 revoked by a user) and sa_2 (no tokens), and org_gone whose only account was
// deleted, leaving just its counter.
func auditSeed(t *testing.T, store *dynamo.Store) {
	t.Helper()
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, a := range []sa.ServiceAccount{account("org_a", "sa_1", "one"), account("org_a", "sa_2", "two"), account("org_gone", "sa_9", "nine")} {
		must(store.CreateServiceAccount(ctx, a, a.Name, 10))
	}
	for _, id := range []string{"tok_1", "tok_2"} {
		tok := sa.Token{ID: id, OrgID: "org_a", ServiceAccountID: "sa_1", CreatedAt: auditT0, Hash: "h_" + id, PepperVersion: "1"}
		must(store.CreateToken(ctx, tok, sa.Credential{OrgID: "org_a", ServiceAccountID: "sa_1", TokenID: id}, 10))
	}
	must(store.RevokeToken(ctx, "org_a", "sa_1", "tok_2", "user_admin", auditT0.Add(time.Hour)))
	must(store.DeleteServiceAccount(ctx, "org_gone", "sa_9", "user_admin", auditT0))
	// Items the scan must pass over: a report, a checkpoint, a run's org mark.
	must(store.PutAuditReport(ctx, "org_a", sa.AuditReport{GeneratedAt: auditT0, Findings: []sa.Finding{}}))
	must(store.PutCheckpoint(ctx, audit.Checkpoint{RunAt: auditT0, Phase: audit.PhaseScan}))
	must(store.MarkOrg(ctx, auditT0, "org_a", true, auditT0.Add(time.Hour)))
}

// TestScanAuditPages: the scan returns every token and account once, and every org including
// one left with only its counter, in pages that never exceed the limit, and nothing else.
func TestScanAuditPages(t *testing.T) {
	ctx := context.Background()
	for _, limit := range []int{1, 2, 3, 100} {
		t.Run(fmt.Sprint("Limit", limit), func(t *testing.T) {
			store, db := newStore(t)
			auditSeed(t, store)
			counter := &auditCountingDB{API: db.Client}
			store, err := dynamo.New(counter, db.Table, cursorKey)
			if err != nil {
				t.Fatal(err)
			}
			var tokens, accounts, orgs []string
			cursor := ""
			for pages := 1; ; pages++ {
				page, err := store.ScanAudit(ctx, cursor, limit)
				if err != nil {
					t.Fatal(err)
				}
				if n := len(page.Tokens) + len(page.Accounts); n > limit {
					t.Fatalf("page %d holds %d items, limit %d", pages, n, limit)
				}
				for _, tk := range page.Tokens {
					tokens = append(tokens, tk.OrgID+"/"+tk.ServiceAccountID+"/"+tk.ID)
					if tk.ID == "tok_2" && (tk.ClosedAt == nil || tk.RevokedBy != "user_admin" || tk.Active(auditT0.Add(2*time.Hour))) {
						t.Errorf("revoked token read as %+v", tk)
					}
					if tk.ID == "tok_1" && (!tk.CreatedAt.Equal(auditT0) || !tk.Active(auditT0)) {
						t.Errorf("open token read as %+v", tk)
					}
				}
				for _, a := range page.Accounts {
					accounts = append(accounts, a.OrgID+"/"+a.ID)
				}
				for _, o := range page.Orgs {
					if !slices.Contains(orgs, o) {
						orgs = append(orgs, o)
					}
				}
				if page.Next == "" {
					if counter.scans.Load() != int64(pages) || counter.maxItems.Load() > int64(limit) {
						t.Fatalf("%d Scan requests for %d pages, largest %d items", counter.scans.Load(), pages, counter.maxItems.Load())
					}
					break
				}
				cursor = page.Next
			}
			slices.Sort(tokens)
			slices.Sort(accounts)
			slices.Sort(orgs)
			if want := []string{"org_a/sa_1/tok_1", "org_a/sa_1/tok_2"}; !slices.Equal(tokens, want) {
				t.Errorf("tokens = %v, want %v", tokens, want)
			}
			if want := []string{"org_a/sa_1", "org_a/sa_2"}; !slices.Equal(accounts, want) {
				t.Errorf("accounts = %v, want %v", accounts, want)
			}
			if want := []string{"org_a", "org_gone"}; !slices.Equal(orgs, want) {
				t.Errorf("orgs = %v, want %v", orgs, want)
			}
		})
	}
}

func TestScanAuditRejectsForeignCursor(t *testing.T) {
	store, _ := newStore(t)
	for _, c := range []string{"garbage", `{"pk":""}`, "c1.AAAA.BBBB"} {
		if _, err := store.ScanAudit(context.Background(), c, 10); sa.ErrorCode(err) != sa.EINVALID {
			t.Errorf("cursor %q: %v, want EINVALID", c, err)
		}
	}
}

// TestSetFindings: findings round-trip through the scan, clearing removes them, and an item
// deleted meanwhile is ENOTFOUND and is not recreated.
func TestSetFindings(t *testing.T) {
	ctx := context.Background()
	finding := func(saID, tokenID, kind string) sa.Finding {
		return sa.Finding{ServiceAccountID: saID, TokenID: tokenID, Kind: kind, Since: auditT0, Detail: "d " + kind}
	}
	for _, tc := range []struct {
		name           string
		saID, tokenID  string
		writes         [][]sa.Finding // written in turn; the last one must be read back
		code           string
		wantItemExists bool
	}{
		{name: "Token", saID: "sa_1", tokenID: "tok_1", wantItemExists: true,
			writes: [][]sa.Finding{{finding("sa_1", "tok_1", sa.FindingNeverUsed), finding("sa_1", "tok_1", sa.FindingRotationDue)}}},
		{name: "Account", saID: "sa_2", wantItemExists: true,
			writes: [][]sa.Finding{{finding("sa_2", "", sa.FindingUnusedAccount)}}},
		{name: "Replaced", saID: "sa_1", tokenID: "tok_1", wantItemExists: true,
			writes: [][]sa.Finding{{finding("sa_1", "tok_1", sa.FindingNeverUsed)}, {finding("sa_1", "tok_1", sa.FindingStale)}}},
		{name: "Cleared", saID: "sa_1", tokenID: "tok_1", wantItemExists: true,
			writes: [][]sa.Finding{{finding("sa_1", "tok_1", sa.FindingNeverUsed)}, nil}},
		{name: "ErrNotFoundToken", saID: "sa_1", tokenID: "tok_gone", code: sa.ENOTFOUND,
			writes: [][]sa.Finding{{finding("sa_1", "tok_gone", sa.FindingNeverUsed)}}},
		{name: "ErrNotFoundAccount", saID: "sa_gone", code: sa.ENOTFOUND,
			writes: [][]sa.Finding{nil}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store, db := newStore(t)
			auditSeed(t, store)
			var err error
			for _, w := range tc.writes {
				err = store.SetFindings(ctx, "org_a", tc.saID, tc.tokenID, w, auditT0.Add(time.Minute))
			}
			if sa.ErrorCode(err) != tc.code {
				t.Fatalf("err = %v, want code %q", err, tc.code)
			}
			sk := "SA#" + tc.saID
			if tc.tokenID != "" {
				sk = "TOKEN#" + tc.saID + "#" + tc.tokenID
			}
			out, err := db.Client.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(db.Table), Key: map[string]types.AttributeValue{
				"pk": &types.AttributeValueMemberS{Value: "ORG#org_a"}, "sk": &types.AttributeValueMemberS{Value: sk},
			}})
			if err != nil {
				t.Fatal(err)
			}
			if (out.Item != nil) != tc.wantItemExists {
				t.Fatalf("item exists = %v, want %v: %v", out.Item != nil, tc.wantItemExists, out.Item)
			}
			if !tc.wantItemExists {
				return
			}
			want := tc.writes[len(tc.writes)-1]
			switch l, present := out.Item["findings"]; l := l.(type) {
			case *types.AttributeValueMemberL:
				if len(l.Value) != len(want) || len(want) == 0 {
					t.Errorf("findings = %d, want %d", len(l.Value), len(want))
				}
			default:
				if present || len(want) != 0 {
					t.Errorf("findings attribute = %#v, want %d findings", l, len(want))
				}
			}
			if at, ok := out.Item["auditedAt"].(*types.AttributeValueMemberN); !ok || at.Value != fmt.Sprint(auditT0.Add(time.Minute).UnixMilli()) {
				t.Errorf("auditedAt = %v", out.Item["auditedAt"])
			}
			got := scannedFindings(t, store, tc.saID, tc.tokenID)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("read back %+v, want %+v", got, want)
			}
		})
	}
}

// scannedFindings returns the findings the scan reads on one item.
func scannedFindings(t *testing.T, store *dynamo.Store, saID, tokenID string) []sa.Finding {
	t.Helper()
	cursor := ""
	for {
		page, err := store.ScanAudit(context.Background(), cursor, 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, tk := range page.Tokens {
			if tokenID != "" && tk.ServiceAccountID == saID && tk.ID == tokenID {
				return tk.Findings
			}
		}
		for _, a := range page.Accounts {
			if tokenID == "" && a.ID == saID {
				return a.Findings
			}
		}
		if cursor = page.Next; cursor == "" {
			t.Fatalf("%s %s not scanned", saID, tokenID)
		}
	}
}

// TestOrgFindings: an org's findings come from its accounts and open tokens, and from tokens
// the audit revoked, but not from tokens a user closed since, nor from its report.
func TestOrgFindings(t *testing.T) {
	ctx := context.Background()
	store, _ := newStore(t)
	auditSeed(t, store)
	tok3 := sa.Token{ID: "tok_3", OrgID: "org_a", ServiceAccountID: "sa_1", CreatedAt: auditT0, Hash: "h_tok_3", PepperVersion: "1"}
	if err := store.CreateToken(ctx, tok3, sa.Credential{OrgID: "org_a", ServiceAccountID: "sa_1", TokenID: "tok_3"}, 10); err != nil {
		t.Fatal(err)
	}
	f := func(saID, tokenID, kind string) sa.Finding {
		return sa.Finding{ServiceAccountID: saID, TokenID: tokenID, Kind: kind, Since: auditT0, Detail: kind}
	}
	writes := []sa.Finding{
		f("sa_1", "tok_1", sa.FindingNeverUsed), // open
		f("sa_1", "tok_2", sa.FindingStale),     // closed by a user
		f("sa_1", "tok_3", sa.FindingStale),     // to be revoked by the audit
		f("sa_2", "", sa.FindingUnusedAccount),  // account
	}
	for _, w := range writes {
		if err := store.SetFindings(ctx, "org_a", w.ServiceAccountID, w.TokenID, []sa.Finding{w}, auditT0); err != nil {
			t.Fatal(err)
		}
	}
	if err := store.RevokeToken(ctx, "org_a", "sa_1", "tok_3", audit.Actor, auditT0); err != nil {
		t.Fatal(err)
	}
	if err := store.PutAuditReport(ctx, "org_a", sa.AuditReport{GeneratedAt: auditT0, Findings: writes}); err != nil {
		t.Fatal(err)
	}
	got, err := store.OrgFindings(ctx, "org_a", audit.Actor)
	if err != nil {
		t.Fatal(err)
	}
	audit.SortFindings(got)
	want := []sa.Finding{writes[0], writes[2], writes[3]}
	audit.SortFindings(want)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("org findings = %+v\nwant %+v", got, want)
	}
	if got, err := store.OrgFindings(ctx, "org_none", audit.Actor); err != nil || len(got) != 0 {
		t.Fatalf("org without items: %v %v", got, err)
	}
}

func TestAuditReportRoundTrip(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		put  *sa.AuditReport
		want sa.AuditReport
	}{
		{name: "NotYetReported", want: sa.AuditReport{Findings: []sa.Finding{}}},
		{name: "Empty", put: &sa.AuditReport{GeneratedAt: auditT0, Findings: nil},
			want: sa.AuditReport{GeneratedAt: auditT0, Findings: []sa.Finding{}}},
		{name: "WithFindings", put: &sa.AuditReport{GeneratedAt: auditT0, Findings: []sa.Finding{
			{ServiceAccountID: "sa_1", Kind: sa.FindingUnusedAccount, Since: auditT0.Add(-time.Hour), Detail: "a"},
			{ServiceAccountID: "sa_1", TokenID: "tok_1", Kind: sa.FindingExpiring, Since: auditT0.Add(time.Hour), Detail: "b"},
		}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store, _ := newStore(t)
			if tc.put != nil {
				if err := store.PutAuditReport(ctx, "org_a", *tc.put); err != nil {
					t.Fatal(err)
				}
				if tc.want.Findings == nil {
					tc.want = *tc.put
				}
			}
			got, err := store.GetAuditReport(ctx, "org_a")
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("report = %+v, want %+v", got, tc.want)
			}
			if other, err := store.GetAuditReport(ctx, "org_b"); err != nil || !other.GeneratedAt.IsZero() || len(other.Findings) != 0 {
				t.Fatalf("another org's report = %+v, %v", other, err)
			}
		})
	}
}

func TestCheckpointRoundTrip(t *testing.T) {
	ctx := context.Background()
	store, _ := newStore(t)
	if _, err := store.GetCheckpoint(ctx); sa.ErrorCode(err) != sa.ENOTFOUND {
		t.Fatalf("no checkpoint: %v, want ENOTFOUND", err)
	}
	want := audit.Checkpoint{RunAt: auditT0, Phase: audit.PhaseReport, Cursor: "org_b", Summary: audit.Summary{
		RunAt: auditT0, Orgs: 1, Accounts: 2, Tokens: 3, Revoked: 4, Writes: 5, Pages: 6, DurationMs: 7, TruncatedReports: 8,
		Findings: map[string]int{sa.FindingStale: 9, sa.FindingExpiring: 0},
	}}
	for range 2 { // a second save replaces the first
		if err := store.PutCheckpoint(ctx, want); err != nil {
			t.Fatal(err)
		}
	}
	got, err := store.GetCheckpoint(ctx)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("checkpoint = %+v (%v), want %+v", got, err, want)
	}
	for range 2 { // deleting none is not an error
		if err := store.DeleteCheckpoint(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := store.GetCheckpoint(ctx); sa.ErrorCode(err) != sa.ENOTFOUND {
		t.Fatalf("after delete: %v, want ENOTFOUND", err)
	}
}

// TestMarkedOrgs: a run's marks page in order from any org, apart from another run's, and an
// org's findings flag, once set, survives later marks without it.
func TestMarkedOrgs(t *testing.T) {
	ctx := context.Background()
	store, db := newStore(t)
	run, other := auditT0, auditT0.Add(time.Millisecond)
	for _, m := range []struct {
		org string
		has bool
	}{{"org_c", false}, {"org_a", true}, {"org_e", false}, {"org_b", false}, {"org_d", true}, {"org_a", false}, {"org_b", true}} {
		if err := store.MarkOrg(ctx, run, m.org, m.has, auditT0.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	if err := store.MarkOrg(ctx, other, "org_x", true, auditT0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	mark := func(org string, has bool) audit.OrgMark { return audit.OrgMark{OrgID: org, HasFindings: has} }
	for _, tc := range []struct {
		name  string
		after string
		limit int
		want  []audit.OrgMark
	}{
		{"FirstPage", "", 2, []audit.OrgMark{mark("org_a", true), mark("org_b", true)}},
		{"Middle", "org_b", 2, []audit.OrgMark{mark("org_c", false), mark("org_d", true)}},
		{"Last", "org_d", 2, []audit.OrgMark{mark("org_e", false)}},
		{"All", "", 10, []audit.OrgMark{mark("org_a", true), mark("org_b", true), mark("org_c", false), mark("org_d", true), mark("org_e", false)}},
		{"PastTheEnd", "org_e", 2, []audit.OrgMark{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, more, err := store.MarkedOrgs(ctx, run, tc.after, tc.limit)
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("orgs = %v (%v), want %v", got, err, tc.want)
			}
			if len(got) < tc.limit && more {
				t.Fatalf("a short page says more follow")
			}
		})
	}
	out, err := db.Client.Scan(ctx, &dynamodb.ScanInput{TableName: aws.String(db.Table)})
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range out.Items {
		if ttl, ok := it[dynamo.TTLAttribute].(*types.AttributeValueMemberN); !ok || ttl.Value != fmt.Sprint(auditT0.Add(time.Hour).Unix()) {
			t.Errorf("mark without its TTL: %v", it)
		}
	}
}

// TestAuditStoreFailuresAreUnavailable: every audit read and write surfaces a DynamoDB fault as
// EUNAVAILABLE, so the run stops and its retry resumes.
func TestAuditStoreFailuresAreUnavailable(t *testing.T) {
	ctx := context.Background()
	store, db := newStore(t)
	auditSeed(t, store)
	db.Tap.FailAll()
	defer db.Tap.Fail(nil)
	for name, call := range map[string]func() error{
		"ScanAudit":   func() error { _, err := store.ScanAudit(ctx, "", 10); return err },
		"SetFindings": func() error { return store.SetFindings(ctx, "org_a", "sa_1", "tok_1", nil, auditT0) },
		"MarkOrg":     func() error { return store.MarkOrg(ctx, auditT0, "org_a", true, auditT0) },
		"MarkedOrgs":  func() error { _, _, err := store.MarkedOrgs(ctx, auditT0, "", 10); return err },
		"OrgFindings": func() error { _, err := store.OrgFindings(ctx, "org_a", audit.Actor); return err },
		"PutReport":   func() error { return store.PutAuditReport(ctx, "org_a", sa.AuditReport{}) },
		"GetReport":   func() error { _, err := store.GetAuditReport(ctx, "org_a"); return err },
		"GetCheckpt":  func() error { _, err := store.GetCheckpoint(ctx); return err },
		"PutCheckpt":  func() error { return store.PutCheckpoint(ctx, audit.Checkpoint{RunAt: auditT0}) },
		"DelCheckpt":  func() error { return store.DeleteCheckpoint(ctx) },
	} {
		if err := call(); sa.ErrorCode(err) != sa.EUNAVAILABLE {
			t.Errorf("%s: %v, want EUNAVAILABLE", name, err)
		}
	}
}

// TestUnsignedStoreCannotList: the store of a function that holds no cursor key (the audit,
// the stream consumer) refuses to list rather than issue unsigned cursors, and serves the rest.
func TestUnsignedStoreCannotList(t *testing.T) {
	db := dynamotest.Start(t)
	store := dynamo.NewUnsigned(db.Client, db.Table)
	if _, err := store.ListServiceAccounts(context.Background(), "org_a", 10, ""); sa.ErrorCode(err) != sa.EINTERNAL {
		t.Fatalf("list: %v, want EINTERNAL", err)
	}
	if _, err := store.GetAuditReport(context.Background(), "org_a"); err != nil {
		t.Fatalf("the report needs no cursor key: %v", err)
	}
}
