package dynamo

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/oklog/ulid/v2"

	sa "github.com/opentrace/service-accounts/pkg/serviceaccount"
)

// API is the part of the DynamoDB client the store uses.
type API interface {
	GetItem(context.Context, *dynamodb.GetItemInput, ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	UpdateItem(context.Context, *dynamodb.UpdateItemInput, ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	Query(context.Context, *dynamodb.QueryInput, ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
	TransactWriteItems(context.Context, *dynamodb.TransactWriteItemsInput, ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error)
	BatchWriteItem(context.Context, *dynamodb.BatchWriteItemInput, ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error)
	// The audit's: a paginated table scan, and whole-item puts and deletes of its checkpoint
	// and reports.
	Scan(context.Context, *dynamodb.ScanInput, ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error)
	PutItem(context.Context, *dynamodb.PutItemInput, ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	DeleteItem(context.Context, *dynamodb.DeleteItemInput, ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
}

// Retention of what the table keeps after the fact.
const (
	DefaultEventRetention       = 400 * 24 * time.Hour // audit trail: over a year, for yearly reviews
	DefaultClosedTokenRetention = 90 * 24 * time.Hour  // revoked tokens stay listed this long
	credentialExpiryGrace       = 24 * time.Hour       // TTL deletion lags; expiry is checked on read anyway
	maxTransactAttempts         = 10                   // optimistic retries when a concurrent write wins
)

// Store implements serviceaccount.Store on one DynamoDB table.
type Store struct {
	db        API
	table     *string
	cursors   cursorSigner
	eventTTL  time.Duration
	closedTTL time.Duration
}

var _ sa.Store = (*Store)(nil)

// NewUnsigned returns a Store that holds no cursor key, for functions that never list
// accounts (the stream consumer, the audit), so that they need no access to the secret the key
// derives from. Listing through it fails with EINTERNAL.
func NewUnsigned(db API, table string) *Store {
	return &Store{db: db, table: aws.String(table), eventTTL: DefaultEventRetention, closedTTL: DefaultClosedTokenRetention}
}

// New returns a Store on table. cursorKey (at least 32 bytes) signs pagination cursors.
func New(db API, table string, cursorKey []byte) (*Store, error) {
	if len(cursorKey) < 32 {
		return nil, errors.New("dynamo: cursor key must be at least 32 bytes")
	}
	return &Store{
		db: db, table: aws.String(table), cursors: cursorSigner{key: cursorKey},
		eventTTL: DefaultEventRetention, closedTTL: DefaultClosedTokenRetention,
	}, nil
}

// backoff waits before the next optimistic attempt: a few milliseconds, doubling, with full
// jitter, so writers that collided do not collide again in lockstep.
func backoff(ctx context.Context, attempt int) error {
	d := time.Duration(rand.Int64N(int64(2*time.Millisecond) << min(attempt, 6)))
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

func key(pk, sk string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		"pk": &types.AttributeValueMemberS{Value: pk},
		"sk": &types.AttributeValueMemberS{Value: sk},
	}
}

func num(v int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(v, 10)}
}
func str(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }

func (s *Store) put(item any, cond string) (types.TransactWriteItem, error) {
	av, err := attributevalue.MarshalMap(item)
	if err != nil {
		return types.TransactWriteItem{}, sa.Internal(fmt.Errorf("marshal item: %w", err))
	}
	p := &types.Put{TableName: s.table, Item: av}
	if cond != "" {
		p.ConditionExpression = aws.String(cond)
	}
	return types.TransactWriteItem{Put: p}, nil
}

func (s *Store) event(org, action, actor, saID, tokenID string, at time.Time) (types.TransactWriteItem, error) {
	return s.put(eventItem{
		PK: orgPK(org), SK: eventSK(at, ulid.Make().String()), Type: itemEvent,
		Action: action, Actor: actor, SAID: saID, TokenID: tokenID,
		At: ms(at), TTL: at.Add(s.eventTTL).Unix(),
	}, "")
}

// CreateServiceAccount writes the account, its name guard and the org counter in one
// transaction. Errors: ECONFLICT (name taken, or the org holds maxPerOrg accounts),
// EUNAVAILABLE.
func (s *Store) CreateServiceAccount(ctx context.Context, acct sa.ServiceAccount, nameKey string, maxPerOrg int) error {
	pk := orgPK(acct.OrgID)
	item, err := s.put(accountItem{
		PK: pk, SK: accountSK(acct.ID), Type: itemAccount, OrgID: acct.OrgID, ID: acct.ID,
		Name: acct.Name, NameKey: nameKey, Description: acct.Description,
		CreatedAt: ms(acct.CreatedAt), CreatedBy: acct.CreatedBy,
	}, "attribute_not_exists(pk)")
	if err != nil {
		return err
	}
	guard := types.TransactWriteItem{Put: &types.Put{
		TableName: s.table,
		Item: map[string]types.AttributeValue{
			"pk": str(pk), "sk": str(nameSK(nameKey)), "type": str(itemNameGuard), "saId": str(acct.ID),
		},
		ConditionExpression: aws.String("attribute_not_exists(pk)"),
	}}
	counter := types.TransactWriteItem{Update: &types.Update{
		TableName:           s.table,
		Key:                 key(pk, orgSK),
		UpdateExpression:    aws.String("SET accounts = if_not_exists(accounts, :zero) + :one"),
		ConditionExpression: aws.String("attribute_not_exists(accounts) OR accounts < :max"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":zero": num(0), ":one": num(1), ":max": num(int64(maxPerOrg)),
		},
	}}
	ev, err := s.event(acct.OrgID, "service_account.created", acct.CreatedBy, acct.ID, "", acct.CreatedAt)
	if err != nil {
		return err
	}
	_, err = s.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{
		TransactItems: []types.TransactWriteItem{item, guard, counter, ev},
	})
	switch failed := conditionFailures(err); {
	case err == nil:
		return nil
	case failed[1]:
		return sa.Errorf(sa.ECONFLICT, "A service account named %q already exists in this organisation.", acct.Name)
	case failed[2]:
		return sa.Errorf(sa.ECONFLICT, "The organisation already has the maximum of %d service accounts.", maxPerOrg)
	default:
		return classify("create service account", err)
	}
}

// ListServiceAccounts returns one page of an org's accounts, oldest first. Errors: EINVALID (a
// cursor not issued for this org), EUNAVAILABLE.
func (s *Store) ListServiceAccounts(ctx context.Context, orgID string, limit int, cursor string) (sa.ServiceAccountPage, error) {
	if s.cursors.key == nil {
		return sa.ServiceAccountPage{}, sa.Internal(errors.New("dynamo: this store was built without a cursor key"))
	}
	in := &dynamodb.QueryInput{
		TableName:              s.table,
		KeyConditionExpression: aws.String("pk = :pk AND begins_with(sk, :prefix)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":pk": str(orgPK(orgID)), ":prefix": str(saPrefix),
		},
		ConsistentRead: aws.Bool(true),
		// One more than asked tells whether another page exists, so the last page carries no
		// cursor that would lead to an empty one.
		Limit: aws.Int32(int32(limit) + 1),
	}
	if cursor != "" {
		after, err := s.cursors.open(orgID, cursor)
		if err != nil {
			return sa.ServiceAccountPage{}, sa.Invalid(sa.FieldError{Field: "cursor", Message: "is not a valid cursor for this listing"})
		}
		in.ExclusiveStartKey = key(orgPK(orgID), accountSK(after))
	}
	out, err := s.db.Query(ctx, in)
	if err != nil {
		return sa.ServiceAccountPage{}, classify("list service accounts", err)
	}
	var items []accountItem
	if err := attributevalue.UnmarshalListOfMaps(out.Items, &items); err != nil {
		return sa.ServiceAccountPage{}, sa.Internal(fmt.Errorf("unmarshal accounts: %w", err))
	}
	page := sa.ServiceAccountPage{Items: make([]sa.ServiceAccount, 0, min(len(items), limit))}
	for i, it := range items {
		if i == limit {
			page.NextCursor = s.cursors.seal(orgID, items[i-1].ID)
			break
		}
		page.Items = append(page.Items, it.domain())
	}
	return page, nil
}

// GetServiceAccount reads one account. Errors: ENOTFOUND, EUNAVAILABLE.
func (s *Store) GetServiceAccount(ctx context.Context, orgID, saID string) (sa.ServiceAccount, error) {
	var it accountItem
	if err := s.get(ctx, key(orgPK(orgID), accountSK(saID)), &it); err != nil {
		return sa.ServiceAccount{}, notFoundAs(err, "service account")
	}
	return it.domain(), nil
}

// errNoItem is the internal not-found of get; callers say what was not found.
var errNoItem = errors.New("no item")

func (s *Store) get(ctx context.Context, k map[string]types.AttributeValue, into any) error {
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: s.table, Key: k, ConsistentRead: aws.Bool(true)})
	if err != nil {
		return classify("get item", err)
	}
	if out.Item == nil {
		return errNoItem
	}
	if err := attributevalue.UnmarshalMap(out.Item, into); err != nil {
		return sa.Internal(fmt.Errorf("unmarshal item: %w", err))
	}
	return nil
}

func notFoundAs(err error, what string) error {
	if errors.Is(err, errNoItem) {
		return sa.Errorf(sa.ENOTFOUND, "The %s does not exist.", what)
	}
	return err
}

// DeleteServiceAccount deletes an account together with the credentials and metadata of its
// open tokens in one transaction, so no token of it outlives the delete. The transaction is
// conditioned on the account's open-token count being the number of open tokens read and on
// each of them still being open, so the set deleted is exactly the set open at commit: a token
// generated or closed concurrently makes this attempt read again, or finds the account gone. Metadata of tokens
// already closed is removed afterwards; what remains is the audit trail. Errors: ENOTFOUND,
// EUNAVAILABLE.
func (s *Store) DeleteServiceAccount(ctx context.Context, orgID, saID, actor string, at time.Time) error {
	pk := orgPK(orgID)
	// First stop new tokens: while the account's delete lock exists, generation is refused,
	// so the delete below races only with revocations, which are finite, and cannot be
	// starved by a client generating tokens in a loop.
	lock := key(pk, deleteLockSK(saID))
	_, err := s.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		{ConditionCheck: &types.ConditionCheck{
			TableName: s.table, Key: key(pk, accountSK(saID)), ConditionExpression: aws.String("attribute_exists(pk)"),
		}},
		{Put: &types.Put{TableName: s.table, Item: map[string]types.AttributeValue{
			"pk": str(pk), "sk": str(deleteLockSK(saID)), "type": str(itemDeleteLock), "saId": str(saID),
			TTLAttribute: num(at.Add(time.Hour).Unix()), // a crashed delete does not lock the account forever
		}}},
	}})
	if conditionFailures(err)[0] {
		return sa.Errorf(sa.ENOTFOUND, "The service account does not exist.")
	}
	if err != nil {
		return classify("delete service account", err)
	}
	if err := s.deleteMarked(ctx, orgID, saID, actor, at); err != nil {
		// Release the lock, so that a failed delete leaves the account as it was. If even this
		// fails, the account refuses new tokens until the delete is retried or the lock's TTL.
		_, _ = s.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: s.table, Key: lock})
		return err
	}
	return nil
}

