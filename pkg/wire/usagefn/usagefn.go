// Package usagefn composes the function on the table's stream. It is apart from package wire so
// that only its binary links what it runs.
package usagefn

import (
	"context"

	"github.com/opentrace/service-accounts/pkg/usage"
	"github.com/opentrace/service-accounts/pkg/wire"
)

// New builds the stream consumer: it rolls last use up to tokens and accounts, and sweeps the
// tokens of organisations deleted at the identity provider.
func New(_ context.Context, rt wire.Runtime) (wire.StreamHandler, error) {
	store, log, err := wire.Table(rt)
	if err != nil {
		return nil, err
	}
	return (&usage.Handler{Store: store, Log: log, Now: rt.Clock()}).Handle, nil
}
