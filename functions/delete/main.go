// Command delete is the Lambda function behind DELETE /orgs/{orgId}/service-accounts/{saId}.
package main

import "github.com/opentrace/service-accounts/pkg/wire"

func main() { wire.Start(wire.Delete) }
