package local

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/opentrace/service-accounts/pkg/template"
)

// wireStream subscribes a function to the table's stream with the event source mapping's
// settings from the template.
func (s *Stack) wireStream(ctx context.Context, f template.Function, e template.Event, h any, r template.Resolver) error {
	p := e.Properties
	if err := onlyKeys(p, "Stream", "StartingPosition", "BatchSize", "MaximumBatchingWindowInSeconds",
		"FunctionResponseTypes", "BisectBatchOnFunctionError", "MaximumRetryAttempts",
		"MaximumRecordAgeInSeconds", "DestinationConfig", "FilterCriteria"); err != nil {
		return err
	}
	handler, ok := h.(StreamHandler)
	if !ok {
		return fmt.Errorf("a stream subscription needs a local.StreamHandler, the constructor gives %T", h)
	}
	arn, err := s.tpl.Resolve(p["Stream"], r)
	if err != nil || arn != s.AWS.streamARN {
		return fmt.Errorf("the subscription is not to the table's stream (%v)", err)
	}
	cfg := SubscriptionConfig{Name: f.LogicalID, BatchSize: 100, MaxRetries: -1}
	if v, ok := p["BatchSize"].(int); ok {
		cfg.BatchSize = v
	}
	if v, ok := p["MaximumBatchingWindowInSeconds"].(int); ok {
		cfg.Window = time.Duration(v) * time.Second
	}
	if v, ok := p["MaximumRetryAttempts"].(int); ok {
		cfg.MaxRetries = v
	}
	if v, ok := p["MaximumRecordAgeInSeconds"].(int); ok && v >= 0 {
		cfg.MaxRecordAge = time.Duration(v) * time.Second
	}
	cfg.Bisect, _ = p["BisectBatchOnFunctionError"].(bool)
	if types, ok := p["FunctionResponseTypes"].([]any); ok {
		cfg.ReportBatchItemFailures = slices.Contains(types, any("ReportBatchItemFailures"))
	}
	filters, _ := p["FilterCriteria"].(map[string]any)
	list, _ := filters["Filters"].([]any)
	for _, raw := range list {
		m, _ := raw.(map[string]any)
		pattern, err := ParsePattern(fmt.Sprint(m["Pattern"]))
		if err != nil {
			return err
		}
		cfg.Filters = append(cfg.Filters, pattern)
	}
	if v, ok := p["StartingPosition"].(string); ok {
		cfg.StartingPosition = v
	}
	log := s.log.With(slog.String("function", f.LogicalID))
	if s.AWS.Stream != nil {
		s.subs[f.LogicalID] = s.AWS.Stream.Subscribe(ctx, cfg, handler, log)
		return nil
	}
	// Another DynamoDB: read its stream through the Streams API, with the function's role, as
	// Lambda's event source mapping does.
	rt, err := s.AWS.runtime(s.tpl, f, r, s.opts)
	if err != nil {
		return err
	}
	sub := newSubscription(ctx, cfg, handler, log, time.Now, 4)
	s.subs[f.LogicalID] = sub
	return s.AWS.pollStream(ctx, sub, rt.AWS, s.opts.DynamoDBStreamsEndpoint, log)
}

// rateExpr is the schedule syntax the local stack runs: rate(N unit).
var rateExpr = regexp.MustCompile(`^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$`)

// wireSchedule runs a function on its schedule, as EventBridge would, and makes it available
// to POST /local/audit/run.
func (s *Stack) wireSchedule(ctx context.Context, f template.Function, e template.Event, h any, r template.Resolver) error {
	if err := onlyKeys(e.Properties, "Schedule", "ScheduleExpression", "Description", "Name", "State"); err != nil {
		return err
	}
	handler, ok := h.(ScheduleHandler)
	if !ok {
		return fmt.Errorf("a schedule needs a local.ScheduleHandler, the wiring gives %T", h)
	}
	raw := e.Properties["ScheduleExpression"]
	if raw == nil {
		raw = e.Properties["Schedule"]
	}
	expr, err := s.tpl.Resolve(raw, r)
	if err != nil {
		return err
	}
	m := rateExpr.FindStringSubmatch(expr)
	if m == nil {
		return fmt.Errorf("schedule %q: the local stack runs rate(N minutes|hours|days) only", expr)
	}
	n, _ := strconv.Atoi(m[1])
	unit := map[string]time.Duration{"minute": time.Minute, "hour": time.Hour, "day": 24 * time.Hour}[strings.TrimSuffix(m[2], "s")]
	every := time.Duration(n) * unit
	s.schedules[f.LogicalID] = handler
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				if _, err := s.runSchedule(ctx, f.LogicalID, now); err != nil {
					s.log.Error("scheduled run failed", slog.String("function", f.LogicalID), slog.String("error", err.Error()))
				}
			}
		}
	}()
	return nil
}

// runSchedule invokes a scheduled function with the event EventBridge sends, at time now.
func (s *Stack) runSchedule(ctx context.Context, id string, now time.Time) (any, error) {
	h, ok := s.schedules[id]
	if !ok {
		return nil, fmt.Errorf("no scheduled function %s", id)
	}
	detail, _ := json.Marshal(map[string]any{})
	return invoke(ctx, h, events.EventBridgeEvent{
		Version: "0", ID: newID(), DetailType: "Scheduled Event", Source: "aws.events",
		AccountID: AccountID, Time: now.UTC(), Region: Region,
		Resources: []string{fmt.Sprintf("arn:aws:events:%s:%s:rule/%s", Region, AccountID, id)},
		Detail:    detail,
	})
}
