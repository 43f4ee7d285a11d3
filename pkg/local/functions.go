package local

import (
	"context"
	"fmt"

	"github.com/aws/aws-lambda-go/events"

	"github.com/opentrace/service-accounts/pkg/apigw"
	"github.com/opentrace/service-accounts/pkg/wire"
	"github.com/opentrace/service-accounts/pkg/wire/auditfn"
	"github.com/opentrace/service-accounts/pkg/wire/authorizerfn"
	"github.com/opentrace/service-accounts/pkg/wire/identityfn"
	"github.com/opentrace/service-accounts/pkg/wire/mcpfn"
	"github.com/opentrace/service-accounts/pkg/wire/usagefn"
)

// Constructors names, for each function of template.yaml by its logical id, the constructor
// that builds it: the one its functions/<name>/main.go hands to wire.Start (a test holds them
// to it). The local stack builds every function through it, with clients on local endpoints.
var Constructors = map[string]any{
	"AuthorizerFunction":      authorizerfn.New,
	"CreateFunction":          wire.Create,
	"ListFunction":            wire.List,
	"GenerateFunction":        wire.Generate,
	"RevokeFunction":          wire.Revoke,
	"DeleteFunction":          wire.Delete,
	"WhoamiFunction":          wire.Whoami,
	"McpFunction":             mcpfn.New,
	"UsageFunction":           usagefn.New,
	"AuditFunction":           auditfn.New,
	"IdentityWebhookFunction": identityfn.New,
}

// ScheduleHandler is a function run by a schedule; its result is what /local/audit/run returns.
type ScheduleHandler = func(context.Context, events.EventBridgeEvent) (any, error)

// construct builds the function id with its constructor.
func construct(ctx context.Context, id string, rt wire.Runtime) (any, error) {
	switch c := Constructors[id].(type) {
	case nil:
		return nil, fmt.Errorf("no constructor (add it to local.Constructors)")
	case func(context.Context, wire.Runtime) (apigw.Handler, error):
		return c(ctx, rt)
	case func(context.Context, wire.Runtime) (wire.AuthorizerHandler, error):
		return c(ctx, rt)
	case func(context.Context, wire.Runtime) (wire.StreamHandler, error):
		return c(ctx, rt)
	case func(context.Context, wire.Runtime) (wire.AuditHandler, error):
		h, err := c(ctx, rt)
		if err != nil {
			return nil, err
		}
		return ScheduleHandler(func(ctx context.Context, ev events.EventBridgeEvent) (any, error) { return h(ctx, ev) }), nil
	default:
		return nil, fmt.Errorf("constructor of an unknown shape %T", c)
	}
}
