// Package dynamo is the DynamoDB adapter of the domain: the single-table key layout, the
// conditional transactions that keep the limits and revocation guarantees, and signed
// pagination cursors. It knows nothing of HTTP or Lambda.
package dynamo

import (
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// TTLAttribute is the attribute DynamoDB's time to live reads (epoch seconds). Closed tokens,
// expired credentials and audit-trail events carry it so the table prunes itself.
const TTLAttribute = "ttl"

// TableDefinition is the one definition of the table: tests and the local stack create it from
// here, and a test keeps template.yaml's AWS::DynamoDB::Table identical to it.
func TableDefinition(name string) *dynamodb.CreateTableInput {
	return &dynamodb.CreateTableInput{
		TableName:   aws.String(name),
		BillingMode: types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: aws.String("pk"), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String("sk"), AttributeType: types.ScalarAttributeTypeS},
		},
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String("pk"), KeyType: types.KeyTypeHash},
			{AttributeName: aws.String("sk"), KeyType: types.KeyTypeRange},
		},
		StreamSpecification: &types.StreamSpecification{
			StreamEnabled:  aws.Bool(true),
			StreamViewType: types.StreamViewTypeNewAndOldImages,
		},
		SSESpecification: &types.SSESpecification{Enabled: aws.Bool(true)},
	}
}
