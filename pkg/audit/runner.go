package audit

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	sa "github.com/opentrace/service-accounts/pkg/serviceaccount"
)

// Actor is who the audit trail names for the audit's own revocations.
const Actor = "audit"

// Phases of a run, as a checkpoint records them.
const (
	PhaseScan   = "scan"   // the table scan: rules applied, findings written onto items
	PhaseReport = "report" // one report per organisation the scan found
	phaseDone   = ""       // never saved: a complete run deletes its checkpoint
)

// Defaults of the Runner's knobs.
const (
	DefaultPageSize    = 500
	DefaultMargin      = 30 * time.Second
	DefaultConcurrency = 8
	// MaxReportFindings bounds a report so its item stays well inside DynamoDB's 400 KB (a
	// finding takes about 250 bytes); the findings beyond it stay on their tokens and accounts.
	MaxReportFindings = 1000
	// markerTTL is how long the run's list of organisations outlives the run: long enough for a
	// run resumed over several days, short enough that abandoned lists clean themselves up.
	markerTTL = 30 * Day
)

// Page is one page of the table scan.
type Page struct {
	Tokens   []Token
	Accounts []Account
	// Orgs names every organisation an item of the page belongs to, including one seen only
	// through its counter item, whose report must be emptied once its last account is gone.
	Orgs []string
	// DeletedOrgs are the organisations deleted at the identity provider whose tombstones the
	// page holds.
	DeletedOrgs []DeletedOrg
	// Next continues the scan; it is empty after the last page.
	Next string
}

// DeletedOrg is an organisation deleted at the identity provider: its data is purged once
// PurgeAt has passed.
type DeletedOrg struct {
	OrgID   string
	PurgeAt time.Time
	Purged  bool
}

// OrgMark is an organisation a run found, and whether any of its items has findings.
type OrgMark struct {
	OrgID       string
	HasFindings bool
}

// Checkpoint is a run saved between invocations: its time, where it stopped, and its totals.
type Checkpoint struct {
	RunAt time.Time
	Phase string
	// Cursor is the scan's position in PhaseScan, and the last organisation reported in
	// PhaseReport.
	Cursor  string
	Summary Summary
}

// Store is what a run needs from the table. Every method returns EUNAVAILABLE when the table
// cannot be reached and EINTERNAL when it answers with something the store did not write;
// ScanAudit also returns EINVALID for a cursor it did not issue.
type Store interface {
	// ScanAudit returns up to limit token, account and organisation-counter items from cursor
	// ("" for the start of the table). A response never holds more than limit items.
	ScanAudit(ctx context.Context, cursor string, limit int) (Page, error)
	// SetFindings replaces the findings stored on a token (or on the account, when tokenID is
	// empty), and records at as the time they were written. It never creates an item: one
	// deleted meanwhile is ENOTFOUND.
	SetFindings(ctx context.Context, orgID, saID, tokenID string, findings []sa.Finding, at time.Time) error
	// RevokeToken revokes a token and records actor in the audit trail; ENOTFOUND if it is gone.
	RevokeToken(ctx context.Context, orgID, saID, tokenID, actor string, at time.Time) error
	// MarkOrg records, until expires, that the run at runAt found orgID and, when hasFindings,
	// that some item of it has findings. A mark never loses that flag once set, so marks may be
	// repeated in any order.
	MarkOrg(ctx context.Context, runAt time.Time, orgID string, hasFindings bool, expires time.Time) error
	// MarkedOrgs returns up to limit organisations marked for the run at runAt, in order, after
	// the one named (from the start when after is empty), and whether more may follow.
	MarkedOrgs(ctx context.Context, runAt time.Time, after string, limit int) ([]OrgMark, bool, error)
	// OrgFindings returns the findings stored on orgID's accounts and open tokens, and on the
	// tokens actor revoked (whose findings record the revocation).
	OrgFindings(ctx context.Context, orgID, actor string) ([]sa.Finding, error)
	// PutAuditReport replaces orgID's report; EFORBIDDEN when the org was deleted.
	PutAuditReport(ctx context.Context, orgID string, r sa.AuditReport) error
	// PurgeOrg deletes the data of a deleted organisation whose retention period has ended.
	PurgeOrg(ctx context.Context, orgID string, now time.Time) error
	// GetCheckpoint returns the saved run, or ENOTFOUND when no run is in progress.
	GetCheckpoint(ctx context.Context) (Checkpoint, error)
	// PutCheckpoint saves a run to resume.
	PutCheckpoint(ctx context.Context, c Checkpoint) error
	// DeleteCheckpoint forgets the saved run; deleting none is not an error.
	DeleteCheckpoint(ctx context.Context) error
}

