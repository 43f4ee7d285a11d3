// Package audit is the scheduled audit that makes the product's "Regular Audits" advice
// concrete: it flags tokens that were never used, have gone stale, are due for rotation or are
// about to expire, and service accounts nobody uses, writes what it finds onto each token and
// account and into a per-organisation report, and can revoke long-unused tokens. The rules are
// pure functions of an item and an injected time; the Runner applies them to the whole table a
// page at a time, resumably, through the small Store it declares.
package audit

import (
	"fmt"
	"time"

	sa "github.com/opentrace/service-accounts/pkg/serviceaccount"
)

// Day is the unit the thresholds are configured in.
const Day = 24 * time.Hour

// Thresholds say when each rule fires. A zero duration turns its rule off. Every rule fires at
// its threshold, not only after it: a token created exactly 30 days ago and never used is
// reported as never used.
type Thresholds struct {
	NeverUsed              time.Duration // an active token created this long ago and never used
	Stale                  time.Duration // an active token last used this long ago
	RotationDue            time.Duration // an active token created this long ago
	Expiring               time.Duration // an active token expiring within this long
	UnusedAccount          time.Duration // an account whose tokens were last used this long ago
	UnusedAccountNeverUsed time.Duration // an account created this long ago and never used
	AutoRevokeAfter        time.Duration // with AutoRevoke, revoke a token unused this long
	AutoRevoke             bool          // revoke long-unused tokens instead of only reporting them
}

// DefaultThresholds are the product's audit defaults. Stale and rotation-due take 90 days from
// AWS Config's managed rules for IAM credentials, iam-user-unused-credentials-check
// (maxCredentialUsageAge) and access-keys-rotated (maxAccessKeyAge), whose defaults are both 90
// days: the figure auditors already hold access keys to. A token never used within 30 days of
// its creation is most likely not needed at all; 7 days leaves a working week to replace an
// expiring token; an account is unused after 90 days without any use of its tokens, or 30 days
// after its creation if it was never used. Auto-revocation is off: revoking breaks an
// integration, so an organisation opts in, and then only after 180 days unused, twice the stale
// threshold, so a token is reported stale for months before it is revoked.
var DefaultThresholds = Thresholds{
	NeverUsed:              30 * Day,
	Stale:                  90 * Day,
	RotationDue:            90 * Day,
	Expiring:               7 * Day,
	UnusedAccount:          90 * Day,
	UnusedAccountNeverUsed: 30 * Day,
	AutoRevokeAfter:        180 * Day,
}

// Token is what the rules need to know about one token's metadata.
type Token struct {
	OrgID            string
	ServiceAccountID string
	ID               string
	CreatedAt        time.Time
	ExpiresAt        *time.Time
	LastUsedAt       *time.Time
	RevokedAt        *time.Time
	RevokedBy        string
	// ClosedAt is set once the token holds no slot any more: revoked, or retired after expiry.
	ClosedAt *time.Time
	// Findings are the findings an earlier run stored on the token; the Runner rewrites them only
	// when they change, so a steady state costs no writes.
	Findings []sa.Finding
}

// Active reports whether the token still authenticates at now: not closed, not revoked and not
// expired. Only active tokens have findings; the others are no longer a risk.
func (t Token) Active(now time.Time) bool {
	return t.ClosedAt == nil && t.RevokedAt == nil && (t.ExpiresAt == nil || t.ExpiresAt.After(now))
}

// unusedSince is when the token was last used, or created if it never was.
func (t Token) unusedSince() time.Time {
	if t.LastUsedAt != nil {
		return *t.LastUsedAt
	}
	return t.CreatedAt
}

// Account is what the rules need to know about one service account. LastUsedAt is the latest
// use of any of its tokens, which the usage roll-up maintains on the account item.
type Account struct {
	OrgID      string
	ID         string
	CreatedAt  time.Time
	LastUsedAt *time.Time
	Findings   []sa.Finding // stored by an earlier run, as for Token
}

// over reports whether elapsed has reached a threshold; a zero threshold never fires.
func over(threshold, elapsed time.Duration) bool { return threshold > 0 && elapsed >= threshold }

