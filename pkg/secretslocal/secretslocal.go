// Package secretslocal is AWS Secrets Manager on this machine, for the local stack and tests:
// GetSecretValue and DescribeSecret of the secrets it holds, over Secrets Manager's JSON 1.1
// protocol, through the real SDK. A secret is addressed by its name or by its ARN, which, as
// in AWS, ends in a hyphen and six random characters.
package secretslocal

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Server holds secrets and answers Secrets Manager's API for them.
type Server struct {
	region, account string

	mu      sync.RWMutex
	secrets map[string]*secret // by ARN
	names   map[string]string  // name → ARN
}

type secret struct {
	name, value, version string
	created              time.Time
}

// New returns an empty Secrets Manager in region and account.
func New(region, account string) *Server {
	return &Server{region: region, account: account, secrets: map[string]*secret{}, names: map[string]string{}}
}

// Put stores value under name, replacing the current value of a secret of that name (a new
// version), and returns the secret's ARN.
func (s *Server) Put(name, value string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	arn, ok := s.names[name]
	if !ok {
		arn = fmt.Sprintf("arn:aws:secretsmanager:%s:%s:secret:%s-%s", s.region, s.account, name, rand.Text()[:6])
		s.names[name] = arn
		s.secrets[arn] = &secret{name: name, created: time.Now()}
	}
	sec := s.secrets[arn]
	sec.value, sec.version = value, rand.Text()
	return arn
}

// Value returns the current value of the secret named, by name or ARN.
func (s *Server) Value(id string) (string, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	arn, ok := s.names[id]
	if !ok {
		arn = id
	}
	sec := s.secrets[arn]
	if sec == nil {
		return "", false
	}
	return sec.value, true
}

// ARNs maps every name and ARN a secret may be called by to its ARN.
func (s *Server) ARNs() map[string]string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := map[string]string{}
	for name, arn := range s.names {
		out[name], out[arn] = arn, arn
	}
	return out
}

// ServeHTTP answers one Secrets Manager API call.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	target := r.Header.Get("X-Amz-Target")
	var in struct{ SecretId string }
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		writeError(w, "InvalidRequestException", "The request body is not valid JSON.")
		return
	}
	s.mu.RLock()
	arn, ok := s.names[in.SecretId]
	if !ok {
		arn = in.SecretId
	}
	sec := s.secrets[arn]
	var out map[string]any
	if sec != nil {
		out = map[string]any{"ARN": arn, "Name": sec.name, "CreatedDate": float64(sec.created.UnixMilli()) / 1000}
		switch target {
		case "secretsmanager.GetSecretValue":
			out["SecretString"], out["VersionId"], out["VersionStages"] = sec.value, sec.version, []string{"AWSCURRENT"}
		case "secretsmanager.DescribeSecret":
		default:
			sec = nil
		}
	}
	s.mu.RUnlock()
	switch {
	case target != "secretsmanager.GetSecretValue" && target != "secretsmanager.DescribeSecret":
		writeError(w, "UnknownOperationException", "The local Secrets Manager does not implement "+strings.TrimPrefix(target, "secretsmanager."))
	case sec == nil:
		writeError(w, "ResourceNotFoundException", "Secrets Manager can't find the specified secret.")
	default:
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		_ = json.NewEncoder(w).Encode(out)
	}
}

func writeError(w http.ResponseWriter, typ, msg string) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.WriteHeader(http.StatusBadRequest)
	_ = json.NewEncoder(w).Encode(map[string]string{"__type": typ, "Message": msg})
}
