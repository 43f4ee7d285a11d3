package audit

import (
	"context"

	"github.com/aws/aws-lambda-go/events"
)

// Handle is the Lambda handler of the scheduled audit. A scheduled event's time is the audit's
// now, so the local stack (or a test) can pretend it is later by sending a later time; an event
// without one runs as of the Wall clock. Errors: those of Run (EUNAVAILABLE, EINTERNAL).
func (r *Runner) Handle(ctx context.Context, ev events.EventBridgeEvent) (Summary, error) {
	now := ev.Time
	if now.IsZero() {
		now = r.wall()
	}
	return r.Run(ctx, now)
}
