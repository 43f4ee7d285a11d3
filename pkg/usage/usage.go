// Package usage is the table-stream consumer of the table's own bookkeeping. It rolls last use
// up: the authorizer records a token's use on its credential item, the one item it reads on
// every request, and this package carries that time to the token's metadata and its service
// account, where the list and get routes read it. And it sweeps deleted organisations: the
// INSERT of an org's tombstone starts the revocation of every token of the org.
package usage

import (
	"context"
	"io"
	"log/slog"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/opentrace/service-accounts/pkg/dynamo"
	sa "github.com/opentrace/service-accounts/pkg/serviceaccount"
)

// Store is what the consumer needs from the table.
type Store interface {
	// RollUpUsage moves the last use of a token and of its service account forward to at. A
	// token or account that is gone, or already shows a use at or after at, is left alone and
	// is not an error. Errors: EUNAVAILABLE, EINTERNAL.
	RollUpUsage(ctx context.Context, orgID, saID, tokenID string, at time.Time) error
	// SweepOrg revokes every open token of a deleted org. It may be stopped and run again,
	// resuming where it stopped. Errors: EUNAVAILABLE, EINTERNAL.
	SweepOrg(ctx context.Context, orgID string, at time.Time) error
}

// deadlineReserve is the time kept back from the invocation's deadline to answer Lambda. If the
// function timed out instead, Lambda would count the whole batch as failed and retry records
// already rolled up; stopping short of the deadline reports exactly what is left instead.
const deadlineReserve = 500 * time.Millisecond

// Handler consumes the table's stream (NEW_AND_OLD_IMAGES) through an event source mapping
// with ReportBatchItemFailures. It holds no state between batches: everything that makes a
// replay harmless is in the store's conditional writes.
type Handler struct {
	Store Store
	Log   *slog.Logger     // nil discards the logs
	Now   func() time.Time // the sweep's revocation time; nil is time.Now
}

// Handle acts on the fact each record of a batch carries (dynamo.ReadRecord): a token's use is
// rolled up, a deleted org is swept; every other record is acknowledged untouched.
//
// Outcomes per record:
//   - done: the store call succeeded, which includes a token or account that is gone or
//     already newer, and a sweep already done, so replays and out-of-order deliveries are
//     harmless;
//   - dropped: the image is malformed (missing ids, a lastUsedAt that is not epoch
//     milliseconds). Retrying cannot repair a record, and a retried poison record would hold
//     up its whole shard until it expired, so it is logged and acknowledged;
//   - failed: the store returned an error (EUNAVAILABLE or EINTERNAL). The record and every
//     later one are returned in BatchItemFailures, and the later ones are not attempted; see
//     the loop for why.
//
// Handle returns no error of its own, ever: an error would make Lambda retry the whole batch,
// records already rolled up included, where BatchItemFailures names exactly what to retry.
func (h *Handler) Handle(ctx context.Context, ev events.DynamoDBEvent) (events.DynamoDBEventResponse, error) {
	log := h.Log
	if log == nil {
		log = slog.New(slog.NewJSONHandler(io.Discard, nil))
	}
	if deadline, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline.Add(-deadlineReserve))
		defer cancel()
	}

	now := h.Now
	if now == nil {
		now = time.Now
	}
	var resp events.DynamoDBEventResponse
	var rolledUp, swept, ignored, dropped int
	for _, rec := range ev.Records {
		// With ReportBatchItemFailures, Lambda checkpoints the shard just before the lowest
		// sequence number reported and delivers everything after it again. Once a record has
		// failed, the later ones are coming back anyway; attempting them now would apply a
		// key's later change before its earlier one, and spend calls on a store that has just
		// failed. So they are reported without being attempted: the response then says
		// exactly what was not done, and stays right if the consumer ever does work that,
		// unlike the forward-only update, depends on order.
		if len(resp.BatchItemFailures) > 0 {
			resp.BatchItemFailures = append(resp.BatchItemFailures, events.DynamoDBBatchItemFailure{ItemIdentifier: rec.Change.SequenceNumber})
			continue
		}
		fact, err := dynamo.ReadRecord(rec)
		switch {
		case err != nil:
			dropped++
			// Name the record and the attribute at fault, never image values: the key of a
			// credential is a token's hash.
			log.Error("dropped malformed stream record",
				slog.String("eventID", rec.EventID), slog.String("sequenceNumber", rec.Change.SequenceNumber),
				slog.String("eventName", rec.EventName), slog.String("reason", err.Error()))
		case fact.DeletedOrg != "":
			// A sweep that cannot finish before the deadline is retried from this record, and
			// resumes where it stopped.
			if err := h.Store.SweepOrg(ctx, fact.DeletedOrg, now()); err != nil {
				log.Error("sweep of a deleted org failed; retrying from this record",
					slog.String("eventID", rec.EventID), slog.String("sequenceNumber", rec.Change.SequenceNumber),
					slog.String("orgId", fact.DeletedOrg), slog.String("code", sa.ErrorCode(err)), slog.String("error", err.Error()))
				resp.BatchItemFailures = append(resp.BatchItemFailures, events.DynamoDBBatchItemFailure{ItemIdentifier: rec.Change.SequenceNumber})
				continue
			}
			log.Info("swept a deleted org", slog.String("orgId", fact.DeletedOrg))
			swept++
		case fact.Use != nil:
			u := fact.Use
			if err := h.Store.RollUpUsage(ctx, u.OrgID, u.ServiceAccountID, u.TokenID, u.At); err != nil {
				log.Error("roll up last use failed; retrying from this record",
					slog.String("eventID", rec.EventID), slog.String("sequenceNumber", rec.Change.SequenceNumber),
					slog.String("orgId", u.OrgID), slog.String("serviceAccountId", u.ServiceAccountID), slog.String("tokenId", u.TokenID),
					slog.String("code", sa.ErrorCode(err)), slog.String("error", err.Error()))
				resp.BatchItemFailures = append(resp.BatchItemFailures, events.DynamoDBBatchItemFailure{ItemIdentifier: rec.Change.SequenceNumber})
				continue
			}
			rolledUp++
		default:
			ignored++
		}
	}
	attrs := []slog.Attr{
		slog.Int("records", len(ev.Records)), slog.Int("rolledUp", rolledUp), slog.Int("swept", swept), slog.Int("ignored", ignored),
		slog.Int("dropped", dropped), slog.Int("failed", len(resp.BatchItemFailures)),
	}
	if len(resp.BatchItemFailures) > 0 {
		attrs = append(attrs, slog.String("retryFrom", resp.BatchItemFailures[0].ItemIdentifier))
	}
	log.LogAttrs(ctx, slog.LevelInfo, "usage batch", attrs...)
	return resp, nil
}
