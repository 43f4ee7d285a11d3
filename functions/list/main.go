// Command list is the Lambda function behind the read routes: GET /orgs/{orgId}/service-accounts,
// GET .../{saId}, GET .../{saId}/tokens and GET /orgs/{orgId}/audit.
package main

import "github.com/opentrace/service-accounts/pkg/wire"

func main() { wire.Start(wire.List) }
