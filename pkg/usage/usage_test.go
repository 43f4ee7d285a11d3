package usage_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/opentrace/service-accounts/pkg/dynamo"
	"github.com/opentrace/service-accounts/pkg/dynamo/dynamotest"
	"github.com/opentrace/service-accounts/pkg/secrets"
	sa "github.com/opentrace/service-accounts/pkg/serviceaccount"
	"github.com/opentrace/service-accounts/pkg/testworld"
	"github.com/opentrace/service-accounts/pkg/token"
	"github.com/opentrace/service-accounts/pkg/usage"
)

// The fixtures name these ids; each test substitutes the ids its service generated.
const (
	org         = "org_acme"
	fixtureSA   = "sa_01JD5Z3Q7K8M9N0P1R2S3T4V5W"
	fixtureTok1 = "tok_01JD5Z4A1B2C3D4E5F6G7H8J9K"
	fixtureTok2 = "tok_01JD5Z4A1B2C3D4E5F6G7H8J9M"
)

// Times the fixtures carry, in epoch milliseconds; 0 stands for "never used".
const (
	t0 int64 = 1767225600000
	t1 int64 = 1767225660000
	t2 int64 = 1767225720000
)

// world is the real store with one account of org_acme holding two tokens, created
// through the service as the API creates them.
type world struct {
	ctx        context.Context
	db         *dynamotest.DB
	store      *dynamo.Store // the stream consumer's, held to its IAM role
	admin      *dynamo.Store // with full access, for setting up and checking
	svc        *sa.Service
	acct       sa.ServiceAccount
	tok1, tok2 sa.Token
	ids        *strings.Replacer
}

func newWorld(t *testing.T) *world {
	t.Helper()
	ctx := context.Background()
	db := dynamotest.Start(t)
	src, err := secrets.NewStatic(secrets.Ring{Current: token.Pepper{Version: "1", Key: []byte(strings.Repeat("p", 40))}})
	if err != nil {
		t.Fatal(err)
	}
	admin, err := dynamo.New(db.Client, db.Table, []byte(strings.Repeat("c", 32)))
	if err != nil {
		t.Fatal(err)
	}
	// The consumer's store is held to the usage function's IAM role; the service that sets up
	// what it rolls up has full access.
	w := &world{ctx: ctx, db: db, store: dynamo.NewUnsigned(testworld.FunctionClient(t, "UsageFunction", db), db.Table),
		admin: admin, svc: sa.NewService(admin, secrets.Peppers{Source: src})}
	if w.acct, _, err = w.svc.Create(ctx, org, "user_admin", sa.CreateInput{Name: "claude-code-dev-team"}); err != nil {
		t.Fatal(err)
	}
	if w.tok1, _, err = w.svc.GenerateToken(ctx, org, w.acct.ID, "user_admin", sa.GenerateInput{Name: "laptop"}); err != nil {
		t.Fatal(err)
	}
	if w.tok2, _, err = w.svc.GenerateToken(ctx, org, w.acct.ID, "user_admin", sa.GenerateInput{Name: "ci"}); err != nil {
		t.Fatal(err)
	}
	w.ids = strings.NewReplacer(fixtureSA, w.acct.ID, fixtureTok1, w.tok1.ID, fixtureTok2, w.tok2.ID)
	return w
}

// load reads a stream event fixture (under events/ for `sam local invoke`, or testdata/), with
// the fixture ids replaced by the world's.
func (w *world) load(t *testing.T, path string) events.DynamoDBEvent {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var ev events.DynamoDBEvent
	if err := json.Unmarshal([]byte(w.ids.Replace(string(raw))), &ev); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return ev
}

// lastUse is the last use the get route shows for the account and each token, as epoch
// milliseconds, 0 where never used.
type lastUse struct{ acct, tok1, tok2 int64 }

func (w *world) lastUse(t *testing.T) lastUse {
	t.Helper()
	acct, tokens, err := w.svc.Get(w.ctx, org, w.acct.ID)
	if err != nil {
		t.Fatal(err)
	}
	msOf := func(tm *time.Time) int64 {
		if tm == nil {
			return 0
		}
		return tm.UnixMilli()
	}
	got := lastUse{acct: msOf(acct.LastUsedAt)}
	for _, tk := range tokens {
		switch tk.ID {
		case w.tok1.ID:
			got.tok1 = msOf(tk.LastUsedAt)
		case w.tok2.ID:
			got.tok2 = msOf(tk.LastUsedAt)
		default:
			t.Fatalf("unexpected token %s", tk.ID)
		}
	}
	return got
}

// summary is the per-batch log line.
type summary struct {
	Records, RolledUp, Ignored, Dropped, Failed int
	RetryFrom                                   string
}

