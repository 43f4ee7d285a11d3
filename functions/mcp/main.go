// Command mcp is the Lambda function behind POST /mcp/v1: the MCP server that MCP clients such
// as Claude Code reach with a service-account token. It needs no table and no secret: who is
// calling is in the authorizer context of every request.
package main

import (
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/opentrace/service-accounts/pkg/apigw"
	"github.com/opentrace/service-accounts/pkg/config"
	"github.com/opentrace/service-accounts/pkg/mcpserver"
)

// version is what the server reports to MCP clients; a build may set it with
// -ldflags '-X main.version=...'.
var version = "dev"

func main() {
	log := config.Must(config.Logger(os.Getenv))
	lambda.Start(apigw.HTTPHandler(mcpserver.Handler(log, version)))
}
