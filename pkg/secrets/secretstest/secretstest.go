// Package secretstest serves Secrets Manager for tests that run real binaries or real SDK
// clients against a secret.
package secretstest

import (
	"net/http/httptest"
	"testing"

	"github.com/opentrace/service-accounts/pkg/secretslocal"
)

// Serve starts a Secrets Manager endpoint holding secretString under the name secretID,
// stopped when the test ends, and returns its URL.
func Serve(tb testing.TB, secretID, secretString string) string {
	tb.Helper()
	sm := secretslocal.New("us-east-1", "123456789012")
	sm.Put(secretID, secretString)
	srv := httptest.NewServer(sm)
	tb.Cleanup(srv.Close)
	return srv.URL
}