// logLines decodes the JSON log lines written to buf.
func logLines(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var lines []map[string]any
	for line := range strings.Lines(buf.String()) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		lines = append(lines, m)
	}
	return lines
}

func lastSummary(t *testing.T, buf *bytes.Buffer) summary {
	t.Helper()
	var s summary
	found := false
	for _, m := range logLines(t, buf) {
		if m["msg"] != "usage batch" {
			continue
		}
		b, _ := json.Marshal(m)
		s = summary{}
		if err := json.Unmarshal(b, &s); err != nil {
			t.Fatal(err)
		}
		found = true
	}
	if !found {
		t.Fatal("no summary line logged")
	}
	return s
}

func newHandler(store usage.Store, buf *bytes.Buffer) *usage.Handler {
	return &usage.Handler{Store: store, Log: slog.New(slog.NewJSONHandler(buf, nil))}
}

func failures(resp events.DynamoDBEventResponse) []string {
	var ids []string
	for _, f := range resp.BatchItemFailures {
		ids = append(ids, f.ItemIdentifier)
	}
	return ids
}

const (
	modify = "../../events/usage.json" // tok1: t0 → t1
	newer  = "testdata/newer.json"     // tok1: t1 → t2
)

// TestHandle delivers fixture batches, in order, to the handler on the real store and checks
// what the get route then shows, the partial batch response and the batch summary.
func TestHandle(t *testing.T) {
	for _, tc := range []struct {
		name    string
		before  func(t *testing.T, w *world)
		batches []string
		want    lastUse
		summary summary // of the last batch
	}{
		{name: "MODIFY", batches: []string{modify},
			want: lastUse{t1, t1, 0}, summary: summary{Records: 1, RolledUp: 1}},
		{name: "INSERT", batches: []string{"testdata/insert.json"}, // tok2 generated unused, tok1 with a use
			want: lastUse{t1, t1, 0}, summary: summary{Records: 2, RolledUp: 1, Ignored: 1}},
		{name: "REMOVE", batches: []string{"testdata/remove.json"},
			want: lastUse{0, 0, 0}, summary: summary{Records: 1, Ignored: 1}},
		{name: "Forward", batches: []string{modify, newer},
			want: lastUse{t2, t2, 0}, summary: summary{Records: 1, RolledUp: 1}},
		{name: "Replay", batches: []string{modify, modify, modify},
			want: lastUse{t1, t1, 0}, summary: summary{Records: 1, RolledUp: 1}},
		{name: "OlderAfterNewer", batches: []string{newer, modify},
			want: lastUse{t2, t2, 0}, summary: summary{Records: 1, RolledUp: 1}},
		{name: "NoNewUse", batches: []string{"testdata/ignored.json"}, // incl. the roll-up's own writes
			want: lastUse{0, 0, 0}, summary: summary{Records: 4, Ignored: 4}},
		{name: "PoisonAmongGood", batches: []string{"testdata/poison.json"},
			want: lastUse{t2, t1, t2}, summary: summary{Records: 6, RolledUp: 2, Dropped: 4}},
		{name: "RevokedToken", batches: []string{modify}, // its metadata stays listed, so its last use still shows
			before: func(t *testing.T, w *world) {
				t.Helper()
				if err := w.svc.RevokeToken(w.ctx, org, w.acct.ID, w.tok1.ID, "user_admin"); err != nil {
					t.Fatal(err)
				}
			},
			want: lastUse{t1, t1, 0}, summary: summary{Records: 1, RolledUp: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			if tc.before != nil {
				tc.before(t, w)
			}
			var logs bytes.Buffer
			h := newHandler(w.store, &logs)
			for _, path := range tc.batches {
				resp, err := h.Handle(w.ctx, w.load(t, path))
				if err != nil || len(resp.BatchItemFailures) != 0 {
					t.Fatalf("%s: failures %v, error %v; want none", path, failures(resp), err)
				}
			}
			if got := w.lastUse(t); got != tc.want {
				t.Errorf("last use %+v, want %+v", got, tc.want)
			}
			if got := lastSummary(t, &logs); got != tc.summary {
				t.Errorf("summary %+v, want %+v", got, tc.summary)
			}
			// The key of a credential is a token's hash; no image value may reach the logs.
			for _, leak := range []string{"TOKENHASH#", "2026-01-01T00:01:00Z", "1.76722566e12"} {
				if strings.Contains(logs.String(), leak) {
					t.Errorf("logs contain %q:\n%s", leak, logs.String())
				}
			}
		})
	}
}

