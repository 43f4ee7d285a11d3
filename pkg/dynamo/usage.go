package dynamo

import (
	"context"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// rollUpCondition makes a roll-up move last use forward only, and only on an item that exists.
// The stream delivers at least once and, across shards, in no particular order, so a replayed or
// late record must change nothing; and UpdateItem on a missing key would otherwise create a
// stub holding nothing but lastUsedAt, resurrecting a deleted account or token in listings.
const rollUpCondition = "attribute_exists(pk) AND (attribute_not_exists(lastUsedAt) OR lastUsedAt < :at)"

// RollUpUsage moves the last use of a token's metadata and of its service account forward to
// at, with one conditional UpdateItem each. An item that already shows a use at or after at,
// or that no longer exists (the token or the account was deleted), is left as it is and is not
// an error, so a stream record about it can be acknowledged instead of retried forever. The
// two updates are independent: the account's last use is true even when the token's metadata
// is gone. Errors: EUNAVAILABLE (throttling, a DynamoDB fault, a timeout: worth a retry),
// EINTERNAL (a request DynamoDB rejects as malformed).
func (s *Store) RollUpUsage(ctx context.Context, orgID, saID, tokenID string, at time.Time) error {
	pk := orgPK(orgID)
	for _, target := range []struct{ what, sk string }{
		{"token", tokenSK(saID, tokenID)},
		{"service account", accountSK(saID)},
	} {
		_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName:                 s.table,
			Key:                       key(pk, target.sk),
			UpdateExpression:          aws.String("SET lastUsedAt = :at"),
			ConditionExpression:       aws.String(rollUpCondition),
			ExpressionAttributeValues: map[string]types.AttributeValue{":at": num(ms(at))},
		})
		if err != nil && !isConditionFailed(err) {
			return classify("roll up last use of "+target.what, err)
		}
	}
	return nil
}
