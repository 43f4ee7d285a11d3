package apigw

import (
	"errors"
	"net/http"

	sa "github.com/opentrace/service-accounts/pkg/serviceaccount"
)

// ProblemTypeBase prefixes the type URI of every problem: the code names the class of error.
const ProblemTypeBase = "https://api.opentrace.ai/problems/"

// Problem is an RFC 9457 problem details body.
type Problem struct {
	Type   string         `json:"type"`
	Title  string         `json:"title"`
	Status int            `json:"status"`
	Detail string         `json:"detail"`
	Errors []ProblemField `json:"errors,omitempty"`
}

// ProblemField names one invalid field of a request.
type ProblemField struct {
	Field  string `json:"field"`
	Detail string `json:"detail"`
}

// statuses is the one place an application error code becomes an HTTP status.
var statuses = map[string]int{
	sa.EINVALID:      http.StatusBadRequest,
	sa.EUNAUTHORIZED: http.StatusUnauthorized,
	sa.EFORBIDDEN:    http.StatusForbidden,
	sa.ENOTFOUND:     http.StatusNotFound,
	sa.ECONFLICT:     http.StatusConflict,
	sa.EUNAVAILABLE:  http.StatusServiceUnavailable,
	sa.EINTERNAL:     http.StatusInternalServerError,
}

// StatusOf returns the HTTP status for an error's code.
func StatusOf(err error) int {
	if s, ok := statuses[sa.ErrorCode(err)]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// ProblemOf renders err for a client: its public message only, never its internal cause.
func ProblemOf(err error) Problem {
	code := sa.ErrorCode(err)
	status := StatusOf(err)
	p := Problem{
		Type:   ProblemTypeBase + code,
		Title:  http.StatusText(status),
		Status: status,
		Detail: sa.ErrorMessage(err),
	}
	if e, ok := errors.AsType[*sa.Error](err); ok && code == sa.EINVALID {
		for _, f := range e.Fields {
			p.Errors = append(p.Errors, ProblemField{Field: f.Field, Detail: f.Message})
		}
	}
	return p
}
