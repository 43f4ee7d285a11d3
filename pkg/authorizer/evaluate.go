package authorizer

import (
	"github.com/aws/aws-lambda-go/events"
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
			if !match(r, methodArn) {
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

// match reports whether s matches the glob pattern with `*` and `?`, in linear time
// (the classic two-pointer wildcard match with backtracking to the last star).
func match(pattern, s string) bool {
	p, i := 0, 0
	star, mark := -1, 0
	for i < len(s) {
		switch {
		case p < len(pattern) && (pattern[p] == '?' || pattern[p] == s[i]):
			p++
			i++
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, i
			p++
		case star >= 0:
			p = star + 1
			mark++
			i = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}
