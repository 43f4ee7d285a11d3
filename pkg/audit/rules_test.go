package audit_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opentrace/service-accounts/pkg/audit"
	sa "github.com/opentrace/service-accounts/pkg/serviceaccount"
)

var t0 = time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)

const ms = time.Millisecond

func ptr(t time.Time) *time.Time { return &t }

// only returns the default thresholds with every rule but the one named turned off, so each
// case tests one rule.
func only(kind string) audit.Thresholds {
	d := audit.DefaultThresholds
	th := audit.Thresholds{AutoRevokeAfter: d.AutoRevokeAfter}
	switch kind {
	case sa.FindingNeverUsed:
		th.NeverUsed = d.NeverUsed
	case sa.FindingStale:
		th.Stale = d.Stale
	case sa.FindingRotationDue:
		th.RotationDue = d.RotationDue
	case sa.FindingExpiring:
		th.Expiring = d.Expiring
	case sa.FindingUnusedAccount:
		th.UnusedAccount, th.UnusedAccountNeverUsed = d.UnusedAccount, d.UnusedAccountNeverUsed
	}
	return th
}

func kinds(fs []sa.Finding) []string {
	out := []string{}
	for _, f := range fs {
		out = append(out, f.Kind)
	}
	return out
}

func TestTokenFindings(t *testing.T) {
	used := audit.Token{ID: "tok_1", ServiceAccountID: "sa_1", CreatedAt: t0, LastUsedAt: ptr(t0.Add(10 * audit.Day))}
	fresh := audit.Token{ID: "tok_1", ServiceAccountID: "sa_1", CreatedAt: t0}
	expiring := audit.Token{ID: "tok_1", ServiceAccountID: "sa_1", CreatedAt: t0, ExpiresAt: ptr(t0.Add(100 * audit.Day))}
	with := func(tk audit.Token, f func(*audit.Token)) audit.Token { f(&tk); return tk }
	never30 := t0.Add(30 * audit.Day)
	stale90 := used.LastUsedAt.Add(90 * audit.Day)
	rot90 := t0.Add(90 * audit.Day)
	exp7 := expiring.ExpiresAt.Add(-7 * audit.Day)
	for _, tc := range []struct {
		name  string
		token audit.Token
		now   time.Time
		th    audit.Thresholds
		want  []string
		since time.Time // of the first finding
	}{
		{"NeverUsedJustBefore", fresh, never30.Add(-ms), only(sa.FindingNeverUsed), []string{}, time.Time{}},
		{"NeverUsedAt", fresh, never30, only(sa.FindingNeverUsed), []string{sa.FindingNeverUsed}, t0},
		{"NeverUsedJustAfter", fresh, never30.Add(ms), only(sa.FindingNeverUsed), []string{sa.FindingNeverUsed}, t0},
		{"NeverUsedButUsed", used, never30.Add(audit.Day), only(sa.FindingNeverUsed), []string{}, time.Time{}},

		{"StaleJustBefore", used, stale90.Add(-ms), only(sa.FindingStale), []string{}, time.Time{}},
		{"StaleAt", used, stale90, only(sa.FindingStale), []string{sa.FindingStale}, *used.LastUsedAt},
		{"StaleJustAfter", used, stale90.Add(ms), only(sa.FindingStale), []string{sa.FindingStale}, *used.LastUsedAt},
		{"StaleNotForNeverUsed", fresh, t0.Add(365 * audit.Day), only(sa.FindingStale), []string{}, time.Time{}},

		{"RotationJustBefore", used, rot90.Add(-ms), only(sa.FindingRotationDue), []string{}, time.Time{}},
		{"RotationAt", used, rot90, only(sa.FindingRotationDue), []string{sa.FindingRotationDue}, t0},
		{"RotationJustAfter", used, rot90.Add(ms), only(sa.FindingRotationDue), []string{sa.FindingRotationDue}, t0},

		{"ExpiringJustBefore", expiring, exp7.Add(-ms), only(sa.FindingExpiring), []string{}, time.Time{}},
		{"ExpiringAt", expiring, exp7, only(sa.FindingExpiring), []string{sa.FindingExpiring}, *expiring.ExpiresAt},
		{"ExpiringJustAfter", expiring, exp7.Add(ms), only(sa.FindingExpiring), []string{sa.FindingExpiring}, *expiring.ExpiresAt},
		{"ExpiringLastMoment", expiring, expiring.ExpiresAt.Add(-ms), only(sa.FindingExpiring), []string{sa.FindingExpiring}, *expiring.ExpiresAt},
		{"ExpiredIsNoRisk", expiring, *expiring.ExpiresAt, audit.DefaultThresholds, []string{}, time.Time{}},

		{"RevokedIsNoRisk", with(fresh, func(tk *audit.Token) { tk.RevokedAt, tk.ClosedAt = ptr(t0), ptr(t0) }), t0.Add(365 * audit.Day), audit.DefaultThresholds, []string{}, time.Time{}},
		{"RetiredIsNoRisk", with(fresh, func(tk *audit.Token) { tk.ClosedAt = ptr(t0) }), t0.Add(365 * audit.Day), audit.DefaultThresholds, []string{}, time.Time{}},
		{"HealthyHasNone", with(used, func(tk *audit.Token) { tk.LastUsedAt = ptr(t0.Add(19 * audit.Day)) }), t0.Add(20 * audit.Day), audit.DefaultThresholds, []string{}, time.Time{}},
		{"DefaultsCombine", with(expiring, func(tk *audit.Token) {}), exp7, audit.DefaultThresholds,
			[]string{sa.FindingNeverUsed, sa.FindingRotationDue, sa.FindingExpiring}, t0},
		{"ZeroThresholdsReportNothing", fresh, t0.Add(3650 * audit.Day), audit.Thresholds{}, []string{}, time.Time{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := audit.TokenFindings(tc.token, tc.now, tc.th)
			if !slices.Equal(kinds(got), tc.want) {
				t.Fatalf("kinds = %v, want %v", kinds(got), tc.want)
			}
			for _, f := range got {
				if f.ServiceAccountID != "sa_1" || f.TokenID != "tok_1" || f.Detail == "" || f.Since.Location() != time.UTC {
					t.Errorf("finding = %+v", f)
				}
			}
			if len(got) > 0 && !got[0].Since.Equal(tc.since) {
				t.Errorf("since = %v, want %v", got[0].Since, tc.since)
			}
			// A finding that persists reads the same the next day, so it costs no write.
			if later := audit.TokenFindings(tc.token, tc.now.Add(audit.Day), tc.th); len(later) >= len(got) {
				for i := range got {
					if later[i] != got[i] {
						t.Errorf("finding changed overnight: %+v → %+v", got[i], later[i])
					}
				}
			}
		})
	}
}

