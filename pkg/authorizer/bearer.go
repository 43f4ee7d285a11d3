// Package authorizer is the API's Lambda TOKEN authorizer: it parses the bearer credential,
// verifies a service-account token (through the domain) or a dashboard user's JWT (against the
// identity provider's JWKS), and answers API Gateway with a policy and an identity context,
// or with Unauthorized. Every failure of a dependency fails closed.
package authorizer

import "strings"

// ParseBearer extracts the credential from an Authorization header value. The scheme is
// matched case-insensitively and white space around the value and between scheme and
// credential is ignored, as RFC 9110 allows; anything else — another scheme, no credential, a
// credential with inner white space — is refused.
func ParseBearer(header string) (string, bool) {
	header = strings.TrimSpace(header)
	const scheme = "bearer"
	if len(header) <= len(scheme) || !strings.EqualFold(header[:len(scheme)], scheme) {
		return "", false
	}
	rest := header[len(scheme):]
	cred := strings.TrimLeft(rest, " \t")
	if len(cred) == len(rest) || cred == "" || strings.ContainsAny(cred, " \t\r\n") {
		return "", false // no separator after the scheme, no credential, or more than one
	}
	return cred, true
}
