// Command identitywebhook is the Lambda function behind POST /v1/identity/webhooks, which takes
// the identity provider's signed webhooks: an organization deleted there gets its tombstone.
package main

import (
	"github.com/opentrace/service-accounts/pkg/wire"
	"github.com/opentrace/service-accounts/pkg/wire/identityfn"
)

func main() { wire.Start(identityfn.New) }
