package authorizer_test

import (
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"

	"github.com/opentrace/service-accounts/pkg/authorizer"
	sa "github.com/opentrace/service-accounts/pkg/serviceaccount"
)

// TestRoleAllowsOnlyLastUse: the authorizer's role in template.yaml lets it read credential
// items and write nothing but a token's last use on them. Everything else it might be tricked
// into, or grow by mistake, is denied as AWS would deny it: through the dynamodb:LeadingKeys,
// dynamodb:Attributes and dynamodb:ReturnValues conditions, evaluated here.
func TestRoleAllowsOnlyLastUse(t *testing.T) {
	e := newEnv(t, authorizer.UserConfig{})
	acct, _, secret := e.issue(t, "org_a", "claude-code", sa.GenerateInput{})
	cred := credentialKey(t, secret)
	account := map[string]types.AttributeValue{
		"pk": &types.AttributeValueMemberS{Value: "ORG#org_a"},
		"sk": &types.AttributeValueMemberS{Value: "SA#" + acct.ID},
	}
	now := &types.AttributeValueMemberN{Value: "1"}
	update := func(key map[string]types.AttributeValue, expr string, rv types.ReturnValue) error {
		_, err := e.client.UpdateItem(e.ctx, &dynamodb.UpdateItemInput{
			TableName: aws.String(e.db.Table), Key: key, UpdateExpression: aws.String(expr),
			ExpressionAttributeValues: map[string]types.AttributeValue{":v": now}, ReturnValues: rv,
		})
		return err
	}
	get := func(key map[string]types.AttributeValue) error {
		_, err := e.client.GetItem(e.ctx, &dynamodb.GetItemInput{TableName: aws.String(e.db.Table), Key: key})
		return err
	}
	for _, tc := range []struct {
		name    string
		call    func() error
		allowed bool
	}{
		{"ReadCredential", func() error { return get(cred) }, true},
		{"WriteLastUse", func() error { return update(cred, "SET lastUsedAt = :v", "") }, true},
		{"ReadAccount", func() error { return get(account) }, false},
		{"WriteLastUseOnAccount", func() error { return update(account, "SET lastUsedAt = :v", "") }, false},
		{"ExtendExpiry", func() error { return update(cred, "SET expiresAt = :v", "") }, false},
		{"MoveToAnotherOrg", func() error { return update(cred, "SET lastUsedAt = :v, orgId = :v", "") }, false},
		{"ReadBackWhileWriting", func() error { return update(cred, "SET lastUsedAt = :v", types.ReturnValueAllNew) }, false},
		{"DeleteCredential", func() error {
			_, err := e.client.DeleteItem(e.ctx, &dynamodb.DeleteItemInput{TableName: aws.String(e.db.Table), Key: cred})
			return err
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			var api smithy.APIError
			denied := errors.As(err, &api) && api.ErrorCode() == "AccessDeniedException"
			switch {
			case tc.allowed && err != nil:
				t.Fatalf("denied: %v", err)
			case !tc.allowed && !denied:
				t.Fatalf("err = %v, want AccessDeniedException", err)
			}
		})
	}
}