// deleteMarked deletes an account whose delete lock is held, with all its open tokens and the
// lock.
func (s *Store) deleteMarked(ctx context.Context, orgID, saID, actor string, at time.Time) error {
	pk := orgPK(orgID)
	for attempt := 0; ; attempt++ {
		var acct accountItem
		if err := s.get(ctx, key(pk, accountSK(saID)), &acct); err != nil {
			return notFoundAs(err, "service account")
		}
		tokens, err := s.queryTokens(ctx, orgID, saID)
		if err != nil {
			return err
		}
		open := 0
		for _, t := range tokens {
			if t.ClosedAt == nil {
				open++
			}
		}
		items := []types.TransactWriteItem{
			// The account's counter must equal the open tokens read, so that a token generated
			// or closed since the read (or a read that saw half of one) makes this attempt fail
			// and read again, rather than leave a credential behind.
			{Delete: &types.Delete{
				TableName:                 s.table,
				Key:                       key(pk, accountSK(saID)),
				ConditionExpression:       aws.String("attribute_exists(pk) AND activeTokens = :n"),
				ExpressionAttributeValues: map[string]types.AttributeValue{":n": num(int64(open))},
			}},
			{Delete: &types.Delete{TableName: s.table, Key: key(pk, nameSK(acct.NameKey))}},
			{Delete: &types.Delete{TableName: s.table, Key: key(pk, deleteLockSK(saID))}},
			{Update: &types.Update{
				TableName:                 s.table,
				Key:                       key(pk, orgSK),
				UpdateExpression:          aws.String("SET accounts = accounts - :one"),
				ConditionExpression:       aws.String("accounts > :zero"),
				ExpressionAttributeValues: map[string]types.AttributeValue{":one": num(1), ":zero": num(0)},
			}},
		}
		var closed []tokenItem
		for _, t := range tokens {
			if t.ClosedAt != nil {
				closed = append(closed, t)
				continue
			}
			// Each open token must still be open: with the counter alone, a token closed and
			// another generated since the read would leave the count equal and the new
			// token's credential behind.
			items = append(items,
				types.TransactWriteItem{Delete: &types.Delete{TableName: s.table, Key: key(credPK(t.Hash), credSK)}},
				types.TransactWriteItem{Delete: &types.Delete{
					TableName: s.table, Key: key(pk, t.SK),
					ConditionExpression: aws.String("attribute_exists(pk) AND attribute_not_exists(closedAt)"),
				}})
		}
		ev, err := s.event(orgID, "service_account.deleted", actor, saID, "", at)
		if err != nil {
			return err
		}
		items = append(items, ev)
		_, err = s.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: items})
		if err == nil {
			// The account and every credential are gone: the delete has happened. Metadata of
			// closed tokens is inert and carries a TTL, so a failed clean-up is left to it
			// rather than reported as a failed delete the caller would retry.
			_ = s.deleteClosed(ctx, closed)
			return nil
		}
		if len(conditionFailures(err)) == 0 {
			return classify("delete service account", err)
		}
		if attempt+1 == maxTransactAttempts {
			return sa.Unavailable(fmt.Errorf("delete service account: still contended after %d attempts: %w", maxTransactAttempts, err))
		}
		if err := backoff(ctx, attempt); err != nil {
			return sa.Unavailable(err)
		}
		// A token was generated or closed since the read: read again and retry.
	}
}

