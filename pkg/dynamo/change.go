package dynamo

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/oklog/ulid/v2"

	sa "github.com/opentrace/service-accounts/pkg/serviceaccount"
)

// Account changes. A change to every token of an account cannot be one transaction: an account
// may hold up to 1,000 tokens, each with a credential and metadata, and DynamoDB takes at most
// 100 items per transaction. So such a change fans out in pages under the account's lock:
//
//   - The lock is the change recorded on the account's own item (changeId, changeOp and the
//     holder's lease, changeUntil), taken in the transaction that records the change's one
//     event. Generating a token conditions on the account holding no lock, so no token can slip
//     in between the pages.
//   - Each page is a transaction that also renews the lease, conditioned on the lock still
//     being this change's.
//   - The last transaction completes the change and releases the lock; the caller is answered
//     only after it.
//   - If the holder dies midway, its lease runs out, and the next writer to the account (or the
//     retried request) finishes the recorded change before doing its own.
//
// The authorizer keeps reading exactly one item: the pages change the credentials themselves.
const (
	attrChangeID = "changeId"
	changeDelete = "delete"
	// changeLease is how long a holder may go without renewing before another writer takes the
	// change over. A page takes milliseconds; a Lambda invocation ends long before this.
	changeLease = 30 * time.Second
	// tokensPerPage fills a transaction: each token's metadata and credential, and the lease.
	tokensPerPage = (maxTransactItems - 1) / 2
)

// lease is the end of a lease taken or renewed now.
func (s *Store) lease() int64 { return s.now().Add(changeLease).UnixMilli() }

// expired reports whether the holder of an account's change has let its lease run out.
func (s *Store) expired(a accountItem) bool { return s.now().UnixMilli() > a.ChangeUntil }

// DeleteServiceAccount deletes an account and every token of it. It takes the account's lock,
// recording service_account.deleted with the number of open tokens it found, deletes the tokens'
// credentials and metadata in pages, then the account and its name; it returns only when all
// of that is done, so no token of the account works once it has returned. A delete already
// recorded is finished rather than started again. Errors: ENOTFOUND, EUNAVAILABLE (contention
// or a failed dependency: the recorded delete is finished by the retry).
func (s *Store) DeleteServiceAccount(ctx context.Context, orgID, saID, actor string, at time.Time) error {
	pk := orgPK(orgID)
	var locked accountItem
	err := contended(ctx, "delete service account", func() (bool, error) {
		a, err := s.account(ctx, orgID, saID)
		switch {
		case err != nil:
			return false, err
		case a.ChangeOp == changeDelete:
			locked = a // already being deleted: help finish it
			return false, nil
		case a.ChangeID != "" && !s.expired(a):
			return true, sa.Unavailable(errors.New("the account is being changed"))
		case a.ChangeID != "":
			if err := s.finish(ctx, a); err != nil {
				return false, err
			}
			return true, nil
		}
		a.ChangeID, a.ChangeOp, a.ChangeUntil = ulid.Make().String(), changeDelete, s.lease()
		ev, err := s.event(orgID, "service_account.deleted", actor, saID, "", at, map[string]any{"tokens": a.ActiveTokens})
		if err != nil {
			return false, err
		}
		var tx txn
		// The lock does not wait for the token count to hold still (a busy account would
		// starve the delete): tokens generated until it is taken are deleted with the rest,
		// and none after. So the event counts the open tokens the delete found as it began.
		tx.add("lock", s.update(key(pk, accountSK(saID)), "SET changeId = :id, changeOp = :op, changeUntil = :until",
			"attribute_exists(pk) AND attribute_not_exists(changeId)",
			map[string]types.AttributeValue{":id": str(a.ChangeID), ":op": str(a.ChangeOp), ":until": num(a.ChangeUntil)}))
		tx.add("event", ev)
		tx.add("org", s.orgAlive(orgID))
		failed, err := s.write(ctx, &tx)
		if failed["lock"] {
			return true, err // changed since the read: read again
		}
		if err != nil {
			return isConflict(err), classify("lock service account", err)
		}
		locked = a
		return false, nil
	})
	if err != nil {
		return err
	}
	return s.finish(ctx, locked)
}