// TestHandleDeletedAccount: a use of a token whose account has since been deleted is
// acknowledged, not retried, and brings back neither the account nor the token.
func TestHandleDeletedAccount(t *testing.T) {
	w := newWorld(t)
	if err := w.svc.Delete(w.ctx, org, w.acct.ID, "user_admin"); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	resp, err := newHandler(w.store, &logs).Handle(w.ctx, w.load(t, modify))
	if err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("failures %v, error %v; want the record acknowledged", failures(resp), err)
	}
	if _, err := w.admin.GetServiceAccount(w.ctx, org, w.acct.ID); sa.ErrorCode(err) != sa.ENOTFOUND {
		t.Fatalf("the account came back: %v", err)
	}
	if tokens, err := w.admin.ListTokens(w.ctx, org, w.acct.ID); err != nil || len(tokens) != 0 {
		t.Fatalf("tokens came back: %v (%v)", tokens, err)
	}
}

// faultAt is the real store with DynamoDB failing from its n-th roll-up on, so that one
// batch meets a store that works for its first records and then fails.
type faultAt struct {
	usage.Store
	tap   *dynamotest.Tap
	n     int
	calls int
}

func (f *faultAt) RollUpUsage(ctx context.Context, orgID, saID, tokenID string, at time.Time) error {
	f.calls++
	if f.calls == f.n {
		f.tap.FailAll()
	}
	return f.Store.RollUpUsage(ctx, orgID, saID, tokenID, at)
}

// TestHandleStoreFailure: when the store fails on a record, that record and every later one are
// reported, the later ones without being attempted, and the earlier ones are rolled up; Lambda's
// retry from the first reported record then completes the batch.
func TestHandleStoreFailure(t *testing.T) {
	for _, tc := range []struct {
		name      string
		faultAt   int // the roll-up call before which DynamoDB starts failing
		failedIdx []int
		want      lastUse // after the failed attempt
		calls     int
	}{
		{"First", 1, []int{0, 1, 2, 3}, lastUse{0, 0, 0}, 1},
		{"Second", 2, []int{1, 2, 3}, lastUse{t1, t1, 0}, 2},
		{"Last", 4, []int{3}, lastUse{t2, t2, t1}, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			ev := w.load(t, "testdata/batch.json") // tok1 t1, tok2 t1, tok1 t2, tok2 t2
			store := &faultAt{Store: w.store, tap: w.db.Tap, n: tc.faultAt}
			var logs bytes.Buffer
			resp, err := newHandler(store, &logs).Handle(w.ctx, ev)
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for _, i := range tc.failedIdx {
				want = append(want, ev.Records[i].Change.SequenceNumber)
			}
			if got := failures(resp); !slices.Equal(got, want) {
				t.Fatalf("failures %v, want %v", got, want)
			}
			if store.calls != tc.calls {
				t.Errorf("%d store calls, want %d: records after a failure must not be attempted", store.calls, tc.calls)
			}
			w.db.Tap.Fail(nil)
			if got := w.lastUse(t); got != tc.want {
				t.Errorf("after the failure: last use %+v, want %+v", got, tc.want)
			}
			s := lastSummary(t, &logs)
			if s.Failed != len(want) || s.RetryFrom != want[0] || s.RolledUp != tc.faultAt-1 {
				t.Errorf("summary %+v", s)
			}

			// Lambda delivers the shard again from the first reported record.
			first := slices.IndexFunc(ev.Records, func(r events.DynamoDBEventRecord) bool {
				return r.Change.SequenceNumber == want[0]
			})
			retry := events.DynamoDBEvent{Records: ev.Records[first:]}
			resp, err = newHandler(w.store, &logs).Handle(w.ctx, retry)
			if err != nil || len(resp.BatchItemFailures) != 0 {
				t.Fatalf("retry: failures %v, error %v", failures(resp), err)
			}
			if got := w.lastUse(t); got != (lastUse{t2, t2, t2}) {
				t.Errorf("after the retry: last use %+v, want every use rolled up", got)
			}
		})
	}
}

// TestHandleNearDeadline: out of time, the handler reports what it has not done instead of
// letting Lambda time the whole batch out.
func TestHandleNearDeadline(t *testing.T) {
	w := newWorld(t)
	ctx, cancel := context.WithTimeout(w.ctx, 100*time.Millisecond) // less than the reserve
	defer cancel()
	ev := w.load(t, "testdata/batch.json")
	var logs bytes.Buffer
	resp, err := newHandler(w.store, &logs).Handle(ctx, ev)
	if err != nil || len(resp.BatchItemFailures) != len(ev.Records) {
		t.Fatalf("failures %v, error %v; want every record reported", failures(resp), err)
	}
	if got := w.lastUse(t); got != (lastUse{}) {
		t.Fatalf("last use %+v, want nothing written", got)
	}
}
