// Command mcp is the Lambda function behind /mcp/v1: the MCP server that MCP clients such as
// Claude Code reach with a service-account token.
package main

import (
	"github.com/opentrace/service-accounts/pkg/wire"
	"github.com/opentrace/service-accounts/pkg/wire/mcpfn"
)

func main() { wire.Start(mcpfn.New) }