func TestAccountFindings(t *testing.T) {
	used := audit.Account{ID: "sa_1", CreatedAt: t0, LastUsedAt: ptr(t0.Add(5 * audit.Day))}
	never := audit.Account{ID: "sa_1", CreatedAt: t0}
	unused90 := used.LastUsedAt.Add(90 * audit.Day)
	never30 := t0.Add(30 * audit.Day)
	for _, tc := range []struct {
		name    string
		account audit.Account
		now     time.Time
		want    bool
		since   time.Time
	}{
		{"UnusedJustBefore", used, unused90.Add(-ms), false, time.Time{}},
		{"UnusedAt", used, unused90, true, *used.LastUsedAt},
		{"UnusedJustAfter", used, unused90.Add(ms), true, *used.LastUsedAt},
		{"NeverUsedJustBefore", never, never30.Add(-ms), false, time.Time{}},
		{"NeverUsedAt", never, never30, true, t0},
		{"NeverUsedJustAfter", never, never30.Add(ms), true, t0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := audit.AccountFindings(tc.account, tc.now, audit.DefaultThresholds)
			if (len(got) == 1) != tc.want || len(got) > 1 {
				t.Fatalf("findings = %+v, want one: %v", got, tc.want)
			}
			if tc.want {
				f := got[0]
				if f.Kind != sa.FindingUnusedAccount || f.ServiceAccountID != "sa_1" || f.TokenID != "" || !f.Since.Equal(tc.since) || f.Detail == "" {
					t.Fatalf("finding = %+v", f)
				}
			}
		})
	}
}

func TestRevoke(t *testing.T) {
	on := audit.DefaultThresholds
	on.AutoRevoke = true
	used := audit.Token{ID: "tok_1", ServiceAccountID: "sa_1", CreatedAt: t0, LastUsedAt: ptr(t0.Add(audit.Day))}
	never := audit.Token{ID: "tok_1", ServiceAccountID: "sa_1", CreatedAt: t0}
	for _, tc := range []struct {
		name   string
		token  audit.Token
		now    time.Time
		th     audit.Thresholds
		revoke bool
		kinds  []string
	}{
		{"OffNeverRevokes", used, t0.Add(3650 * audit.Day), audit.DefaultThresholds, false, []string{sa.FindingStale, sa.FindingRotationDue}},
		{"StaleJustBefore", used, used.LastUsedAt.Add(180*audit.Day - ms), on, false, []string{sa.FindingStale, sa.FindingRotationDue}},
		{"StaleAt", used, used.LastUsedAt.Add(180 * audit.Day), on, true, []string{sa.FindingStale}},
		{"NeverUsedAt", never, t0.Add(180 * audit.Day), on, true, []string{sa.FindingNeverUsed}},
		{"NeverUsedJustBefore", never, t0.Add(180*audit.Day - ms), on, false, []string{sa.FindingNeverUsed, sa.FindingRotationDue}},
		{"ClosedNotAgain", audit.Token{CreatedAt: t0, ClosedAt: ptr(t0)}, t0.Add(3650 * audit.Day), on, false, []string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := audit.Revoke(tc.token, tc.now, tc.th); got != tc.revoke {
				t.Fatalf("Revoke = %v, want %v", got, tc.revoke)
			}
			fs := audit.TokenFindings(tc.token, tc.now, tc.th)
			if !slices.Equal(kinds(fs), tc.kinds) {
				t.Fatalf("kinds = %v, want %v", kinds(fs), tc.kinds)
			}
			for _, f := range fs {
				if says := strings.Contains(f.Detail, "Revoked"); says != tc.revoke {
					t.Fatalf("detail %q, revoked %v", f.Detail, tc.revoke)
				}
			}
		})
	}
}

