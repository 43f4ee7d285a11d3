// Command usage is the Lambda function on the table's stream: it rolls each token's last use up
// from its credential to the token's metadata and its service account.
package main

import "github.com/opentrace/service-accounts/pkg/wire"

func main() { wire.Start(wire.Usage) }
