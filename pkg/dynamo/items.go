package dynamo

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/opentrace/service-accounts/pkg/serviceaccount"
)

// Key layout. Everything an org owns shares its partition, so one Query serves a listing and no
// key of one org can be formed from another's; credentials live in their own partitions, keyed
// by the token's HMAC, so the authorizer needs exactly one GetItem.
//
//	ORG#<org>            ORG                        org counters (accounts)
//	ORG#<org>            SA#<saId>                  service account
//	ORG#<org>            SANAME#<folded name>       name guard: one name per org, ignoring case
//	ORG#<org>            TOKEN#<saId>#<tokenId>     token metadata
//	ORG#<org>            EVENT#<time>#<id>          audit trail (expires through TTL)
//	TOKENHASH#<hmac>     TOKENHASH                  credential; deleted on revoke and delete
//	TOMBSTONE#<org>      TOMBSTONE                  the org was deleted (org.go)
//
// A change to every token of an account (its delete) is recorded on the account's item, as its
// lock: see change.go.
const (
	orgPrefix     = "ORG#"
	orgSK         = "ORG"
	saPrefix      = "SA#"
	namePrefix    = "SANAME#"
	tokenPrefix   = "TOKEN#"
	eventPrefix   = "EVENT#"
	credPrefix    = "TOKENHASH#"
	credSK        = "TOKENHASH"
	itemAccount   = "service_account"
	itemToken     = "token"
	itemCred      = "credential"
	itemEvent     = "event"
	itemNameGuard = "name_guard"
)

func orgPK(org string) string             { return orgPrefix + org }
func accountSK(saID string) string        { return saPrefix + saID }
func nameSK(key string) string            { return namePrefix + key }
func tokenSK(saID, tokenID string) string { return tokenPrefix + saID + "#" + tokenID }
func tokensOf(saID string) string         { return tokenPrefix + saID + "#" }
func credPK(hash string) string           { return credPrefix + hash }

// CredentialKey is the key of the credential stored under a token hash: the one item the
// authorizer reads.
func CredentialKey(hash string) map[string]types.AttributeValue { return key(credPK(hash), credSK) }
func eventSK(at time.Time, id string) string {
	return eventPrefix + at.UTC().Format(time.RFC3339Nano) + "#" + id
}

// Times are stored as epoch milliseconds: numbers compare correctly in conditions, which
// "only move forward" updates of last use depend on.
func ms(t time.Time) int64 { return t.UnixMilli() }

func msPtr(t *time.Time) *int64 {
	if t == nil {
		return nil
	}
	v := t.UnixMilli()
	return &v
}

func fromMS(v int64) time.Time { return time.UnixMilli(v).UTC() }

func fromMSPtr(v *int64) *time.Time {
	if v == nil {
		return nil
	}
	t := fromMS(*v)
	return &t
}

type accountItem struct {
	PK           string `dynamodbav:"pk"`
	SK           string `dynamodbav:"sk"`
	Type         string `dynamodbav:"type"`
	OrgID        string `dynamodbav:"orgId"`
	ID           string `dynamodbav:"saId"`
	Name         string `dynamodbav:"name"`
	NameKey      string `dynamodbav:"nameKey"`
	Description  string `dynamodbav:"description"`
	CreatedAt    int64  `dynamodbav:"createdAt"`
	CreatedBy    string `dynamodbav:"createdBy"`
	ActiveTokens int    `dynamodbav:"activeTokens"` // open tokens: neither revoked nor retired
	// Expiries maps each open token that expires to its expiry (epoch ms), so that a listing
	// counts the tokens still active without reading them: an expired token stays open until
	// it is retired. Kept in the transactions that open and close tokens.
	Expiries   map[string]int64 `dynamodbav:"expiries"`
	LastUsedAt *int64           `dynamodbav:"lastUsedAt,omitempty"`

	// The account's lock: the change to all its tokens in progress, if any (change.go).
	ChangeID    string `dynamodbav:"changeId,omitempty"`
	ChangeOp    string `dynamodbav:"changeOp,omitempty"`
	ChangeUntil int64  `dynamodbav:"changeUntil,omitempty"` // the holder's lease, epoch ms
}

// nameGuardItem makes a name unique in its org: it exists while an account holds the name.
type nameGuardItem struct {
	PK   string `dynamodbav:"pk"`
	SK   string `dynamodbav:"sk"`
	Type string `dynamodbav:"type"`
	SAID string `dynamodbav:"saId"`
}

// domain is the account as it is at now: its active tokens are its open ones less those that
// have expired, as a recount of its tokens would find.
func (it accountItem) domain(now time.Time) serviceaccount.ServiceAccount {
	active := it.ActiveTokens
	for _, exp := range it.Expiries {
		if exp <= ms(now) {
			active--
		}
	}
	return serviceaccount.ServiceAccount{
		ID: it.ID, OrgID: it.OrgID, Name: it.Name, Description: it.Description,
		CreatedAt: fromMS(it.CreatedAt), CreatedBy: it.CreatedBy,
		ActiveTokens: max(active, 0), LastUsedAt: fromMSPtr(it.LastUsedAt),
	}
}

