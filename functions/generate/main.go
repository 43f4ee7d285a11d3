// Command generate is the Lambda function behind POST /orgs/{orgId}/service-accounts/{saId}/tokens.
package main

import "github.com/opentrace/service-accounts/pkg/wire"

func main() { wire.Start(wire.Generate) }
