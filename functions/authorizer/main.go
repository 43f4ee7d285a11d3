// Command authorizer is the API's Lambda TOKEN authorizer: service-account tokens and
// dashboard user JWTs in, an IAM policy and an identity context (or 401/403) out.
package main

import (
	"github.com/opentrace/service-accounts/pkg/wire"
	"github.com/opentrace/service-accounts/pkg/wire/authorizerfn"
)

func main() { wire.Start(authorizerfn.New) }
