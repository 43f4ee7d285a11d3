package dynamo

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"golang.org/x/sync/errgroup"

	sa "github.com/opentrace/service-accounts/pkg/serviceaccount"
)

// An organisation deleted at the identity provider. Its tombstone lives in a partition of its
// own, so that purging the org's partition leaves it in place, and writes in the org go on
// being refused:
//
//	TOMBSTONE#<org>      TOMBSTONE                  the org was deleted (type org_tombstone)
//
// Its life:
//   - Writing the tombstone records organization.deleted, in one transaction: the change's one
//     event. From then on every write in the org is conditioned on the tombstone's absence
//     (orgAlive), so it is refused with 403.
//   - Its INSERT on the table's stream starts the sweep (SweepOrg), which revokes every open
//     token of the org in pages. The sweep can be repeated and resumed: what it revoked is
//     closed and skipped next time. It records its end on the tombstone (sweptAt).
//   - After the retention period (purgeAt), the scheduled audit deletes the org's partition
//     (PurgeOrg) and records purgedAt.
const (
	tombstonePrefix = "TOMBSTONE#"
	tombstoneSK     = "TOMBSTONE"
	itemTombstone   = "org_tombstone"
	// SweepActor names the sweep in the audit trail and on the tokens it revokes.
	SweepActor = "system"
	// sweepWorkers is how many accounts the sweep revokes at once.
	sweepWorkers = 8
)

func tombstonePK(org string) string { return tombstonePrefix + org }

type tombstoneItem struct {
	PK        string `dynamodbav:"pk"`
	SK        string `dynamodbav:"sk"`
	Type      string `dynamodbav:"type"`
	OrgID     string `dynamodbav:"orgId"`
	MessageID string `dynamodbav:"messageId"`
	DeletedAt int64  `dynamodbav:"deletedAt"`
	PurgeAt   int64  `dynamodbav:"purgeAt"`
	SweptAt   *int64 `dynamodbav:"sweptAt,omitempty"`
	Revoked   int    `dynamodbav:"revoked"`
	PurgedAt  *int64 `dynamodbav:"purgedAt,omitempty"`
}

// Tombstone is an organisation deleted at the identity provider.
type Tombstone struct {
	OrgID     string
	MessageID string     // the identity provider's webhook message that deleted it
	DeletedAt time.Time  // when the tombstone was written
	PurgeAt   time.Time  // when the org's data may be purged
	SweptAt   *time.Time // when every token of the org had been revoked
	Revoked   int        // tokens the sweep revoked
	PurgedAt  *time.Time // when the org's data was purged
}

func (it tombstoneItem) domain() Tombstone {
	return Tombstone{OrgID: it.OrgID, MessageID: it.MessageID, DeletedAt: fromMS(it.DeletedAt), PurgeAt: fromMS(it.PurgeAt),
		SweptAt: fromMSPtr(it.SweptAt), Revoked: it.Revoked, PurgedAt: fromMSPtr(it.PurgedAt)}
}

// errOrgDeleted is every write's answer in a deleted organisation.
var errOrgDeleted = sa.Errorf(sa.EFORBIDDEN, "organization deleted")

// orgAlive is the condition every write in an org carries: the org has no tombstone. A
// transaction that fails it is refused with errOrgDeleted (txn.write).
func (s *Store) orgAlive(orgID string) types.TransactWriteItem {
	return types.TransactWriteItem{ConditionCheck: &types.ConditionCheck{
		TableName: s.table, Key: key(tombstonePK(orgID), tombstoneSK),
		ConditionExpression: aws.String("attribute_not_exists(pk)"),
	}}
}

// DeleteOrg writes orgID's tombstone with organization.deleted, whose detail counts the
// accounts and the open tokens found, in one transaction. It reports false, changing
// nothing, when the org already has one: a repeated webhook. Errors: EUNAVAILABLE.
func (s *Store) DeleteOrg(ctx context.Context, orgID, messageID string, at, purgeAt time.Time) (bool, error) {
	accounts, tokens := 0, 0
	in := inPartition(orgPK(orgID), saPrefix)
	in.ProjectionExpression = aws.String("activeTokens")
	err := query(ctx, s, "delete org: count accounts", in, func(items []accountItem) error {
		for _, a := range items {
			accounts, tokens = accounts+1, tokens+a.ActiveTokens
		}
		return nil
	})
	if err != nil {
		return false, err
	}
	stone, err := s.put(tombstoneItem{
		PK: tombstonePK(orgID), SK: tombstoneSK, Type: itemTombstone, OrgID: orgID, MessageID: messageID,
		DeletedAt: ms(at), PurgeAt: ms(purgeAt),
	}, "attribute_not_exists(pk)")
	if err != nil {
		return false, err
	}
	ev, err := s.event(orgID, "organization.deleted", SweepActor, "", "", at,
		map[string]any{"serviceAccounts": accounts, "activeTokens": tokens, "messageId": messageID})
	if err != nil {
		return false, err
	}
	var tx txn
	tx.add("tombstone", stone)
	tx.add("event", ev)
	failed, err := s.write(ctx, &tx)
	switch {
	case err == nil:
		return true, nil
	case failed["tombstone"]:
		return false, nil
	default:
		return false, classify("delete org", err)
	}
}