// deleteClosed removes metadata of closed tokens of a deleted account, retrying what
// BatchWriteItem leaves unprocessed a few times.
func (s *Store) deleteClosed(ctx context.Context, tokens []tokenItem) error {
	for start := 0; start < len(tokens); start += 25 {
		var reqs []types.WriteRequest
		for _, t := range tokens[start:min(start+25, len(tokens))] {
			reqs = append(reqs, types.WriteRequest{DeleteRequest: &types.DeleteRequest{Key: key(t.PK, t.SK)}})
		}
		pending := map[string][]types.WriteRequest{*s.table: reqs}
		for attempt := 0; len(pending) > 0 && attempt < maxTransactAttempts; attempt++ {
			out, err := s.db.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: pending})
			if err != nil {
				return classify("delete closed tokens", err)
			}
			pending = out.UnprocessedItems
		}
		if len(pending) > 0 {
			return sa.Unavailable(errors.New("delete closed tokens: items left unprocessed"))
		}
	}
	return nil
}

func (s *Store) queryTokens(ctx context.Context, orgID, saID string) ([]tokenItem, error) {
	var all []tokenItem
	p := dynamodb.NewQueryPaginator(s.db, &dynamodb.QueryInput{
		TableName:              s.table,
		KeyConditionExpression: aws.String("pk = :pk AND begins_with(sk, :prefix)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":pk": str(orgPK(orgID)), ":prefix": str(tokensOf(saID)),
		},
		ConsistentRead: aws.Bool(true),
	})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			return nil, classify("query tokens", err)
		}
		var page []tokenItem
		if err := attributevalue.UnmarshalListOfMaps(out.Items, &page); err != nil {
			return nil, sa.Internal(fmt.Errorf("unmarshal tokens: %w", err))
		}
		all = append(all, page...)
	}
	return all, nil
}

