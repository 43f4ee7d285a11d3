// Package reqlog writes the one log line every function that answers HTTP writes per request:
// the route (its template, not the path, so ids a client puts in it are not logged), the
// status, the caller's org and principal, the time taken, and for a failure its error code, or
// for a 5xx its cause. Never a credential, a body or a query string.
package reqlog

import (
	"context"
	"log/slog"
	"time"

	sa "github.com/opentrace/service-accounts/pkg/serviceaccount"
)

// Request is what the line says of one request.
type Request struct {
	ID     string // API Gateway's request id; "" when unknown
	Method string
	Route  string // the route's template, e.g. /orgs/{orgId}/service-accounts
	Status int
	Caller sa.Principal
	Start  time.Time
	Err    error // the failure answered, if any
}

// Log writes r's line at INFO, or at ERROR with the cause for a 5xx or an internal error.
func Log(ctx context.Context, log *slog.Logger, r Request) {
	attrs := make([]slog.Attr, 0, 8)
	if r.ID != "" {
		attrs = append(attrs, slog.String("requestId", r.ID))
	}
	attrs = append(attrs,
		slog.String("method", r.Method),
		slog.String("route", r.Route),
		slog.Int("status", r.Status),
		slog.String("orgId", r.Caller.OrgID),
		slog.String("principal", r.Caller.Subject),
		slog.Int64("durationMs", time.Since(r.Start).Milliseconds()),
	)
	level := slog.LevelInfo
	switch {
	case r.Status >= 500 || sa.ErrorCode(r.Err) == sa.EINTERNAL:
		level = slog.LevelError
		if r.Err != nil {
			attrs = append(attrs, slog.String("error", r.Err.Error()))
		}
	case r.Err != nil:
		attrs = append(attrs, slog.String("code", sa.ErrorCode(r.Err)))
	}
	log.LogAttrs(ctx, level, "request", attrs...)
}
