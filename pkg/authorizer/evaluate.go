package authorizer

import (
	"github.com/aws/aws-lambda-go/events"

	"github.com/opentrace/service-accounts/pkg/wildcard"
)

// Allows evaluates an authorizer's policy for a methodArn as API Gateway does: an explicit
// Deny of a matching resource wins, then any matching Allow allows, and no match refuses.
// Resources may use the wildcards `*` (any run of characters, `/` included) and `?` (any one
// character). The local stack uses it to behave like API Gateway; tests use it to prove what a
// policy permits.
func Allows(p events.APIGatewayCustomAuthorizerPolicy, methodArn string) bool {
	allowed := false
	for _, st := range p.Statement {
		if !invokes(st.Action) {
			continue
		}
		for _, r := range st.Resource {
			if !wildcard.Match(r, methodArn) {
				continue
			}
			switch st.Effect {
			case "Deny":
				return false
			case "Allow":
				allowed = true
			}
		}
	}
	return allowed
}

func invokes(actions []string) bool {
	for _, a := range actions {
		if a == "execute-api:Invoke" || a == "execute-api:*" || a == "*" {
			return true
		}
	}
	return false
}
