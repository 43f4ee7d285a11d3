// Command whoami is the Lambda function behind GET /v1/whoami, which tells a token holder who
// the authorizer says they are.
package main

import "github.com/opentrace/service-accounts/pkg/wire"

func main() { wire.Start(wire.Whoami) }
