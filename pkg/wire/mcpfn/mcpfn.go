// Package mcpfn composes the function behind /mcp/v1. It is apart from package wire so that
// only the MCP function's binary links the MCP SDK.
package mcpfn

import (
	"context"

	"github.com/opentrace/service-accounts/pkg/apigw"
	"github.com/opentrace/service-accounts/pkg/config"
	"github.com/opentrace/service-accounts/pkg/mcpserver"
	"github.com/opentrace/service-accounts/pkg/wire"
)

// Version is what the server reports to MCP clients; a build may set it with
// -ldflags '-X github.com/opentrace/service-accounts/pkg/wire/mcpfn.Version=...'.
var Version = "dev"

// New builds the MCP server behind API Gateway. Who is calling is in the authorizer context of
// every request, so it needs no AWS client.
func New(_ context.Context, rt wire.Runtime) (apigw.Handler, error) {
	log, err := wire.Logger(rt)
	if err != nil {
		return nil, err
	}
	return apigw.HTTPHandler(mcpserver.Handler(log, Version, mcpserver.Options{AllowedOrigins: config.List(rt.Getenv(config.EnvAllowedOrigins))})), nil
}