// GetTombstone returns orgID's tombstone, or ENOTFOUND.
func (s *Store) GetTombstone(ctx context.Context, orgID string) (Tombstone, error) {
	var it tombstoneItem
	if err := s.get(ctx, key(tombstonePK(orgID), tombstoneSK), &it); err != nil {
		return Tombstone{}, notFoundAs(err, "organization tombstone")
	}
	return it.domain(), nil
}

// SweepOrg revokes every open token of a deleted org, several accounts at a time and each
// account's tokens in pages, then records sweptAt and the count on the tombstone. It can be
// interrupted and run again: each page is a transaction, and a token it closed is skipped the
// next time. An org without a tombstone is not swept (EFORBIDDEN would be wrong: ENOTFOUND).
// Errors: ENOTFOUND, EUNAVAILABLE.
func (s *Store) SweepOrg(ctx context.Context, orgID string, at time.Time) error {
	stone, err := s.GetTombstone(ctx, orgID)
	if err != nil {
		return err
	}
	if stone.SweptAt != nil {
		return nil
	}
	in := inPartition(orgPK(orgID), saPrefix)
	in.ProjectionExpression = aws.String("saId")
	accounts, err := queryAll[accountItem](ctx, s, "sweep org: read accounts", in)
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(sweepWorkers)
	for _, a := range accounts {
		g.Go(func() error { return s.revokeAll(gctx, orgID, a.ID, at) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	// Counted from the tokens themselves, so that a sweep resumed after an interruption
	// counts each token once, and no item is written by every page.
	revoked := 0
	count := dynamodb.NewQueryPaginator(s.db, &dynamodb.QueryInput{
		TableName:                 s.table,
		KeyConditionExpression:    aws.String("pk = :pk AND begins_with(sk, :prefix)"),
		FilterExpression:          aws.String("revokedBy = :sweep"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": str(orgPK(orgID)), ":prefix": str(tokenPrefix), ":sweep": str(SweepActor)},
		Select:                    types.SelectCount,
	})
	for count.HasMorePages() {
		page, err := count.NextPage(ctx)
		if err != nil {
			return classify("sweep org: count", err)
		}
		revoked += int(page.Count)
	}
	_, err = s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 s.table,
		Key:                       key(tombstonePK(orgID), tombstoneSK),
		UpdateExpression:          aws.String("SET sweptAt = :at, revoked = :n"),
		ConditionExpression:       aws.String("attribute_exists(pk) AND attribute_not_exists(sweptAt)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":at": num(ms(at)), ":n": num(int64(revoked))},
	})
	if err != nil && !isConditionFailed(err) {
		return classify("sweep org: record the end", err)
	}
	return nil
}

// revokeAll revokes the open tokens of one account in pages: each page closes up to
// tokensPerPage tokens (metadata marked revoked by the sweep, credential deleted) and frees
// their slots.
func (s *Store) revokeAll(ctx context.Context, orgID, saID string, at time.Time) error {
	pk := orgPK(orgID)
	for {
		open, err := s.openTokens(ctx, orgID, saID)
		if err != nil || len(open) == 0 {
			return err
		}
		open = open[:min(len(open), tokensPerPage)]
		var tx txn
		for _, t := range open {
			tx.add("token", types.TransactWriteItem{Update: &types.Update{
				TableName:                 s.table,
				Key:                       key(pk, t.SK),
				UpdateExpression:          aws.String("SET closedAt = :at, revokedAt = :at, revokedBy = :by, #ttl = :ttl"),
				ConditionExpression:       aws.String("attribute_exists(pk) AND attribute_not_exists(closedAt)"),
				ExpressionAttributeNames:  map[string]string{"#ttl": TTLAttribute},
				ExpressionAttributeValues: map[string]types.AttributeValue{":at": num(ms(at)), ":by": str(SweepActor), ":ttl": num(at.Add(s.closedTTL).Unix())},
			}})
			tx.add("credential", s.del(key(credPK(t.Hash), credSK)))
		}
		names, removes := map[string]string{}, make([]string, len(open))
		for i, t := range open {
			names[fmt.Sprintf("#t%d", i)] = t.ID
			removes[i] = fmt.Sprintf("expiries.#t%d", i)
		}
		tx.add("slots", types.TransactWriteItem{Update: &types.Update{
			TableName: s.table, Key: key(pk, accountSK(saID)),
			UpdateExpression:          aws.String("SET activeTokens = activeTokens - :n REMOVE " + strings.Join(removes, ", ")),
			ConditionExpression:       aws.String("attribute_exists(pk)"),
			ExpressionAttributeNames:  names,
			ExpressionAttributeValues: map[string]types.AttributeValue{":n": num(int64(len(open)))},
		}})
		failed, err := s.write(ctx, &tx)
		switch {
		case err == nil:
		case failed["slots"] && !failed["token"]:
			// The account was deleted meanwhile, by a delete that had begun before the org's:
			// that delete removes these tokens, credentials included.
			if _, gerr := s.account(ctx, orgID, saID); sa.ErrorCode(gerr) == sa.ENOTFOUND {
				return nil
			}
			if err := backoff(ctx, 0); err != nil {
				return sa.Unavailable(err)
			}
		case failed != nil || isConflict(err):
			// A token closed or deleted meanwhile: read again.
			if err := backoff(ctx, 0); err != nil {
				return sa.Unavailable(err)
			}
		default:
			return classify("sweep org: revoke tokens", err)
		}
	}
}

// openTokens reads the open tokens of an account: their keys and hashes.
func (s *Store) openTokens(ctx context.Context, orgID, saID string) ([]tokenItem, error) {
	in := inPartition(orgPK(orgID), tokensOf(saID))
	in.FilterExpression = aws.String("attribute_not_exists(closedAt)")
	in.ProjectionExpression = aws.String("sk, tokenId, #hash")
	in.ExpressionAttributeNames = map[string]string{"#hash": "hash"}
	return queryAll[tokenItem](ctx, s, "read open tokens", in)
}

// PurgeOrg deletes every item of a deleted org's partition, 25 to a request, and records
// purgedAt on its tombstone, which stays. It refuses an org whose tombstone's purgeAt is
// after now. Errors: ENOTFOUND, ECONFLICT (not due yet), EUNAVAILABLE.
func (s *Store) PurgeOrg(ctx context.Context, orgID string, now time.Time) error {
	stone, err := s.GetTombstone(ctx, orgID)
	if err != nil {
		return err
	}
	if now.Before(stone.PurgeAt) {
		return sa.Errorf(sa.ECONFLICT, "The organization's data is kept until %s.", stone.PurgeAt.Format(time.RFC3339))
	}
	in := inPartition(orgPK(orgID), "")
	in.ProjectionExpression = aws.String("pk, sk")
	err = query(ctx, s, "purge org: read", in, func(items []keyItem) error {
		for start := 0; start < len(items); start += maxBatchWrite {
			var reqs []types.WriteRequest
			for _, it := range items[start:min(start+maxBatchWrite, len(items))] {
				reqs = append(reqs, types.WriteRequest{DeleteRequest: &types.DeleteRequest{Key: key(it.PK, it.SK)}})
			}
			if err := s.batchWrite(ctx, reqs); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	_, err = s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 s.table,
		Key:                       key(tombstonePK(orgID), tombstoneSK),
		UpdateExpression:          aws.String("SET purgedAt = :at"),
		ConditionExpression:       aws.String("attribute_exists(pk)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":at": num(ms(now))},
	})
	return classify("purge org: record the end", err)
}

// keyItem is an item read for its key only.
type keyItem struct {
	PK string `dynamodbav:"pk"`
	SK string `dynamodbav:"sk"`
}

// maxBatchWrite is DynamoDB's limit on the requests of one BatchWriteItem.
const maxBatchWrite = 25

// batchWrite sends one BatchWriteItem and again its unprocessed requests, backing off, until
// none is left.
func (s *Store) batchWrite(ctx context.Context, reqs []types.WriteRequest) error {
	for attempt := 0; len(reqs) > 0; attempt++ {
		out, err := s.db.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: map[string][]types.WriteRequest{*s.table: reqs}})
		if err != nil {
			return classify("batch write", err)
		}
		reqs = out.UnprocessedItems[*s.table]
		if len(reqs) > 0 {
			if attempt+1 == maxTransactAttempts {
				return sa.Unavailable(errors.New("batch write: items still unprocessed"))
			}
			if err := backoff(ctx, attempt); err != nil {
				return sa.Unavailable(err)
			}
		}
	}
	return nil
}