// Summary describes a run. Counts are the run's totals so far, across every invocation that
// worked on it; Pages counts scan pages. It is the function's result and its log line.
type Summary struct {
	RunAt      time.Time      `json:"runAt"`
	Complete   bool           `json:"complete"`
	Orgs       int            `json:"orgs"`     // organisation reports written
	Accounts   int            `json:"accounts"` // account items audited
	Tokens     int            `json:"tokens"`   // token items audited, active or not
	Findings   map[string]int `json:"findings"` // kind → count; every kind present
	Revoked    int            `json:"revoked"`
	Purged     int            `json:"purged"` // deleted organisations whose data was purged
	Writes     int            `json:"writes"` // items written: findings, org marks, reports
	Pages      int            `json:"pages"`
	DurationMs int64          `json:"durationMs"`
	// TruncatedReports counts reports cut at MaxReportFindings.
	TruncatedReports int `json:"truncatedReports,omitempty"`
}

// Kinds are the finding kinds, in the order reports list them within one account or token.
// Treat it as a constant.
var Kinds = []string{sa.FindingUnusedAccount, sa.FindingNeverUsed, sa.FindingStale, sa.FindingRotationDue, sa.FindingExpiring}

func newSummary(runAt time.Time) Summary {
	s := Summary{RunAt: runAt, Findings: map[string]int{}}
	for _, k := range Kinds {
		s.Findings[k] = 0
	}
	return s
}

// Runner runs the audit over the whole table. Its memory holds one page of items and, in the
// report phase, the findings of Concurrency organisations, never the table.
type Runner struct {
	Store      Store
	Thresholds Thresholds
	Log        *slog.Logger // one summary line per invocation; nil: no log
	Metrics    io.Writer    // one CloudWatch embedded-metric-format line per invocation; nil: none
	// PageSize is the Limit of each Scan and Query (DefaultPageSize when 0).
	PageSize int
	// Margin is how long before ctx's deadline a run checkpoints and stops (DefaultMargin when
	// 0): enough to finish the page in hand and save the checkpoint.
	Margin time.Duration
	// Concurrency bounds the writes (and the org reports) in flight (DefaultConcurrency when 0).
	Concurrency int
	// Wall is the clock the deadline and the duration are judged by (time.Now when nil). It is
	// not the audit's "now", which Run takes as an argument.
	Wall func() time.Time
}

// errStopped ends an invocation that ran out of time; it is not a failure.
var errStopped = errors.New("deadline near")