type tokenItem struct {
	PK            string `dynamodbav:"pk"`
	SK            string `dynamodbav:"sk"`
	Type          string `dynamodbav:"type"`
	OrgID         string `dynamodbav:"orgId"`
	SAID          string `dynamodbav:"saId"`
	ID            string `dynamodbav:"tokenId"`
	Name          string `dynamodbav:"name"`
	Hint          string `dynamodbav:"hint"`
	CreatedAt     int64  `dynamodbav:"createdAt"`
	CreatedBy     string `dynamodbav:"createdBy"`
	ExpiresAt     *int64 `dynamodbav:"expiresAt,omitempty"`
	LastUsedAt    *int64 `dynamodbav:"lastUsedAt,omitempty"`
	RevokedAt     *int64 `dynamodbav:"revokedAt,omitempty"`
	RevokedBy     string `dynamodbav:"revokedBy,omitempty"`
	ClosedAt      *int64 `dynamodbav:"closedAt,omitempty"`
	Hash          string `dynamodbav:"hash"`
	PepperVersion string `dynamodbav:"pepperVersion"`
	TTL           *int64 `dynamodbav:"ttl,omitempty"`
}

func newTokenItem(t serviceaccount.Token) tokenItem {
	return tokenItem{
		PK: orgPK(t.OrgID), SK: tokenSK(t.ServiceAccountID, t.ID), Type: itemToken,
		OrgID: t.OrgID, SAID: t.ServiceAccountID, ID: t.ID, Name: t.Name, Hint: t.Hint,
		CreatedAt: ms(t.CreatedAt), CreatedBy: t.CreatedBy, ExpiresAt: msPtr(t.ExpiresAt),
		Hash: t.Hash, PepperVersion: t.PepperVersion,
	}
}

func (it tokenItem) domain() serviceaccount.Token {
	return serviceaccount.Token{
		ID: it.ID, OrgID: it.OrgID, ServiceAccountID: it.SAID, Name: it.Name, Hint: it.Hint,
		CreatedAt: fromMS(it.CreatedAt), CreatedBy: it.CreatedBy,
		ExpiresAt: fromMSPtr(it.ExpiresAt), LastUsedAt: fromMSPtr(it.LastUsedAt),
		RevokedAt: fromMSPtr(it.RevokedAt), ClosedAt: fromMSPtr(it.ClosedAt),
		Hash: it.Hash, PepperVersion: it.PepperVersion,
	}
}

type credentialItem struct {
	PK         string `dynamodbav:"pk"`
	SK         string `dynamodbav:"sk"`
	Type       string `dynamodbav:"type"`
	OrgID      string `dynamodbav:"orgId"`
	SAID       string `dynamodbav:"saId"`
	SAName     string `dynamodbav:"saName"`
	TokenID    string `dynamodbav:"tokenId"`
	TokenName  string `dynamodbav:"tokenName"`
	ExpiresAt  *int64 `dynamodbav:"expiresAt,omitempty"`
	LastUsedAt *int64 `dynamodbav:"lastUsedAt,omitempty"`
	TTL        *int64 `dynamodbav:"ttl,omitempty"`
}

// decodeCredential reads a credential item by hand: it is on the authorizer's path of every
// request, where the reflection of attributevalue.UnmarshalMap costs more than the rest of the
// authorizer's own work.
func decodeCredential(item map[string]types.AttributeValue) (serviceaccount.Credential, error) {
	var c serviceaccount.Credential
	var err error
	str := func(name string) string {
		v, ok := item[name].(*types.AttributeValueMemberS)
		if !ok {
			err = errors.Join(err, fmt.Errorf("credential attribute %s is not a string", name))
			return ""
		}
		return v.Value
	}
	tm := func(name string) *time.Time {
		raw, present := item[name]
		if !present {
			return nil
		}
		v, ok := raw.(*types.AttributeValueMemberN)
		var n int64
		if ok {
			n, ok = parseInt(v.Value)
		}
		if !ok {
			err = errors.Join(err, fmt.Errorf("credential attribute %s is not a number", name))
			return nil
		}
		t := fromMS(n)
		return &t
	}
	c.OrgID, c.ServiceAccountID, c.ServiceAccountName = str("orgId"), str("saId"), str("saName")
	c.TokenID, c.TokenName = str("tokenId"), str("tokenName")
	c.ExpiresAt, c.LastUsedAt = tm("expiresAt"), tm("lastUsedAt")
	if err != nil {
		return serviceaccount.Credential{}, serviceaccount.Internal(err)
	}
	return c, nil
}

// eventItem is one entry of the audit trail: who did what, kept for a bounded time.
type eventItem struct {
	PK      string         `dynamodbav:"pk"`
	SK      string         `dynamodbav:"sk"`
	Type    string         `dynamodbav:"type"`
	Action  string         `dynamodbav:"action"`
	Actor   string         `dynamodbav:"actor"`
	SAID    string         `dynamodbav:"saId"`
	TokenID string         `dynamodbav:"tokenId,omitempty"`
	Detail  map[string]any `dynamodbav:"detail,omitempty"`
	At      int64          `dynamodbav:"at"`
	TTL     int64          `dynamodbav:"ttl"`
}

func parseInt(s string) (int64, bool) {
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}
