package secrets

import (
	"context"

	"github.com/opentrace/service-accounts/pkg/token"
)

// Peppers adapts a Source to the domain's serviceaccount.Peppers: the hashers in the order a
// token is checked, current first.
type Peppers struct{ Source Source }

// Hashers returns the hashers in force, or the Source's error, so a caller fails closed.
func (p Peppers) Hashers(ctx context.Context) ([]*token.Hasher, error) {
	kr, err := p.Source.Keyring(ctx)
	if err != nil {
		return nil, err
	}
	return kr.Hashers(), nil
}