// finish completes the change recorded on an account's item.
func (s *Store) finish(ctx context.Context, a accountItem) error {
	switch a.ChangeOp {
	case changeDelete:
		return s.finishDelete(ctx, a)
	default:
		return sa.Internal(fmt.Errorf("account %s records an unknown change %q", a.ID, a.ChangeOp))
	}
}

// errLockLost ends a fan-out whose account no longer holds its lock.
var errLockLost = errors.New("the account's lock is no longer this change's")

// finishDelete deletes every token of an account locked for its delete, a page at a time, then
// the account itself, its name and its place in the org's count. Every step can be repeated:
// two deleters of one account both succeed.
func (s *Store) finishDelete(ctx context.Context, a accountItem) error {
	pk := orgPK(a.OrgID)
	for {
		// What a page deletes is gone from the next read: each page reads from the start.
		out, err := s.db.Query(ctx, &dynamodb.QueryInput{
			TableName:                 s.table,
			KeyConditionExpression:    aws.String("pk = :pk AND begins_with(sk, :prefix)"),
			ExpressionAttributeValues: map[string]types.AttributeValue{":pk": str(pk), ":prefix": str(tokensOf(a.ID))},
			ProjectionExpression:      aws.String("sk, #hash, closedAt"),
			ExpressionAttributeNames:  map[string]string{"#hash": "hash"},
			ConsistentRead:            aws.Bool(true),
			Limit:                     aws.Int32(tokensPerPage),
		})
		if err != nil {
			return classify("delete service account: read tokens", err)
		}
		if len(out.Items) == 0 {
			break
		}
		tokens, err := decodeAll[tokenItem](out.Items, "delete service account: read tokens")
		if err != nil {
			return err
		}
		var tx txn
		for _, t := range tokens {
			tx.add("metadata", s.del(key(pk, t.SK)))
			if t.ClosedAt == nil {
				tx.add("credential", s.del(key(credPK(t.Hash), credSK)))
			}
		}
		tx.add("lock", s.update(key(pk, accountSK(a.ID)), "SET changeUntil = :until", "changeId = :id",
			map[string]types.AttributeValue{":until": num(s.lease()), ":id": str(a.ChangeID)}))
		if err := s.page(ctx, a, &tx); err != nil {
			return done(err)
		}
	}
	var tx txn
	tx.add("lock", types.TransactWriteItem{Delete: &types.Delete{
		TableName: s.table, Key: key(pk, accountSK(a.ID)),
		ConditionExpression:       aws.String("changeId = :id"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":id": str(a.ChangeID)},
	}})
	tx.add("name", s.del(key(pk, nameSK(a.NameKey))))
	tx.add("quota", s.update(key(pk, orgSK), "SET accounts = accounts - :one", "accounts > :zero",
		map[string]types.AttributeValue{":one": num(1), ":zero": num(0)}))
	return done(s.page(ctx, a, &tx))
}

// done turns the end of a delete's fan-out into its outcome: a lock lost because another
// deleter finished the account is success.
func done(err error) error {
	if errors.Is(err, errLockLost) {
		return nil
	}
	return err
}

// page writes one page of a fan-out, retrying it while it conflicts with another writer of the
// same items. It returns errLockLost when the account no longer holds this change's lock (the
// change is complete, or the account is gone).
func (s *Store) page(ctx context.Context, a accountItem, tx *txn) error {
	return contended(ctx, "account change", func() (bool, error) {
		failed, err := s.write(ctx, tx)
		switch {
		case failed["lock"]:
			now, gerr := s.account(ctx, a.OrgID, a.ID)
			if sa.ErrorCode(gerr) == sa.ENOTFOUND || (gerr == nil && now.ChangeID != a.ChangeID) {
				return false, errLockLost
			}
			if gerr != nil {
				return false, gerr
			}
			return true, err
		case err != nil:
			return isConflict(err), classify("account change", err)
		}
		return false, nil
	})
}
