package authorizer

import (
	sa "github.com/opentrace/service-accounts/pkg/serviceaccount"

	"errors"
	"strings"

	"github.com/aws/aws-lambda-go/events"
)

// routeBase is the part of a methodArn that names the API stage:
// arn:aws:execute-api:{region}:{account}:{apiId}/{stage}.
func routeBase(methodArn string) (string, error) {
	arn, path, ok := strings.Cut(methodArn, "/")
	parts := strings.Split(arn, ":")
	if !ok || len(parts) != 6 || parts[0] != "arn" || parts[2] != "execute-api" {
		return "", errors.New("malformed methodArn")
	}
	stage, _, ok := strings.Cut(path, "/")
	if !ok || stage == "" {
		return "", errors.New("malformed methodArn")
	}
	return arn + "/" + stage, nil
}

// Resources a principal may call, relative to the stage ({METHOD}/{path}). Each principal
// gets every route it may call, so a policy cached for one route (the cache TTL is a template
// parameter) is right for every other route: it never allows more, nor refuses what the
// principal may do. Methods are always literal: API Gateway's `*` also matches `/`, so a
// leading `*/v1/*` would match /orgs/{any}/service-accounts/v1/tokens too.
var dataRoutes = []string{
	"GET/v1/*", "POST/v1/*", "DELETE/v1/*",
	"GET/mcp/*", "POST/mcp/*", "DELETE/mcp/*",
}

// userResources: members read their org, admins also write it; org ids cannot hold the
// wildcard characters, so the org segment matches literally.
func userResources(org, role string) []string {
	methods := []string{"GET"}
	if role == sa.RoleAdmin {
		methods = append(methods, "POST", "DELETE")
	}
	var rs []string
	for _, m := range methods {
		rs = append(rs, m+"/orgs/"+org+"/*")
	}
	return append(rs, dataRoutes...)
}

func policy(principalID, base string, allow []string, ctx map[string]any) events.APIGatewayCustomAuthorizerResponse {
	resources := make([]string, len(allow))
	for i, r := range allow {
		resources[i] = base + "/" + r
	}
	return events.APIGatewayCustomAuthorizerResponse{
		PrincipalID: principalID,
		PolicyDocument: events.APIGatewayCustomAuthorizerPolicy{
			Version: "2012-10-17",
			Statement: []events.IAMPolicyStatement{{
				Action:   []string{"execute-api:Invoke"},
				Effect:   "Allow",
				Resource: resources,
			}},
		},
		Context: ctx,
	}
}

// denyAll is the answer for a valid identity that may call nothing (a user outside any org):
// API Gateway turns it into 403.
func denyAll(principalID, base string) events.APIGatewayCustomAuthorizerResponse {
	return events.APIGatewayCustomAuthorizerResponse{
		PrincipalID: principalID,
		PolicyDocument: events.APIGatewayCustomAuthorizerPolicy{
			Version: "2012-10-17",
			Statement: []events.IAMPolicyStatement{{
				Action: []string{"execute-api:Invoke"}, Effect: "Deny", Resource: []string{base + "/*"},
			}},
		},
	}
}