// TestHealthyTokenCostsNoAllocation: most tokens are healthy, and judging one allocates
// nothing, so the audit's work per item is a constant.
func TestHealthyTokenCostsNoAllocation(t *testing.T) {
	tk := audit.Token{ID: "tok_1", ServiceAccountID: "sa_1", CreatedAt: t0, LastUsedAt: ptr(t0.Add(audit.Day))}
	now := t0.Add(2 * audit.Day)
	if n := testing.AllocsPerRun(100, func() {
		_ = audit.TokenFindings(tk, now, audit.DefaultThresholds)
		_ = audit.Revoke(tk, now, audit.DefaultThresholds)
	}); n != 0 {
		t.Fatalf("%v allocations per healthy token", n)
	}
}

func TestThresholdsFromEnv(t *testing.T) {
	d := audit.DefaultThresholds
	for _, tc := range []struct {
		name string
		env  map[string]string
		want func(*audit.Thresholds)
		err  string // part of the error; empty for none
	}{
		{name: "Defaults", env: nil, want: func(*audit.Thresholds) {}},
		{name: "AllSet", env: map[string]string{
			audit.EnvNeverUsedDays: "14", audit.EnvStaleDays: "60", audit.EnvRotationDays: "180", audit.EnvExpiringDays: "3",
			audit.EnvUnusedAccountDays: "120", audit.EnvUnusedAccountNeverUsedDays: "10", audit.EnvAutoRevoke: "true", audit.EnvAutoRevokeDays: "365",
		}, want: func(th *audit.Thresholds) {
			*th = audit.Thresholds{NeverUsed: 14 * audit.Day, Stale: 60 * audit.Day, RotationDue: 180 * audit.Day, Expiring: 3 * audit.Day,
				UnusedAccount: 120 * audit.Day, UnusedAccountNeverUsed: 10 * audit.Day, AutoRevoke: true, AutoRevokeAfter: 365 * audit.Day}
		}},
		{name: "ZeroTurnsARuleOff", env: map[string]string{audit.EnvExpiringDays: "0"}, want: func(th *audit.Thresholds) { th.Expiring = 0 }},
		{name: "AutoRevokeOffExplicitly", env: map[string]string{audit.EnvAutoRevoke: "false"}, want: func(*audit.Thresholds) {}},
		{name: "AutoRevokeWithDefaultDays", env: map[string]string{audit.EnvAutoRevoke: "true"}, want: func(th *audit.Thresholds) { th.AutoRevoke = true }},
		{name: "ErrNotANumber", env: map[string]string{audit.EnvStaleDays: "ninety"}, err: audit.EnvStaleDays},
		{name: "ErrFraction", env: map[string]string{audit.EnvStaleDays: "1.5"}, err: audit.EnvStaleDays},
		{name: "ErrNegative", env: map[string]string{audit.EnvNeverUsedDays: "-1"}, err: audit.EnvNeverUsedDays},
		{name: "ErrTooLarge", env: map[string]string{audit.EnvRotationDays: "3651"}, err: audit.EnvRotationDays},
		{name: "ErrAutoRevokeNotABool", env: map[string]string{audit.EnvAutoRevoke: "yes"}, err: audit.EnvAutoRevoke},
		{name: "ErrAutoRevokeNoDays", env: map[string]string{audit.EnvAutoRevoke: "true", audit.EnvAutoRevokeDays: "0"}, err: audit.EnvAutoRevokeDays},
		{name: "ErrAutoRevokeBeforeStale", env: map[string]string{audit.EnvAutoRevoke: "true", audit.EnvAutoRevokeDays: "60"}, err: audit.EnvStaleDays},
		{name: "AutoRevokeDaysIgnoredWhenOff", env: map[string]string{audit.EnvAutoRevokeDays: "1"}, want: func(th *audit.Thresholds) { th.AutoRevokeAfter = audit.Day }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := audit.ThresholdsFromEnv(func(k string) string { return tc.env[k] })
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want one naming %s", err, tc.err)
				}
				return
			}
			want := d
			tc.want(&want)
			if err != nil || got != want {
				t.Fatalf("thresholds = %+v (%v), want %+v", got, err, want)
			}
		})
	}
}