// Run audits the table as of now, or resumes the run a previous invocation checkpointed (with
// that run's time, so a run judges every item by the same now). A run scans the table a page at
// a time, applies the rules, rewrites the findings of items whose findings changed, revokes
// when auto-revocation says so, and marks each organisation it meets; then it writes the report
// of every marked organisation, reading the partition of those with findings. Close to ctx's
// deadline it saves a checkpoint and returns a Summary with Complete false and no error; a
// complete run deletes the checkpoint. On a failure it saves its progress, so the retry
// resumes. It logs one line and writes one metrics line per invocation.
// Errors: EUNAVAILABLE (the table failed or throttled beyond the SDK's retries), EINTERNAL.
func (r *Runner) Run(ctx context.Context, now time.Time) (Summary, error) {
	x := &run{Runner: r, start: r.wall(), marked: map[string]bool{}}
	cp, err := r.Store.GetCheckpoint(ctx)
	switch {
	case sa.ErrorCode(err) == sa.ENOTFOUND:
		// Items hold milliseconds; a run's time does too, so a resumed run judges identically.
		runAt := now.UTC().Truncate(time.Millisecond)
		cp = Checkpoint{RunAt: runAt, Phase: PhaseScan, Summary: newSummary(runAt)}
	case err != nil:
		err = fmt.Errorf("read audit checkpoint: %w", err)
		r.emit(ctx, x, newSummary(now.UTC()), newSummary(now.UTC()), err)
		return Summary{}, err
	default:
		x.resumed = true
		cp.Summary = cloneSummary(cp.Summary) // every kind present, whatever the store kept
		cp.Summary.RunAt = cp.RunAt
	}
	x.cp = cp
	before := cloneSummary(cp.Summary)
	err = x.scan(ctx)
	if err == nil {
		err = x.reports(ctx)
	}
	x.cp.Summary.DurationMs += r.wall().Sub(x.start).Milliseconds()
	switch {
	case err == nil:
		x.cp.Summary.Complete = true
		if derr := r.Store.DeleteCheckpoint(ctx); derr != nil {
			// The next invocation would only redo finished work; still, say so.
			err = fmt.Errorf("delete audit checkpoint: %w", derr)
		}
	default:
		// Out of time or failed: keep what is done. The save must not share the fate of a
		// context that is about to expire.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		perr := r.Store.PutCheckpoint(sctx, x.cp)
		cancel()
		if errors.Is(err, errStopped) {
			err = nil
		}
		if perr != nil {
			err = errors.Join(err, fmt.Errorf("save audit checkpoint: %w", perr))
		}
	}
	r.emit(ctx, x, before, x.cp.Summary, err)
	return x.cp.Summary, err
}

// run is one invocation's state.
type run struct {
	*Runner
	cp      Checkpoint
	start   time.Time
	resumed bool
	worked  bool            // at least one unit of work done: the progress guarantee
	marked  map[string]bool // org → the findings flag this invocation marked it with; a bounded cache
}

func (r *Runner) wall() time.Time {
	if r.Wall != nil {
		return r.Wall()
	}
	return time.Now()
}

func (r *Runner) pageSize() int         { return cmp.Or(r.PageSize, DefaultPageSize) }
func (r *Runner) concurrency() int      { return cmp.Or(r.Concurrency, DefaultConcurrency) }
func (r *Runner) margin() time.Duration { return cmp.Or(r.Margin, DefaultMargin) }

// stop reports whether the invocation should checkpoint now. Every invocation does at least one
// unit of work first, so that a run always progresses, even under a margin set too large.
func (x *run) stop(ctx context.Context) bool {
	if !x.worked {
		return false
	}
	deadline, ok := ctx.Deadline()
	return ok && deadline.Sub(x.wall()) < x.margin()
}

// scan applies the rules to the table a page at a time. The cursor moves only once a page's
// writes are all done, so a page interrupted by a failure is redone, and every write is
// idempotent.
func (x *run) scan(ctx context.Context) error {
	for x.cp.Phase == PhaseScan {
		if x.stop(ctx) {
			return errStopped
		}
		page, err := x.Store.ScanAudit(ctx, x.cp.Cursor, x.pageSize())
		if err != nil {
			return fmt.Errorf("scan page %d: %w", x.cp.Summary.Pages+1, err)
		}
		if err := x.auditPage(ctx, page); err != nil {
			return err
		}
		x.worked = true
		x.cp.Summary.Pages++
		x.cp.Cursor = page.Next
		if page.Next == "" {
			x.cp.Phase, x.cp.Cursor = PhaseReport, ""
		}
	}
	return nil
}

// revokedByRun reports whether this run already revoked t: a page redone after a failure.
func revokedByRun(t Token, runAt time.Time) bool {
	return t.RevokedAt != nil && t.RevokedBy == Actor && t.RevokedAt.Equal(runAt)
}

