package serviceaccount

import (
	"context"
	"time"
)

// AuditReport is the latest scheduled audit's findings about one organisation. The audit
// rewrites it on every run, so it always describes one point in time: GeneratedAt, the time the
// audit judged the organisation's tokens and accounts by. A zero GeneratedAt means the audit has
// not reported on the organisation yet; Findings is then empty.
type AuditReport struct {
	GeneratedAt time.Time
	Findings    []Finding
}

// AuditReport returns the latest audit report of orgID. An organisation the audit has not
// reported on yet has an empty report, not an error, because "nothing found yet" is a normal
// answer for a new organisation. Errors: EINVALID (a malformed org id), EUNAVAILABLE.
func (s *Service) AuditReport(ctx context.Context, orgID string) (AuditReport, error) {
	if err := checkOrg(orgID); err != nil {
		return AuditReport{}, err
	}
	return s.store.GetAuditReport(ctx, orgID)
}
