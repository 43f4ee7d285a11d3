package audit_test

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/opentrace/service-accounts/pkg/audit"
	sa "github.com/opentrace/service-accounts/pkg/serviceaccount"
)

// pageWatch wraps the store to prove that the Runner works one page at a time: it never reads
// the next page while writes of the last one are in flight, and never writes an item of an
// earlier page, so it holds at most one page of items.
type pageWatch struct {
	audit.Store
	mu         sync.Mutex
	inFlight   int
	current    map[string]bool // items of the page last read
	maxPage    int
	violations []string
	orgReads   int
}

func (w *pageWatch) OrgFindings(ctx context.Context, org, actor string) ([]sa.Finding, error) {
	w.mu.Lock()
	w.orgReads++
	w.mu.Unlock()
	return w.Store.OrgFindings(ctx, org, actor)
}

func (w *pageWatch) ScanAudit(ctx context.Context, cursor string, limit int) (audit.Page, error) {
	w.mu.Lock()
	if w.inFlight > 0 {
		w.violations = append(w.violations, fmt.Sprintf("read a page with %d writes in flight", w.inFlight))
	}
	w.mu.Unlock()
	page, err := w.Store.ScanAudit(ctx, cursor, limit)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.current = map[string]bool{}
	for _, t := range page.Tokens {
		w.current[t.ServiceAccountID+"/"+t.ID] = true
	}
	for _, a := range page.Accounts {
		w.current[a.ID+"/"] = true
	}
	w.maxPage = max(w.maxPage, len(page.Tokens)+len(page.Accounts))
	return page, err
}

func (w *pageWatch) SetFindings(ctx context.Context, org, saID, tokenID string, fs []sa.Finding, at time.Time) error {
	w.mu.Lock()
	if !w.current[saID+"/"+tokenID] {
		w.violations = append(w.violations, "wrote "+saID+"/"+tokenID+", not of the page in hand")
	}
	w.inFlight++
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		w.inFlight--
		w.mu.Unlock()
	}()
	return w.Store.SetFindings(ctx, org, saID, tokenID, fs, at)
}

// TestRunScales audits 10,000 tokens of 1,000 accounts across 100 orgs a page at a time: every
// Scan asks for one page and gets at most one, the run takes at least tokens/PageSize pages, the
// Runner never holds more than one page of items, and only orgs with findings are read again
// for their reports. (A quarter of the orgs have findings: minidyn answers a Query by walking
// the whole table, so every org read costs the test a table's worth of work.)
func TestRunScales(t *testing.T) {
	const pageSize = 100
	shape := seedShape{tokens: 10_000, orgs: 100, tokensPerAccount: 10, riskyEvery: 4}
	now := t0.Add(400 * audit.Day)
	e := newEnv(t)
	start := time.Now()
	want := seedBulk(t, e.db, shape, now)
	t.Logf("seeded %d tokens in %v", shape.tokens, time.Since(start))
	e.counter.wantLimit = pageSize
	watch := &pageWatch{Store: e.store}
	runner, _, _ := e.runner(audit.DefaultThresholds)
	runner.Store, runner.PageSize = watch, pageSize
	start = time.Now()
	sum, err := runner.Run(e.ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("audited in %v: %+v", time.Since(start), sum)
	for _, k := range audit.Kinds {
		want[k] += 0
	}
	if !sum.Complete || sum.Tokens != shape.tokens || sum.Accounts != shape.tokens/shape.tokensPerAccount || sum.Orgs != shape.orgs ||
		!reflect.DeepEqual(sum.Findings, want) {
		t.Fatalf("summary = %+v, want findings %v", sum, want)
	}
	if sum.Pages < shape.tokens/pageSize || int64(sum.Pages) != e.counter.scans.Load() {
		t.Fatalf("%d pages, %d Scan requests; want at least %d pages, one request each", sum.Pages, e.counter.scans.Load(), shape.tokens/pageSize)
	}
	if e.counter.maxScanItems.Load() > pageSize || e.counter.badLimits.Load() != 0 || watch.maxPage > pageSize {
		t.Fatalf("largest Scan response %d items, largest page %d, %d Scans without Limit %d",
			e.counter.maxScanItems.Load(), watch.maxPage, e.counter.badLimits.Load(), pageSize)
	}
	if len(watch.violations) > 0 {
		t.Fatalf("the Runner held more than one page: %v", watch.violations[:min(5, len(watch.violations))])
	}
	if want := shape.orgs / shape.riskyEvery; watch.orgReads != want {
		t.Fatalf("%d org partitions read for reports, want %d (the orgs with findings)", watch.orgReads, want)
	}
	for org, want := range map[string]bool{"org_0008": true, "org_0007": false} {
		report, err := e.svc.AuditReport(e.ctx, org)
		if err != nil || (len(report.Findings) > 0) != want || !report.GeneratedAt.Equal(now) {
			t.Fatalf("%s report = %d findings at %v, %v", org, len(report.Findings), report.GeneratedAt, err)
		}
	}
}
