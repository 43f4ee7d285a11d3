package local

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/aws/aws-lambda-go/events"

	"github.com/opentrace/service-accounts/pkg/apigw"
	"github.com/opentrace/service-accounts/pkg/audit"
	"github.com/opentrace/service-accounts/pkg/authorizer"
	"github.com/opentrace/service-accounts/pkg/config"
	"github.com/opentrace/service-accounts/pkg/dynamo"
	"github.com/opentrace/service-accounts/pkg/mcpserver"
	"github.com/opentrace/service-accounts/pkg/secrets"
	"github.com/opentrace/service-accounts/pkg/usage"
)

// Deps is what a function's local wiring gets: its environment as the template sets it, and
// the stack's DynamoDB, pepper source and log.
type Deps struct {
	Env     func(string) string
	DB      dynamo.API
	Peppers secrets.Source
	Log     *slog.Logger
	Metrics io.Writer // where embedded-metric-format lines go (stdout in Lambda)
}

// App builds the function's config.App exactly as its cold start in AWS does, from its
// environment, on the local DynamoDB and pepper.
func (d Deps) App(ctx context.Context) (*config.App, error) {
	s, err := config.Load(d.Env)
	if err != nil {
		return nil, err
	}
	app, err := config.Build(ctx, s, d.DB, d.Peppers)
	if err != nil {
		return nil, err
	}
	app.Log = d.Log
	return app, nil
}

// Factory builds one function's handler, as its main.go does before lambda.Start. The handler
// is an apigw.Handler for API routes, an authorizer handler, a StreamHandler or a
// ScheduleHandler, according to how the template wires the function.
type Factory func(ctx context.Context, d Deps) (any, error)

// AuthorizerHandler is a Lambda TOKEN authorizer.
type AuthorizerHandler = func(context.Context, events.APIGatewayCustomAuthorizerRequest) (events.APIGatewayCustomAuthorizerResponse, error)

// ScheduleHandler is a function run by a schedule; its result is returned by /local/audit/run.
type ScheduleHandler = func(context.Context, events.EventBridgeEvent) (any, error)

// Registry maps each function's logical id in template.yaml to its wiring. A function in the
// template without an entry here stops the stack at start-up.
var Registry = map[string]Factory{
	"AuthorizerFunction": func(ctx context.Context, d Deps) (any, error) {
		users, err := authorizer.UserConfigFromEnv(d.Env)
		if err != nil {
			return nil, err
		}
		app, err := d.App(ctx)
		if err != nil {
			return nil, err
		}
		a := &authorizer.Authorizer{Service: app.Service, Users: authorizer.NewUsers(users), Log: app.Log}
		return AuthorizerHandler(a.Handle), nil
	},
	"CreateFunction":   apiFactory(func(a *apigw.API) apigw.Handler { return a.Create }),
	"ListFunction":     apiFactory(func(a *apigw.API) apigw.Handler { return a.Read }),
	"GenerateFunction": apiFactory(func(a *apigw.API) apigw.Handler { return a.Generate }),
	"RevokeFunction":   apiFactory(func(a *apigw.API) apigw.Handler { return a.Revoke }),
	"DeleteFunction":   apiFactory(func(a *apigw.API) apigw.Handler { return a.Delete }),
	"WhoamiFunction": func(_ context.Context, d Deps) (any, error) {
		return apigw.NewWhoami(d.Log), nil
	},
	"McpFunction": func(_ context.Context, d Deps) (any, error) {
		return apigw.HTTPHandler(mcpserver.Handler(d.Log, "local")), nil
	},
	"UsageFunction": func(_ context.Context, d Deps) (any, error) {
		store, err := d.Table()
		if err != nil {
			return nil, err
		}
		h := &usage.Handler{Store: store, Log: d.Log}
		return StreamHandler(h.Handle), nil
	},
	"AuditFunction": func(_ context.Context, d Deps) (any, error) {
		store, err := d.Table()
		if err != nil {
			return nil, err
		}
		thresholds, err := audit.ThresholdsFromEnv(d.Env)
		if err != nil {
			return nil, err
		}
		r := &audit.Runner{Store: store, Thresholds: thresholds, Log: d.Log, Metrics: d.Metrics}
		return ScheduleHandler(func(ctx context.Context, ev events.EventBridgeEvent) (any, error) {
			return r.Handle(ctx, ev)
		}), nil
	},
}

// Table builds the store of a function that needs the table only, as
// config.TableFromEnvironment does in AWS.
func (d Deps) Table() (*dynamo.Store, error) {
	table := d.Env(config.EnvTable)
	if table == "" {
		return nil, fmt.Errorf("%s is not set", config.EnvTable)
	}
	return dynamo.NewUnsigned(d.DB, table), nil
}

func apiFactory(route func(*apigw.API) apigw.Handler) Factory {
	return func(ctx context.Context, d Deps) (any, error) {
		app, err := d.App(ctx)
		if err != nil {
			return nil, fmt.Errorf("wire function: %w", err)
		}
		return route(&apigw.API{Service: app.Service, Log: app.Log}), nil
	}
}
