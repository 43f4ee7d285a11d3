// Package identityfn composes the function behind POST /v1/identity/webhooks. It is apart from
// package wire so that only its binary links the webhook verifier.
package identityfn

import (
	"context"
	"fmt"

	"github.com/opentrace/service-accounts/pkg/apigw"
	"github.com/opentrace/service-accounts/pkg/identity"
	"github.com/opentrace/service-accounts/pkg/secrets"
	"github.com/opentrace/service-accounts/pkg/wire"
)

// New builds the handler of the identity provider's signed deliveries, verified with the
// signing secret it reads from Secrets Manager.
func New(_ context.Context, rt wire.Runtime) (apigw.Handler, error) {
	retention, err := identity.RetentionFromEnv(rt.Getenv)
	if err != nil {
		return nil, err
	}
	secretID := rt.Getenv(identity.EnvSecret)
	if secretID == "" {
		return nil, fmt.Errorf("%s is not set", identity.EnvSecret)
	}
	store, log, err := wire.Table(rt)
	if err != nil {
		return nil, err
	}
	sm := rt.AWS.SecretsManager()
	h := &identity.Handler{
		Store: store, Retention: retention, Now: rt.Clock(), Log: log,
		Secret: func(ctx context.Context) (string, error) {
			key, err := secrets.ReadKey(ctx, sm, secretID)
			return string(key), err
		},
	}
	return h.Handle, nil
}
