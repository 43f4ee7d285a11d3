// Package auditfn composes the scheduled audit. It is apart from package wire so that only its
// binary links the audit.
package auditfn

import (
	"context"

	"github.com/opentrace/service-accounts/pkg/audit"
	"github.com/opentrace/service-accounts/pkg/wire"
)

// New builds the scheduled audit.
func New(_ context.Context, rt wire.Runtime) (wire.AuditHandler, error) {
	thresholds, err := audit.ThresholdsFromEnv(rt.Getenv)
	if err != nil {
		return nil, err
	}
	store, log, err := wire.Table(rt)
	if err != nil {
		return nil, err
	}
	return (&audit.Runner{Store: store, Thresholds: thresholds, Log: log, Metrics: rt.Output()}).Handle, nil
}