// auditPage applies the rules to one page and writes what changed. Totals are merged only when
// the whole page succeeded, so a redone page is not counted twice.
func (x *run) auditPage(ctx context.Context, p Page) error {
	runAt := x.cp.RunAt
	delta := newSummary(runAt)
	var revoked, writes atomic.Int64
	var jobs []func(context.Context) error
	count := func(fs []sa.Finding) {
		for _, f := range fs {
			delta.Findings[f.Kind]++
		}
	}
	withFindings := map[string]bool{} // orgs of the page with any finding
	for _, t := range p.Tokens {
		delta.Tokens++
		judged := t
		if revokedByRun(t, runAt) {
			// A page redone after this run revoked the token: judge it as it was before, so its
			// findings still say why it was revoked, and count the revocation, whose first count
			// went with the failed attempt, but do not revoke it again.
			judged.ClosedAt, judged.RevokedAt, judged.RevokedBy = nil, nil, ""
			revoked.Add(1)
		}
		fs := TokenFindings(judged, runAt, x.Thresholds)
		count(fs)
		withFindings[t.OrgID] = withFindings[t.OrgID] || len(fs) > 0
		revoke := Revoke(t, runAt, x.Thresholds)
		if !revoke && sameFindings(fs, t.Findings) {
			continue
		}
		jobs = append(jobs, func(ctx context.Context) error {
			if revoke {
				err := x.Store.RevokeToken(ctx, t.OrgID, t.ServiceAccountID, t.ID, Actor, runAt)
				switch sa.ErrorCode(err) {
				case sa.ENOTFOUND:
					return nil // deleted meanwhile: nothing left to revoke or to annotate
				case sa.EFORBIDDEN:
					return nil // its org was deleted: the org's sweep revokes it
				}
				if err != nil {
					return fmt.Errorf("revoke token %s: %w", t.ID, err)
				}
				revoked.Add(1)
			}
			return x.setFindings(ctx, &writes, t.OrgID, t.ServiceAccountID, t.ID, fs)
		})
	}
	for _, a := range p.Accounts {
		delta.Accounts++
		fs := AccountFindings(a, runAt, x.Thresholds)
		count(fs)
		withFindings[a.OrgID] = withFindings[a.OrgID] || len(fs) > 0
		if sameFindings(fs, a.Findings) {
			continue
		}
		jobs = append(jobs, func(ctx context.Context) error {
			return x.setFindings(ctx, &writes, a.OrgID, a.ID, "", fs)
		})
	}
	// Purge the data of deleted organisations whose retention period has ended.
	var purged atomic.Int64
	for _, d := range p.DeletedOrgs {
		if d.Purged || runAt.Before(d.PurgeAt) {
			continue
		}
		jobs = append(jobs, func(ctx context.Context) error {
			if err := x.Store.PurgeOrg(ctx, d.OrgID, runAt); err != nil {
				return fmt.Errorf("purge org %s: %w", d.OrgID, err)
			}
			purged.Add(1)
			return nil
		})
	}
	// Mark each org once per invocation, and again only when it turns out to have findings.
	newMarks := map[string]bool{}
	for _, org := range p.Orgs {
		has := withFindings[org]
		if was, ok := x.marked[org]; ok && (was || !has) {
			continue
		}
		newMarks[org] = has
		expires := x.wall().Add(markerTTL) // TTL is judged by AWS's clock, not the audit's now
		jobs = append(jobs, func(ctx context.Context) error {
			if err := x.Store.MarkOrg(ctx, runAt, org, has, expires); err != nil {
				return fmt.Errorf("mark org %s: %w", org, err)
			}
			writes.Add(1)
			return nil
		})
	}
	if err := x.parallel(ctx, jobs); err != nil {
		return err
	}
	if len(x.marked) > 100_000 { // bound memory; a repeated mark is harmless
		clear(x.marked)
	}
	maps.Copy(x.marked, newMarks)
	s := &x.cp.Summary
	s.Tokens += delta.Tokens
	s.Accounts += delta.Accounts
	for k, n := range delta.Findings {
		s.Findings[k] += n
	}
	s.Revoked += int(revoked.Load())
	s.Purged += int(purged.Load())
	s.Writes += int(writes.Load())
	return nil
}

func (x *run) setFindings(ctx context.Context, writes *atomic.Int64, org, saID, tokenID string, fs []sa.Finding) error {
	err := x.Store.SetFindings(ctx, org, saID, tokenID, fs, x.cp.RunAt)
	switch {
	case sa.ErrorCode(err) == sa.ENOTFOUND:
		return nil // deleted since the scan read it; its findings went with it
	case err != nil:
		return fmt.Errorf("write findings of %s %s: %w", saID, tokenID, err)
	}
	writes.Add(1)
	return nil
}

