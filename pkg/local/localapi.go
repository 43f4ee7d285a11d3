package local

import (
	"encoding/json"
	"io"
	"maps"
	"mime"
	"net/http"
	"slices"
	"strings"
	"time"

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
