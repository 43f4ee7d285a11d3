package template

import (
	"fmt"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// tableProperties are the AWS::DynamoDB::Table properties this package understands. Any other
// property is reported, so a table feature added to the template is never silently missing
// from the tables built from it.
var tableProperties = []string{
	"BillingMode", "AttributeDefinitions", "KeySchema", "StreamSpecification", "SSESpecification",
	"PointInTimeRecoverySpecification", "TimeToLiveSpecification", "DeletionProtectionEnabled",
}

// Table is a table resource's definition, as DynamoDB's CreateTable takes it, with the
// attribute its time to live reads (empty if none).
type Table struct {
	Input        *dynamodb.CreateTableInput
	TTLAttribute string
}

// Table returns the definition of the AWS::DynamoDB::Table with the given logical id, named
// name. It fails on properties it does not understand.
func (t *Template) Table(logicalID, name string) (Table, error) {
	r, ok := t.Resources[logicalID]
	if !ok || r.Type != "AWS::DynamoDB::Table" {
		return Table{}, fmt.Errorf("template: no AWS::DynamoDB::Table %q", logicalID)
	}
	p := r.Properties
	for k := range p {
		if !slices.Contains(tableProperties, k) {
			return Table{}, fmt.Errorf("template: table %s: property %s is not supported", logicalID, k)
		}
	}
	in := &dynamodb.CreateTableInput{TableName: aws.String(name), BillingMode: types.BillingMode(str(p["BillingMode"]))}
	for _, raw := range list(p["AttributeDefinitions"]) {
		a := mapping(raw)
		in.AttributeDefinitions = append(in.AttributeDefinitions, types.AttributeDefinition{
			AttributeName: aws.String(str(a["AttributeName"])), AttributeType: types.ScalarAttributeType(str(a["AttributeType"])),
		})
	}
	for _, raw := range list(p["KeySchema"]) {
		k := mapping(raw)
		in.KeySchema = append(in.KeySchema, types.KeySchemaElement{
			AttributeName: aws.String(str(k["AttributeName"])), KeyType: types.KeyType(str(k["KeyType"])),
		})
	}
	if s := mapping(p["StreamSpecification"]); s != nil {
		in.StreamSpecification = &types.StreamSpecification{
			StreamEnabled: aws.Bool(true), StreamViewType: types.StreamViewType(str(s["StreamViewType"])),
		}
	}
	if s := mapping(p["SSESpecification"]); s != nil {
		enabled, _ := s["SSEEnabled"].(bool)
		in.SSESpecification = &types.SSESpecification{Enabled: aws.Bool(enabled)}
	}
	out := Table{Input: in}
	if ttl := mapping(p["TimeToLiveSpecification"]); ttl != nil {
		if enabled, _ := ttl["Enabled"].(bool); enabled {
			out.TTLAttribute = str(ttl["AttributeName"])
		}
	}
	return out, nil
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func list(v any) []any {
	l, _ := v.([]any)
	return l
}

func mapping(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}
