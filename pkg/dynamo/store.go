package dynamo

import (
	"context"
	"errors"
	"fmt"
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
	now       func() time.Time // renews the leases of account changes
	eventTTL  time.Duration
	closedTTL time.Duration
}

var _ sa.Store = (*Store)(nil)

// Option adjusts a Store.
type Option func(*Store)

// WithClock sets the clock that times the leases of account changes (default time.Now); the
// service that calls the store should share it.
func WithClock(now func() time.Time) Option { return func(s *Store) { s.now = now } }

// NewUnsigned returns a Store that holds no cursor key, for functions that never list
// accounts (the stream consumer, the audit), so that they need no access to the secret the key
// derives from. Listing through it fails with EINTERNAL.
func NewUnsigned(db API, table string, opts ...Option) *Store {
	s := &Store{db: db, table: aws.String(table), now: time.Now, eventTTL: DefaultEventRetention, closedTTL: DefaultClosedTokenRetention}
	for _, o := range opts {
		o(s)
	}
	return s
}

// New returns a Store on table. cursorKey (at least 32 bytes) signs pagination cursors.
func New(db API, table string, cursorKey []byte, opts ...Option) (*Store, error) {
	if len(cursorKey) < 32 {
		return nil, errors.New("dynamo: cursor key must be at least 32 bytes")
	}
	s := NewUnsigned(db, table, opts...)
	s.cursors = cursorSigner{key: cursorKey}
	return s, nil
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

func marshalItem(item any) (map[string]types.AttributeValue, error) {
	av, err := attributevalue.MarshalMap(item)
	if err != nil {
		return nil, sa.Internal(fmt.Errorf("marshal item: %w", err))
	}
	return av, nil
}

// event is the Put of one entry of the audit trail; detail holds counts and the like.
func (s *Store) event(org, action, actor, saID, tokenID string, at time.Time, detail map[string]any) (types.TransactWriteItem, error) {
	return s.put(eventItem{
		PK: orgPK(org), SK: eventSK(at, ulid.Make().String()), Type: itemEvent,
		Action: action, Actor: actor, SAID: saID, TokenID: tokenID, Detail: detail,
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
		CreatedAt: ms(acct.CreatedAt), CreatedBy: acct.CreatedBy, Expiries: map[string]int64{},
	}, "attribute_not_exists(pk)")
	if err != nil {
		return err
	}
	guard, err := s.put(nameGuardItem{PK: pk, SK: nameSK(nameKey), Type: itemNameGuard, SAID: acct.ID}, "attribute_not_exists(pk)")
	if err != nil {
		return err
	}
	ev, err := s.event(acct.OrgID, "service_account.created", acct.CreatedBy, acct.ID, "", acct.CreatedAt, nil)
	if err != nil {
		return err
	}
	var t txn
	t.add("account", item)
	t.add("name", guard)
	t.add("quota", s.update(key(pk, orgSK), "SET accounts = if_not_exists(accounts, :zero) + :one",
		"attribute_not_exists(accounts) OR accounts < :max",
		map[string]types.AttributeValue{":zero": num(0), ":one": num(1), ":max": num(int64(maxPerOrg))}))
	t.add("event", ev)
	t.add("org", s.orgAlive(acct.OrgID))
	failed, err := s.write(ctx, &t)
	switch {
	case err == nil:
		return nil
	case failed["name"]:
		return sa.Errorf(sa.ECONFLICT, "A service account named %q already exists in this organisation.", acct.Name)
	case failed["quota"]:
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
	items, err := decodeAll[accountItem](out.Items, "list service accounts")
	if err != nil {
		return sa.ServiceAccountPage{}, err
	}
	page := sa.ServiceAccountPage{Items: make([]sa.ServiceAccount, 0, min(len(items), limit))}
	for i, it := range items {
		if i == limit {
			page.NextCursor = s.cursors.seal(orgID, items[i-1].ID)
			break
		}
		page.Items = append(page.Items, it.domain(s.now()))
	}
	return page, nil
}

// GetServiceAccount reads one account. Errors: ENOTFOUND, EUNAVAILABLE.
func (s *Store) GetServiceAccount(ctx context.Context, orgID, saID string) (sa.ServiceAccount, error) {
	it, err := s.account(ctx, orgID, saID)
	if err != nil {
		return sa.ServiceAccount{}, err
	}
	return it.domain(s.now()), nil
}

// account reads an account's item with a strongly consistent read. Errors: ENOTFOUND,
// EUNAVAILABLE.
func (s *Store) account(ctx context.Context, orgID, saID string) (accountItem, error) {
	var it accountItem
	if err := s.get(ctx, key(orgPK(orgID), accountSK(saID)), &it); err != nil {
		return accountItem{}, notFoundAs(err, "service account")
	}
	return it, nil
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
		return sa.NotFound(what)
	}
	return err
}

func (s *Store) queryTokens(ctx context.Context, orgID, saID string) ([]tokenItem, error) {
	return queryAll[tokenItem](ctx, s, "query tokens", inPartition(orgPK(orgID), tokensOf(saID)))
}

// CreateToken writes a token's metadata and credential and takes one of its account's slots, in
// one transaction conditioned on the account existing with fewer than maxActive open tokens and
// no account change in progress, so that a token generated while its account is being deleted
// can never outlive the delete. A change whose holder died is finished first. Errors: ENOTFOUND
// (no account, or one being deleted), ECONFLICT (the cap is reached), EUNAVAILABLE.
func (s *Store) CreateToken(ctx context.Context, t sa.Token, cred sa.Credential, maxActive int) error {
	pk := orgPK(t.OrgID)
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
	ev, err := s.event(t.OrgID, "token.created", t.CreatedBy, t.ServiceAccountID, t.ID, t.CreatedAt, nil)
	if err != nil {
		return err
	}
	var tx txn
	slot := &types.Update{
		TableName: s.table, Key: key(pk, accountSK(t.ServiceAccountID)),
		UpdateExpression:          aws.String("SET activeTokens = activeTokens + :one"),
		ConditionExpression:       aws.String("attribute_exists(pk) AND activeTokens < :max AND attribute_not_exists(" + attrChangeID + ")"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":one": num(1), ":max": num(int64(maxActive))},
	}
	if cred.ExpiresAt != nil {
		slot.UpdateExpression = aws.String("SET activeTokens = activeTokens + :one, expiries.#token = :exp")
		slot.ExpressionAttributeNames = map[string]string{"#token": t.ID}
		slot.ExpressionAttributeValues[":exp"] = num(ms(*cred.ExpiresAt))
	}
	tx.add("slot", types.TransactWriteItem{Update: slot})
	tx.add("metadata", meta)
	tx.add("credential", credential)
	tx.add("event", ev)
	tx.add("org", s.orgAlive(t.OrgID))
	return contended(ctx, "create token", func() (bool, error) {
		failed, err := s.write(ctx, &tx)
		if !failed["slot"] {
			return false, classify("create token", err)
		}
		// The account is gone, full, or being changed.
		acct, err := s.account(ctx, t.OrgID, t.ServiceAccountID)
		switch {
		case err != nil:
			return false, err
		case acct.ChangeID == "":
			return false, sa.Errorf(sa.ECONFLICT, "The service account already has the maximum of %d active tokens; revoke one first.", maxActive)
		case acct.ChangeOp == changeDelete && !s.expired(acct):
			return false, sa.Errorf(sa.ENOTFOUND, "The service account is being deleted.")
		case !s.expired(acct):
			return true, sa.Unavailable(errors.New("create token: the account is being changed"))
		}
		// The change's holder died: finish what it recorded, then try again.
		if err := s.finish(ctx, acct); err != nil {
			return false, err
		}
		return true, nil
	})
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

// RevokeToken revokes a token (see closeToken). Errors: ENOTFOUND, EFORBIDDEN (the org was
// deleted), EUNAVAILABLE.
func (s *Store) RevokeToken(ctx context.Context, orgID, saID, tokenID, actor string, at time.Time) error {
	return s.closeToken(ctx, orgID, saID, tokenID, actor, at, true)
}

// RetireToken closes an expired token (see closeToken). Errors: ENOTFOUND, EFORBIDDEN,
// EUNAVAILABLE.
func (s *Store) RetireToken(ctx context.Context, orgID, saID, tokenID, actor string, at time.Time) error {
	return s.closeToken(ctx, orgID, saID, tokenID, actor, at, false)
}

// closeToken deletes a token's credential, marks its metadata closed (and revoked, when revoke)
// and frees its slot, in one transaction conditioned on the token still being open. Closing a
// closed token changes nothing, except that revoking a token retired after expiry records the
// revocation.
func (s *Store) closeToken(ctx context.Context, orgID, saID, tokenID, actor string, at time.Time, revoke bool) error {
	pk := orgPK(orgID)
	tk := key(pk, tokenSK(saID, tokenID))
	slot := true // whether the account still holds a slot for the token
	return contended(ctx, "close token", func() (bool, error) {
		var t tokenItem
		if err := s.get(ctx, tk, &t); err != nil {
			return false, notFoundAs(err, "token")
		}
		if t.ClosedAt != nil {
			if !revoke || t.RevokedAt != nil {
				// Nothing to write; but a revoke in a deleted org is refused as any write there.
				if _, err := s.GetTombstone(ctx, orgID); err == nil {
					return false, errOrgDeleted
				} else if sa.ErrorCode(err) != sa.ENOTFOUND {
					return false, err
				}
				return false, nil
			}
			var tx txn
			tx.add("token", s.update(tk, "SET revokedAt = :at, revokedBy = :by", "attribute_exists(pk) AND attribute_not_exists(revokedAt)",
				map[string]types.AttributeValue{":at": num(ms(at)), ":by": str(actor)}))
			tx.add("org", s.orgAlive(orgID))
			if failed, err := s.write(ctx, &tx); err != nil && !failed["token"] {
				return false, classify("revoke token", err)
			}
			return false, nil
		}
		update := "SET closedAt = :at, #ttl = :ttl"
		values := map[string]types.AttributeValue{":at": num(ms(at)), ":ttl": num(at.Add(s.closedTTL).Unix())}
		action := "token.expired"
		if revoke {
			update += ", revokedAt = :at, revokedBy = :by"
			values[":by"] = str(actor)
			action = "token.revoked"
		}
		ev, err := s.event(orgID, action, actor, saID, tokenID, at, nil)
		if err != nil {
			return false, err
		}
		var tx txn
		tx.add("token", types.TransactWriteItem{Update: &types.Update{
			TableName:                 s.table,
			Key:                       tk,
			UpdateExpression:          aws.String(update),
			ConditionExpression:       aws.String("attribute_exists(pk) AND attribute_not_exists(closedAt)"),
			ExpressionAttributeNames:  map[string]string{"#ttl": TTLAttribute},
			ExpressionAttributeValues: values,
		}})
		tx.add("credential", s.del(key(credPK(t.Hash), credSK)))
		tx.add("event", ev)
		tx.add("org", s.orgAlive(orgID))
		if slot {
			tx.add("slot", types.TransactWriteItem{Update: &types.Update{
				TableName: s.table, Key: key(pk, accountSK(saID)),
				UpdateExpression:          aws.String("SET activeTokens = activeTokens - :one REMOVE expiries.#token"),
				ConditionExpression:       aws.String("attribute_exists(pk) AND activeTokens > :zero"),
				ExpressionAttributeNames:  map[string]string{"#token": tokenID},
				ExpressionAttributeValues: map[string]types.AttributeValue{":one": num(1), ":zero": num(0)},
			}})
		}
		failed, err := s.write(ctx, &tx)
		if failed == nil {
			return false, classify("close token", err)
		}
		if failed["slot"] && !failed["token"] {
			// The token is open but its account is gone: close it all the same, so that no
			// credential outlives its account, without a slot to free.
			if _, gerr := s.account(ctx, orgID, saID); sa.ErrorCode(gerr) == sa.ENOTFOUND {
				slot = false
			}
		}
		// Closed or deleted concurrently: the next read tells which.
		return true, err
	})
}

// LookupToken reads the credential under a token hash with a strongly consistent read, so a
// revocation that has returned is seen by the very next lookup. Errors: ENOTFOUND, EUNAVAILABLE.
func (s *Store) LookupToken(ctx context.Context, hash string) (sa.Credential, error) {
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: s.table, Key: key(credPK(hash), credSK), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return sa.Credential{}, classify("lookup token", err)
	}
	if out.Item == nil {
		return sa.Credential{}, sa.NotFound("token")
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
