package local

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"mime"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"time"

	"github.com/opentrace/service-accounts/pkg/dynamo"
	"github.com/opentrace/service-accounts/pkg/identity"
	"github.com/opentrace/service-accounts/pkg/localidp"
	sa "github.com/opentrace/service-accounts/pkg/serviceaccount"
)

// DevTokenTTL is how long a local dashboard user's JWT is valid.
const DevTokenTTL = 12 * time.Hour

// serveLocal serves the endpoints that stand in for what is outside AWS: health, the identity
// provider (dev tokens and its JWKS), and running the schedule on demand. Its POSTs mint
// credentials and run jobs, so no web page may drive them: they take only JSON (a form or a
// "simple" cross-site request cannot send it without a preflight the stack never grants), and
// refuse any Origin but the stack's own.
func (s *Stack) serveLocal(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost {
		if origin := r.Header.Get("Origin"); origin != "" && origin != s.URL && origin != "http://"+r.Host {
			writeProblem(w, http.StatusForbidden, "the local endpoints refuse requests from web pages of other origins")
			return
		}
		if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
			writeProblem(w, http.StatusUnsupportedMediaType, "the local endpoints take Content-Type: application/json")
			return
		}
	}
	switch r.Method + " " + r.URL.Path {
	case "GET /local/health":
		writeJSON(w, http.StatusOK, `{"status":"ok"}`)
	case "GET /local/jwks.json":
		s.idp.ServeHTTP(w, r)
	case "POST /local/dev-token":
		s.devToken(w, r)
	case "POST /local/audit/run":
		s.auditRun(w, r)
	case "POST /local/identity/org-deleted":
		s.orgDeleted(w, r)
	default:
		writeJSON(w, http.StatusNotFound, `{"message":"Not Found"}`)
	}
}

func decodeLocal(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<16))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil && err != io.EOF {
		writeProblem(w, http.StatusBadRequest, "The body must be a JSON object of the documented fields: "+err.Error())
		return false
	}
	return true
}

func writeProblem(w http.ResponseWriter, status int, detail string) {
	b, _ := json.Marshal(map[string]any{"title": http.StatusText(status), "status": status, "detail": detail})
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// devToken mints a dashboard user's JWT from the local issuer:
// {"org","role":"admin"|"member","user"} → {"token"}.
func (s *Stack) devToken(w http.ResponseWriter, r *http.Request) {
	var in struct{ Org, Role, User string }
	if !decodeLocal(w, r, &in) {
		return
	}
	switch {
	case !sa.ValidOrgID(in.Org):
		writeProblem(w, http.StatusBadRequest, "org must be 1–64 letters, digits, '-' or '_'")
		return
	case in.Role != "admin" && in.Role != "member":
		writeProblem(w, http.StatusBadRequest, `role must be "admin" or "member"`)
		return
	case strings.TrimSpace(in.User) == "" || len(in.User) > 128:
		writeProblem(w, http.StatusBadRequest, "user must be 1–128 characters")
		return
	}
	tok, err := s.idp.Mint(in.User, in.Org, in.Role, time.Now(), DevTokenTTL)
	if err != nil {
		writeProblem(w, http.StatusInternalServerError, "could not sign the token")
		return
	}
	b, _ := json.Marshal(map[string]string{"token": tok})
	w.Header().Set("Cache-Control", "no-store") // a credential, like the API's token response
	writeJSON(w, http.StatusOK, string(b))
}

// auditRun runs every scheduled function now, or at the time given, as EventBridge would, and
// returns their results: {"now"?: RFC 3339}.
func (s *Stack) auditRun(w http.ResponseWriter, r *http.Request) {
	var in struct{ Now *time.Time }
	if !decodeLocal(w, r, &in) {
		return
	}
	now := time.Now()
	if in.Now != nil {
		now = *in.Now
	}
	if len(s.schedules) == 0 {
		writeProblem(w, http.StatusNotFound, "the template schedules no function")
		return
	}
	results := map[string]any{}
	for _, id := range slices.Sorted(maps.Keys(s.schedules)) {
		out, err := s.runSchedule(r.Context(), id, now)
		if err != nil {
			writeProblem(w, http.StatusInternalServerError, id+" failed: "+err.Error())
			return
		}
		results[id] = out
	}
	var body any = results
	if len(results) == 1 {
		for _, v := range results {
			body = v
		}
	}
	b, err := json.Marshal(body)
	if err != nil {
		writeProblem(w, http.StatusInternalServerError, "could not encode the result")
		return
	}
	writeJSON(w, http.StatusOK, string(b))
}

// orgDeleted makes the local identity provider deliver organization.deleted for {"org"} to the
// API's webhook route, signed as the provider signs it with the endpoint's secret, and answers
// once the org's sweep has finished (the stream delivers the tombstone to the sweep):
// {"status": the webhook's status, "webhook": its body, "sweptAt", "revoked"}.
func (s *Stack) orgDeleted(w http.ResponseWriter, r *http.Request) {
	var in struct{ Org string }
	if !decodeLocal(w, r, &in) {
		return
	}
	if !sa.ValidOrgID(in.Org) {
		writeProblem(w, http.StatusBadRequest, "org must be 1–64 letters, digits, '-' or '_'")
		return
	}
	body := localidp.OrgDeleted(in.Org, time.Now())
	headers, err := s.SignWebhook(body, time.Now())
	if err != nil {
		writeProblem(w, http.StatusInternalServerError, err.Error())
		return
	}
	// Delivered through the stack's own gateway, as the provider's request would arrive.
	req := httptest.NewRequestWithContext(r.Context(), http.MethodPost, s.URL+webhookPath, bytes.NewReader(body))
	req.Host = r.Host
	maps.Copy(req.Header, headers)
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	out := map[string]any{"status": rec.Code, "webhook": json.RawMessage(rec.Body.Bytes())}
	if rec.Code == http.StatusOK {
		store := dynamo.NewUnsigned(s.DB, s.Table)
		deadline := time.Now().Add(orgSweepWait)
		for {
			stone, err := store.GetTombstone(r.Context(), in.Org)
			if err == nil && stone.SweptAt != nil {
				out["sweptAt"], out["revoked"] = stone.SweptAt, stone.Revoked
				break
			}
			if time.Now().After(deadline) || r.Context().Err() != nil {
				writeProblem(w, http.StatusGatewayTimeout, "the org's sweep did not finish within "+orgSweepWait.String())
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	b, _ := json.Marshal(out)
	writeJSON(w, http.StatusOK, string(b))
}

const (
	webhookPath = "/v1/identity/webhooks"
	// orgSweepWait bounds the wait for a sweep: every token must be refused within 60 s.
	orgSweepWait = time.Minute
)

// SignWebhook signs a delivery of body to the stack's webhook route as the identity provider
// signs it, with the endpoint's secret as the template's webhook function reads it, and
// returns the delivery's headers.
func (s *Stack) SignWebhook(body []byte, at time.Time) (http.Header, error) {
	rt, _ := s.match(http.MethodPost, webhookPath)
	if rt == nil {
		return nil, errors.New("the template has no route POST " + webhookPath)
	}
	secret, ok := s.AWS.secrets.Value(s.envs[rt.function].Getenv(identity.EnvSecret))
	if !ok {
		return nil, errors.New(rt.function + " names no signing secret this stack holds")
	}
	return localidp.SignWebhook(body, secret, at)
}
