// Package usage is the table-stream consumer of the table's own bookkeeping. It rolls last use
// up: the authorizer records a token's use on its credential item, the one item it reads on
// every request, and this package carries that time to the token's metadata and its service
// account, where the list and get routes read it. And it sweeps deleted organisations: the
// INSERT of an org's tombstone starts the revocation of every token of the org.
package usage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"

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

// How credential items look in the stream. These mirror pkg/dynamo's key layout and attribute
// names; they are repeated rather than imported because this package consumes the stream's
// wire format, and must not depend on the adapter that happens to write it.
const (
	credentialPKPrefix = "TOKENHASH#"
	credentialType     = "credential"
	tombstonePKPrefix  = "TOMBSTONE#"
	attrLastUsedAt     = "lastUsedAt"
)

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

// use is one token use found in a stream record.
type use struct {
	orgID, saID, tokenID string
	at                   time.Time
}

// Handle rolls up the last use carried by each record of a batch. A record acts only when it
// is an INSERT or MODIFY of a credential item whose new image has a lastUsedAt that differs
// from the old image's; everything else, REMOVE included, is acknowledged untouched.
//
// Outcomes per record:
//   - rolled up: the store call succeeded, which includes a token or account that is gone or
//     already newer, so replays and out-of-order deliveries are harmless;
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
		if org, ok := deletedOrg(rec); ok {
			// A sweep that cannot finish before the deadline is retried from this record, and
			// resumes where it stopped.
			if err := h.Store.SweepOrg(ctx, org, now()); err != nil {
				log.Error("sweep of a deleted org failed; retrying from this record",
					slog.String("eventID", rec.EventID), slog.String("sequenceNumber", rec.Change.SequenceNumber),
					slog.String("orgId", org), slog.String("code", sa.ErrorCode(err)), slog.String("error", err.Error()))
				resp.BatchItemFailures = append(resp.BatchItemFailures, events.DynamoDBBatchItemFailure{ItemIdentifier: rec.Change.SequenceNumber})
				continue
			}
			log.Info("swept a deleted org", slog.String("orgId", org))
			swept++
			continue
		}
		u, act, err := useOf(rec)
		switch {
		case err != nil:
			dropped++
			// Name the record and the attribute at fault, never image values: the key of a
			// credential is a token's hash.
			log.Error("dropped malformed stream record",
				slog.String("eventID", rec.EventID), slog.String("sequenceNumber", rec.Change.SequenceNumber),
				slog.String("eventName", rec.EventName), slog.String("reason", err.Error()))
		case !act:
			ignored++
		default:
			if err := h.Store.RollUpUsage(ctx, u.orgID, u.saID, u.tokenID, u.at); err != nil {
				log.Error("roll up last use failed; retrying from this record",
					slog.String("eventID", rec.EventID), slog.String("sequenceNumber", rec.Change.SequenceNumber),
					slog.String("orgId", u.orgID), slog.String("serviceAccountId", u.saID), slog.String("tokenId", u.tokenID),
					slog.String("code", sa.ErrorCode(err)), slog.String("error", err.Error()))
				resp.BatchItemFailures = append(resp.BatchItemFailures, events.DynamoDBBatchItemFailure{ItemIdentifier: rec.Change.SequenceNumber})
				continue
			}
			rolledUp++
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

// deletedOrg reports the org whose tombstone a record inserts: the org's deletion, to sweep.
func deletedOrg(rec events.DynamoDBEventRecord) (string, bool) {
	if rec.EventName != string(events.DynamoDBOperationTypeInsert) {
		return "", false
	}
	pk, _ := stringAttr(rec.Change.Keys, "pk")
	org, ok := strings.CutPrefix(pk, tombstonePKPrefix)
	return org, ok && sa.ValidOrgID(org)
}

// useOf finds the token use a record carries. act is false for a record that carries none (not
// a credential, a removal, a credential change that is not a new use); err is non-nil for a
// credential use whose image cannot be read, which no retry can fix.
func useOf(rec events.DynamoDBEventRecord) (u use, act bool, err error) {
	if rec.EventName != string(events.DynamoDBOperationTypeInsert) && rec.EventName != string(events.DynamoDBOperationTypeModify) {
		return use{}, false, nil
	}
	img := rec.Change.NewImage
	pk, _ := stringAttr(rec.Change.Keys, "pk")
	typ, _ := stringAttr(img, "type")
	if !strings.HasPrefix(pk, credentialPKPrefix) && typ != credentialType {
		// Token metadata and accounts: among them the roll-up's own writes, which must not
		// feed back into it.
		return use{}, false, nil
	}
	raw, ok := img[attrLastUsedAt]
	if !ok {
		return use{}, false, nil // a credential written or changed without a use, e.g. at generation
	}
	at, err := millis(raw)
	if err != nil {
		return use{}, false, err
	}
	if old, ok := rec.Change.OldImage[attrLastUsedAt]; ok {
		if prev, err := millis(old); err == nil && prev.Equal(at) {
			return use{}, false, nil // another attribute of the credential changed
		}
	}
	var errs []error
	id := func(name string, valid func(string) bool) string {
		v, ok := stringAttr(img, name)
		if !ok || !valid(v) {
			errs = append(errs, fmt.Errorf("attribute %s is missing or malformed", name))
		}
		return v
	}
	// Ids become parts of keys, so only well-formed ones are used: a malformed one could
	// otherwise name a different item.
	u = use{orgID: id("orgId", sa.ValidOrgID), saID: id("saId", sa.ValidServiceAccountID), tokenID: id("tokenId", sa.ValidTokenID), at: at}
	if len(errs) > 0 {
		return use{}, false, errors.Join(errs...)
	}
	return u, true, nil
}

// stringAttr returns a string attribute of an image, checking its type first: the event
// types' accessors panic, or for String render the value's internals, on another type.
func stringAttr(img map[string]events.DynamoDBAttributeValue, name string) (string, bool) {
	v, ok := img[name]
	if !ok || v.DataType() != events.DataTypeString {
		return "", false
	}
	return v.String(), true
}

// millis reads a time stored as epoch milliseconds, as pkg/dynamo stores every time.
func millis(v events.DynamoDBAttributeValue) (time.Time, error) {
	if v.DataType() != events.DataTypeNumber {
		return time.Time{}, fmt.Errorf("attribute %s is not a number", attrLastUsedAt)
	}
	n, err := strconv.ParseInt(v.Number(), 10, 64)
	if err != nil || n <= 0 {
		return time.Time{}, fmt.Errorf("attribute %s is not epoch milliseconds", attrLastUsedAt)
	}
	return time.UnixMilli(n).UTC(), nil
}