// parallel runs jobs with at most Concurrency in flight and returns the first error, after
// which no new job starts.
func (x *run) parallel(ctx context.Context, jobs []func(context.Context) error) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(x.concurrency())
	for _, job := range jobs {
		g.Go(func() error {
			if err := gctx.Err(); err != nil {
				return err // a job failed: the rest do not start
			}
			return job(gctx)
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return ctx.Err()
}

// reports writes the report of every organisation the scan marked, a page of organisations at
// a time; the cursor is the last organisation of the last finished page.
func (x *run) reports(ctx context.Context) error {
	for x.cp.Phase == PhaseReport {
		if x.stop(ctx) {
			return errStopped
		}
		orgs, more, err := x.Store.MarkedOrgs(ctx, x.cp.RunAt, x.cp.Cursor, x.pageSize())
		if err != nil {
			return fmt.Errorf("list marked orgs: %w", err)
		}
		var truncated, writes atomic.Int64
		jobs := make([]func(context.Context) error, 0, len(orgs))
		for _, org := range orgs {
			jobs = append(jobs, func(ctx context.Context) error {
				cut, err := x.report(ctx, org)
				if err != nil {
					return err
				}
				writes.Add(1)
				if cut {
					truncated.Add(1)
				}
				return nil
			})
		}
		if err := x.parallel(ctx, jobs); err != nil {
			return err
		}
		x.worked = true
		s := &x.cp.Summary
		s.Orgs += len(orgs)
		s.Writes += int(writes.Load())
		s.TruncatedReports += int(truncated.Load())
		if len(orgs) > 0 {
			x.cp.Cursor = orgs[len(orgs)-1].OrgID
		}
		if !more || len(orgs) == 0 {
			x.cp.Phase = phaseDone
		}
	}
	return nil
}

// report replaces one organisation's report with the findings its items hold now, and reports
// whether it had to cut them at MaxReportFindings. An org whose items the scan found nothing
// about gets an empty report without reading its partition.
func (x *run) report(ctx context.Context, org OrgMark) (bool, error) {
	var fs []sa.Finding
	if org.HasFindings {
		var err error
		if fs, err = x.Store.OrgFindings(ctx, org.OrgID, Actor); err != nil {
			return false, fmt.Errorf("read findings of org %s: %w", org.OrgID, err)
		}
	}
	SortFindings(fs)
	cut := len(fs) > MaxReportFindings
	if cut {
		fs = fs[:MaxReportFindings]
	}
	err := x.Store.PutAuditReport(ctx, org.OrgID, sa.AuditReport{GeneratedAt: x.cp.RunAt, Findings: fs})
	if sa.ErrorCode(err) == sa.EFORBIDDEN {
		return false, nil // a deleted organisation gets no report
	}
	if err != nil {
		return false, fmt.Errorf("write report of org %s: %w", org.OrgID, err)
	}
	return cut, nil
}

// SortFindings orders findings as reports list them: by account, the account's own findings
// before its tokens', then by token, then by kind in Kinds order.
func SortFindings(fs []sa.Finding) {
	slices.SortStableFunc(fs, func(a, b sa.Finding) int {
		return cmp.Or(
			cmp.Compare(a.ServiceAccountID, b.ServiceAccountID),
			cmp.Compare(a.TokenID, b.TokenID),
			cmp.Compare(slices.Index(Kinds, a.Kind), slices.Index(Kinds, b.Kind)),
		)
	})
}

// sameFindings reports whether a run would store what is already stored.
func sameFindings(a, b []sa.Finding) bool {
	return slices.EqualFunc(a, b, func(x, y sa.Finding) bool {
		return x.ServiceAccountID == y.ServiceAccountID && x.TokenID == y.TokenID &&
			x.Kind == y.Kind && x.Since.Equal(y.Since) && x.Detail == y.Detail
	})
}

func cloneSummary(s Summary) Summary {
	c := s
	c.Findings = map[string]int{}
	for k, v := range s.Findings {
		c.Findings[k] = v
	}
	for _, k := range Kinds {
		c.Findings[k] += 0
	}
	return c
}