// CreateToken writes a token's metadata and credential and takes one of its account's slots, in
// one transaction conditioned on the account existing with fewer than maxActive open tokens.
// Errors: ENOTFOUND, ECONFLICT (the cap is reached), EUNAVAILABLE.
func (s *Store) CreateToken(ctx context.Context, t sa.Token, cred sa.Credential, maxActive int) error {
	pk := orgPK(t.OrgID)
	slot := types.TransactWriteItem{Update: &types.Update{
		TableName:                 s.table,
		Key:                       key(pk, accountSK(t.ServiceAccountID)),
		UpdateExpression:          aws.String("SET activeTokens = activeTokens + :one"),
		ConditionExpression:       aws.String("attribute_exists(pk) AND activeTokens < :max"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":one": num(1), ":max": num(int64(maxActive))},
	}}
	meta, err := s.put(newTokenItem(t), "attribute_not_exists(pk)")
	if err != nil {
		return err
	}
	ci := credentialItem{
		PK: credPK(t.Hash), SK: credSK, Type: itemCred,
		OrgID: cred.OrgID, SAID: cred.ServiceAccountID, SAName: cred.ServiceAccountName,
		TokenID: cred.TokenID, TokenName: cred.TokenName, ExpiresAt: msPtr(cred.ExpiresAt),
	}
	if cred.ExpiresAt != nil {
		ttl := cred.ExpiresAt.Add(credentialExpiryGrace).Unix()
		ci.TTL = &ttl
	}
	credential, err := s.put(ci, "attribute_not_exists(pk)")
	if err != nil {
		return err
	}
	ev, err := s.event(t.OrgID, "token.created", t.CreatedBy, t.ServiceAccountID, t.ID, t.CreatedAt)
	if err != nil {
		return err
	}
	unlocked := types.TransactWriteItem{ConditionCheck: &types.ConditionCheck{
		TableName: s.table, Key: key(pk, deleteLockSK(t.ServiceAccountID)), ConditionExpression: aws.String("attribute_not_exists(pk)"),
	}}
	_, err = s.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{
		TransactItems: []types.TransactWriteItem{slot, meta, credential, ev, unlocked},
	})
	failed := conditionFailures(err)
	switch {
	case err == nil:
		return nil
	case failed[4]:
		return sa.Errorf(sa.ENOTFOUND, "The service account is being deleted.")
	case !failed[0]:
		return classify("create token", err)
	}
	// The slot condition failed: either the account is gone or it is full.
	if _, gerr := s.GetServiceAccount(ctx, t.OrgID, t.ServiceAccountID); gerr != nil {
		return gerr
	}
	return sa.Errorf(sa.ECONFLICT, "The service account already has the maximum of %d active tokens; revoke one first.", maxActive)
}

