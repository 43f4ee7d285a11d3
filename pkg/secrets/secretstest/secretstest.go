// Package secretstest serves Secrets Manager's GetSecretValue over HTTP for tests that run
// real binaries or real SDK clients against a secret: the AWS JSON 1.1 protocol, one secret.
package secretstest

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
)

// Serve starts a Secrets Manager endpoint holding secretString under secretID, stopped when
// the test ends, and returns its URL. Other ids get ResourceNotFoundException.
func Serve(tb testing.TB, secretID, secretString string) string {
	tb.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var in struct{ SecretId string }
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		if r.Header.Get("X-Amz-Target") != "secretsmanager.GetSecretValue" || json.NewDecoder(r.Body).Decode(&in) != nil {
			w.WriteHeader(http.StatusBadRequest)
			_ = json.NewEncoder(w).Encode(map[string]string{"__type": "InvalidRequestException", "message": "unsupported request"})
			return
		}
		if in.SecretId != secretID {
			w.WriteHeader(http.StatusBadRequest)
			_ = json.NewEncoder(w).Encode(map[string]string{"__type": "ResourceNotFoundException", "message": "Secrets Manager can't find the specified secret."})
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{
			"ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:" + secretID, "Name": secretID,
			"SecretString": secretString, "VersionId": "v1", "CreatedDate": 1.7e9,
		})
	}))
	tb.Cleanup(srv.Close)
	return srv.URL
}
