package dynamo

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"

	sa "github.com/opentrace/service-accounts/pkg/serviceaccount"
)

// Fact is what one record of the table's stream means to the domain; the zero Fact, nothing.
type Fact struct {
	// Use is a token's use, which the authorizer recorded on its credential.
	Use *sa.CredentialUse
	// DeletedOrg is an organisation whose tombstone was written: it was deleted at the
	// identity provider, and its tokens are to be swept.
	DeletedOrg string
}

// ReadRecord reads a record of the table's stream (NEW_AND_OLD_IMAGES). A record that carries
// no fact is the zero Fact: not a credential or a tombstone, a removal, a credential change
// that is not a new use (the roll-up's own writes among them). A record that should carry a
// fact but cannot be read is an error, which no retry can fix.
func ReadRecord(rec events.DynamoDBEventRecord) (Fact, error) {
	if rec.EventName != string(events.DynamoDBOperationTypeInsert) && rec.EventName != string(events.DynamoDBOperationTypeModify) {
		return Fact{}, nil
	}
	pk, _ := stringAttr(rec.Change.Keys, "pk")
	if org, ok := strings.CutPrefix(pk, tombstonePrefix); ok {
		if rec.EventName != string(events.DynamoDBOperationTypeInsert) {
			return Fact{}, nil // the sweep's own record of its end
		}
		if !sa.ValidOrgID(org) {
			return Fact{}, errors.New("tombstone of a malformed org id")
		}
		return Fact{DeletedOrg: org}, nil
	}
	img := rec.Change.NewImage
	if typ, _ := stringAttr(img, "type"); !strings.HasPrefix(pk, credPrefix) && typ != itemCred {
		return Fact{}, nil
	}
	raw, ok := img[attrLastUsedAt]
	if !ok {
		return Fact{}, nil // a credential written or changed without a use, e.g. at generation
	}
	at, err := millis(raw)
	if err != nil {
		return Fact{}, err
	}
	if old, ok := rec.Change.OldImage[attrLastUsedAt]; ok {
		if prev, err := millis(old); err == nil && prev.Equal(at) {
			return Fact{}, nil // another attribute of the credential changed
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
	use := sa.CredentialUse{OrgID: id("orgId", sa.ValidOrgID), ServiceAccountID: id("saId", sa.ValidServiceAccountID),
		TokenID: id("tokenId", sa.ValidTokenID), At: at}
	if len(errs) > 0 {
		return Fact{}, errors.Join(errs...)
	}
	return Fact{Use: &use}, nil
}

const attrLastUsedAt = "lastUsedAt"

// stringAttr returns a string attribute of an image, checking its type first: the event
// types' accessors panic, or for String render the value's internals, on another type.
func stringAttr(img map[string]events.DynamoDBAttributeValue, name string) (string, bool) {
	v, ok := img[name]
	if !ok || v.DataType() != events.DataTypeString {
		return "", false
	}
	return v.String(), true
}

// millis reads a time stored as epoch milliseconds.
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
