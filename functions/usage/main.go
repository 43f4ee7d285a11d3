// Command usage is the Lambda function on the table's stream: it rolls each token's last use up
// from its credential to the token's metadata and its service account, and sweeps the tokens of
// organisations deleted at the identity provider.
package main

import (
	"github.com/opentrace/service-accounts/pkg/wire"
	"github.com/opentrace/service-accounts/pkg/wire/usagefn"
)

func main() { wire.Start(usagefn.New) }