// ListTokens returns the tokens the store holds for an account, oldest first.
// Errors: EUNAVAILABLE.
func (s *Store) ListTokens(ctx context.Context, orgID, saID string) ([]sa.Token, error) {
	items, err := s.queryTokens(ctx, orgID, saID)
	if err != nil {
		return nil, err
	}
	out := make([]sa.Token, len(items))
	for i, it := range items {
		out[i] = it.domain()
	}
	return out, nil
}

// CloseToken deletes a token's credential, marks its metadata closed (and revoked, when revoke)
// and frees its slot, in one transaction conditioned on the token still being open. Closing a
// closed token changes nothing, except that revoking a token retired after expiry records the
// revocation. Errors: ENOTFOUND, EUNAVAILABLE.
func (s *Store) CloseToken(ctx context.Context, orgID, saID, tokenID, actor string, at time.Time, revoke bool) error {
	pk := orgPK(orgID)
	tk := key(pk, tokenSK(saID, tokenID))
	slot := true // whether the account still holds a slot for the token
	for attempt := 0; ; attempt++ {
		var t tokenItem
		if err := s.get(ctx, tk, &t); err != nil {
			return notFoundAs(err, "token")
		}
		if t.ClosedAt != nil {
			if !revoke || t.RevokedAt != nil {
				return nil
			}
			_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
				TableName:                 s.table,
				Key:                       tk,
				UpdateExpression:          aws.String("SET revokedAt = :at, revokedBy = :by"),
				ConditionExpression:       aws.String("attribute_exists(pk) AND attribute_not_exists(revokedAt)"),
				ExpressionAttributeValues: map[string]types.AttributeValue{":at": num(ms(at)), ":by": str(actor)},
			})
			if err != nil && !isConditionFailed(err) {
				return classify("revoke token", err)
			}
			return nil
		}
		update := "SET closedAt = :at, #ttl = :ttl"
		values := map[string]types.AttributeValue{":at": num(ms(at)), ":ttl": num(at.Add(s.closedTTL).Unix())}
		action := "token.expired"
		if revoke {
			update += ", revokedAt = :at, revokedBy = :by"
			values[":by"] = str(actor)
			action = "token.revoked"
		}
		ev, err := s.event(orgID, action, actor, saID, tokenID, at)
		if err != nil {
			return err
		}
		items := []types.TransactWriteItem{
			{Update: &types.Update{
				TableName:                 s.table,
				Key:                       tk,
				UpdateExpression:          aws.String(update),
				ConditionExpression:       aws.String("attribute_exists(pk) AND attribute_not_exists(closedAt)"),
				ExpressionAttributeNames:  map[string]string{"#ttl": TTLAttribute},
				ExpressionAttributeValues: values,
			}},
			{Delete: &types.Delete{TableName: s.table, Key: key(credPK(t.Hash), credSK)}},
			ev,
		}
		if slot {
			items = append(items, types.TransactWriteItem{Update: &types.Update{
				TableName:                 s.table,
				Key:                       key(pk, accountSK(saID)),
				UpdateExpression:          aws.String("SET activeTokens = activeTokens - :one"),
				ConditionExpression:       aws.String("attribute_exists(pk) AND activeTokens > :zero"),
				ExpressionAttributeValues: map[string]types.AttributeValue{":one": num(1), ":zero": num(0)},
			}})
		}
		_, err = s.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: items})
		failed := conditionFailures(err)
		switch {
		case err == nil:
			return nil
		case len(failed) == 0:
			return classify("close token", err)
		case attempt+1 == maxTransactAttempts:
			return sa.Unavailable(fmt.Errorf("close token: still contended after %d attempts: %w", maxTransactAttempts, err))
		case failed[3] && !failed[0]:
			// The token is open but its account is gone: close it all the same, so that no
			// credential outlives its account, without a slot to free.
			if _, gerr := s.GetServiceAccount(ctx, orgID, saID); sa.ErrorCode(gerr) == sa.ENOTFOUND {
				slot = false
			}
		}
		if err := backoff(ctx, attempt); err != nil {
			return sa.Unavailable(err)
		}
		// Closed or deleted concurrently: the next read tells which.
	}
}

