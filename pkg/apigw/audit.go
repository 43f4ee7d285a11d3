package apigw

import (
	"context"
	"net/http"
	"time"

	sa "github.com/opentrace/service-accounts/pkg/serviceaccount"
)

// auditReportJSON is the body of GET /orgs/{orgId}/audit. generatedAt is null until the audit
// first reports on the org; findings is then empty, never null.
type auditReportJSON struct {
	GeneratedAt *time.Time    `json:"generatedAt"`
	Findings    []findingJSON `json:"findings"`
}

// findingJSON is one finding; tokenId is null for a finding about a whole account.
type findingJSON struct {
	ServiceAccountID string    `json:"serviceAccountId"`
	TokenID          *string   `json:"tokenId"`
	Kind             string    `json:"kind"`
	Since            time.Time `json:"since"`
	Detail           string    `json:"detail"`
}

func newAuditReportJSON(r sa.AuditReport) auditReportJSON {
	out := auditReportJSON{Findings: make([]findingJSON, 0, len(r.Findings))}
	if !r.GeneratedAt.IsZero() {
		out.GeneratedAt = utc(&r.GeneratedAt)
	}
	for _, f := range r.Findings {
		fj := findingJSON{ServiceAccountID: f.ServiceAccountID, Kind: f.Kind, Since: f.Since.UTC(), Detail: f.Detail}
		if f.TokenID != "" {
			fj.TokenID = &f.TokenID
		}
		out.Findings = append(out.Findings, fj)
	}
	return out
}

// auditReport serves GET /orgs/{orgId}/audit: the latest scheduled audit's report of the org.
func (a *API) auditReport(ctx context.Context, org string) (result, error) {
	r, err := a.Service.AuditReport(ctx, org)
	if err != nil {
		return result{}, err
	}
	return result{http.StatusOK, newAuditReportJSON(r)}, nil
}
