package audit

import (
	"context"
	"encoding/json"
	"log/slog"

	sa "github.com/opentrace/service-accounts/pkg/serviceaccount"
)

// MetricsNamespace is the CloudWatch namespace of the audit's metrics.
const MetricsNamespace = "OpenTrace/ServiceAccounts"

// kindMetrics names the metric of each finding kind.
var kindMetrics = map[string]string{
	sa.FindingNeverUsed:     "NeverUsed",
	sa.FindingStale:         "Stale",
	sa.FindingRotationDue:   "RotationDue",
	sa.FindingExpiring:      "Expiring",
	sa.FindingUnusedAccount: "UnusedAccount",
}

type emfMetric struct {
	Name string `json:"Name"`
	Unit string `json:"Unit"`
}

type emfDirective struct {
	Namespace  string      `json:"Namespace"`
	Dimensions [][]string  `json:"Dimensions"`
	Metrics    []emfMetric `json:"Metrics"`
}

type emfMetadata struct {
	Timestamp         int64          `json:"Timestamp"`
	CloudWatchMetrics []emfDirective `json:"CloudWatchMetrics"`
}

// emit writes the invocation's one log line and one metrics line. The metrics count what this
// invocation did (after minus before), so that CloudWatch's Sum over a day is the day's run
// even when it took several invocations; the log line and the returned Summary carry the run's
// totals.
func (r *Runner) emit(ctx context.Context, x *run, before, after Summary, err error) {
	invocationMs := r.wall().Sub(x.start).Milliseconds()
	if r.Metrics != nil {
		values := map[string]any{}
		var metrics []emfMetric
		put := func(name, unit string, v int64) {
			metrics = append(metrics, emfMetric{Name: name, Unit: unit})
			values[name] = v
		}
		put("TokensAudited", "Count", int64(after.Tokens-before.Tokens))
		put("AccountsAudited", "Count", int64(after.Accounts-before.Accounts))
		put("OrgsReported", "Count", int64(after.Orgs-before.Orgs))
		total := 0
		for _, k := range Kinds {
			n := after.Findings[k] - before.Findings[k]
			total += n
			put(kindMetrics[k], "Count", int64(n))
		}
		put("Findings", "Count", int64(total))
		put("Revoked", "Count", int64(after.Revoked-before.Revoked))
		put("Writes", "Count", int64(after.Writes-before.Writes))
		put("Pages", "Count", int64(after.Pages-before.Pages))
		put("RunsCompleted", "Count", int64(b2i(after.Complete)))
		put("Errors", "Count", int64(b2i(err != nil)))
		put("Duration", "Milliseconds", invocationMs)
		// CloudWatch drops metrics stamped more than two weeks back, so the timestamp is the
		// wall clock, never the audit's (possibly pretended) now.
		values["_aws"] = emfMetadata{
			Timestamp: r.wall().UnixMilli(),
			CloudWatchMetrics: []emfDirective{{
				Namespace: MetricsNamespace, Dimensions: [][]string{{}}, Metrics: metrics,
			}},
		}
		if line, merr := json.Marshal(values); merr == nil {
			_, _ = r.Metrics.Write(append(line, '\n'))
		}
	}
	if r.Log == nil {
		return
	}
	var kinds []any
	for _, k := range Kinds {
		kinds = append(kinds, slog.Int(k, after.Findings[k]))
	}
	attrs := []slog.Attr{
		slog.Time("runAt", after.RunAt),
		slog.Bool("complete", after.Complete),
		slog.Bool("resumed", x.resumed),
		slog.Int("orgs", after.Orgs),
		slog.Int("accounts", after.Accounts),
		slog.Int("tokens", after.Tokens),
		slog.Group("findings", kinds...),
		slog.Int("revoked", after.Revoked),
		slog.Int("writes", after.Writes),
		slog.Int("pages", after.Pages),
		slog.Int64("durationMs", after.DurationMs),
		slog.Int64("invocationMs", invocationMs),
	}
	if after.TruncatedReports > 0 {
		attrs = append(attrs, slog.Int("truncatedReports", after.TruncatedReports))
	}
	level := slog.LevelInfo
	if err != nil {
		level = slog.LevelError
		attrs = append(attrs, slog.String("error", err.Error()), slog.String("code", sa.ErrorCode(err)))
	}
	r.Log.LogAttrs(ctx, level, "audit run", attrs...)
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