// LookupToken reads the credential under a token hash with a strongly consistent read, so a
// revocation that has returned is seen by the very next lookup. Errors: ENOTFOUND, EUNAVAILABLE.
func (s *Store) LookupToken(ctx context.Context, hash string) (sa.Credential, error) {
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: s.table, Key: key(credPK(hash), credSK), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return sa.Credential{}, classify("lookup token", err)
	}
	if out.Item == nil {
		return sa.Credential{}, sa.Errorf(sa.ENOTFOUND, "The token does not exist.")
	}
	return decodeCredential(out.Item)
}

// TouchToken moves a credential's last use forward to at, unless it is already after
// notBefore or the credential is gone. Errors: EUNAVAILABLE.
func (s *Store) TouchToken(ctx context.Context, hash string, at, notBefore time.Time) error {
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:           s.table,
		Key:                 key(credPK(hash), credSK),
		UpdateExpression:    aws.String("SET lastUsedAt = :at"),
		ConditionExpression: aws.String("attribute_exists(pk) AND (attribute_not_exists(lastUsedAt) OR lastUsedAt <= :nb)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":at": num(ms(at)), ":nb": num(ms(notBefore)),
		},
	})
	if err != nil && !isConditionFailed(err) {
		return classify("touch token", err)
	}
	return nil
}