// Revoke reports whether the audit revokes t at now: auto-revocation is on and the token is
// active and has gone unused (since its last use, or since its creation if it was never used)
// for at least AutoRevokeAfter.
func Revoke(t Token, now time.Time, th Thresholds) bool {
	return th.AutoRevoke && t.Active(now) && over(th.AutoRevokeAfter, now.Sub(t.unusedSince()))
}

// TokenFindings returns the findings about t at now, in a fixed order (never_used or stale,
// then rotation_due, then expiring). An inactive token has none. Since is the time the rule
// measures from: creation for never_used and rotation_due, the last use for stale, and the
// expiry itself for expiring. Details depend only on the token and the thresholds, never on
// now, so a finding that persists from one day to the next is identical and costs no write.
// A token Revoke selects has only its never_used or stale finding, saying that it was revoked.
func TokenFindings(t Token, now time.Time, th Thresholds) []sa.Finding {
	if !t.Active(now) {
		return nil
	}
	f := func(kind string, since time.Time, format string, args ...any) sa.Finding {
		return sa.Finding{ServiceAccountID: t.ServiceAccountID, TokenID: t.ID, Kind: kind, Since: since.UTC(), Detail: fmt.Sprintf(format, args...)}
	}
	if Revoke(t, now, th) {
		revoked := fmt.Sprintf("Revoked by the audit after %s unused.", days(th.AutoRevokeAfter))
		if t.LastUsedAt == nil {
			return []sa.Finding{f(sa.FindingNeverUsed, t.CreatedAt, "Created on %s and never used. %s", date(t.CreatedAt), revoked)}
		}
		return []sa.Finding{f(sa.FindingStale, *t.LastUsedAt, "Last used on %s. %s", date(*t.LastUsedAt), revoked)}
	}
	var out []sa.Finding
	switch {
	case t.LastUsedAt == nil && over(th.NeverUsed, now.Sub(t.CreatedAt)):
		out = append(out, f(sa.FindingNeverUsed, t.CreatedAt,
			"Created on %s and never used; revoke it if nothing needs it.", date(t.CreatedAt)))
	case t.LastUsedAt != nil && over(th.Stale, now.Sub(*t.LastUsedAt)):
		out = append(out, f(sa.FindingStale, *t.LastUsedAt,
			"Last used on %s, over %s ago; revoke it if it is no longer needed.", date(*t.LastUsedAt), days(th.Stale)))
	}
	if over(th.RotationDue, now.Sub(t.CreatedAt)) {
		out = append(out, f(sa.FindingRotationDue, t.CreatedAt,
			"Created on %s, over %s ago; generate a new token and revoke this one.", date(t.CreatedAt), days(th.RotationDue)))
	}
	if th.Expiring > 0 && t.ExpiresAt != nil && t.ExpiresAt.Sub(now) <= th.Expiring {
		out = append(out, f(sa.FindingExpiring, *t.ExpiresAt,
			"Expires on %s; generate a replacement before then.", date(*t.ExpiresAt)))
	}
	return out
}

// AccountFindings returns the findings about a at now: unused_account when none of its
// tokens was used for UnusedAccount (since: the last use), or, if none ever was, when the
// account is UnusedAccountNeverUsed old (since: its creation). Details do not depend on now.
func AccountFindings(a Account, now time.Time, th Thresholds) []sa.Finding {
	f := func(since time.Time, format string, args ...any) []sa.Finding {
		return []sa.Finding{{ServiceAccountID: a.ID, Kind: sa.FindingUnusedAccount, Since: since.UTC(), Detail: fmt.Sprintf(format, args...)}}
	}
	switch {
	case a.LastUsedAt != nil && over(th.UnusedAccount, now.Sub(*a.LastUsedAt)):
		return f(*a.LastUsedAt, "No token of this account used since %s, over %s; delete the account if it is no longer needed.",
			date(*a.LastUsedAt), days(th.UnusedAccount))
	case a.LastUsedAt == nil && over(th.UnusedAccountNeverUsed, now.Sub(a.CreatedAt)):
		return f(a.CreatedAt, "Created on %s and never used; delete the account if it is no longer needed.", date(a.CreatedAt))
	}
	return nil
}

func date(t time.Time) string { return t.UTC().Format(time.DateOnly) }

func days(d time.Duration) string {
	if n := d / Day; n*Day == d {
		if n == 1 {
			return "1 day"
		}
		return fmt.Sprintf("%d days", n)
	}
	return d.String()
}
