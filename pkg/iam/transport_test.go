package iam_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/smithy-go"

	"github.com/opentrace/service-accounts/pkg/iam"
)

// okService answers every call with an empty success and counts what reached it.
type okService struct {
	mu    sync.Mutex
	calls []string
}

func (s *okService) RoundTrip(r *http.Request) (*http.Response, error) {
	s.mu.Lock()
	s.calls = append(s.calls, r.Header.Get("X-Amz-Target"))
	s.mu.Unlock()
	return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/x-amz-json-1.0"}},
		Body: io.NopCloser(strings.NewReader(`{}`)), Request: r}, nil
}

var env = &iam.Environment{
	Region: "us-east-1", Account: "123456789012",
	PartitionKeys: map[string]string{"t": "pk"},
	Secrets:       map[string]string{"pepper": "arn:aws:secretsmanager:us-east-1:123456789012:secret:pepper-AbCdEf"},
}

func clients(t *testing.T, r *iam.Role, logs io.Writer) (*dynamodb.Client, *secretsmanager.Client, *okService) {
	t.Helper()
	svc := &okService{}
	hc := &http.Client{Transport: &iam.Transport{Role: r, Env: env, Next: svc, Log: slog.New(slog.NewJSONHandler(logs, nil))}}
	creds := credentials.NewStaticCredentialsProvider("k", "s", "")
	return dynamodb.New(dynamodb.Options{Region: "us-east-1", BaseEndpoint: aws.String("http://aws.local"), Credentials: creds, HTTPClient: hc, RetryMaxAttempts: 1}),
		secretsmanager.New(secretsmanager.Options{Region: "us-east-1", BaseEndpoint: aws.String("http://aws.local"), Credentials: creds, HTTPClient: hc, RetryMaxAttempts: 1}),
		svc
}

func s(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }

// TestTransactionItemsAreAuthorizedOneByOne: a ConditionCheck in TransactWriteItems needs
// dynamodb:ConditionCheckItem, as AWS authorizes each item of a transaction as its own
// action; without it the SDK gets AccessDeniedException naming the action and the call never
// reaches DynamoDB, and the log names the function, the action and the resource.
func TestTransactionItemsAreAuthorizedOneByOne(t *testing.T) {
	ctx := context.Background()
	in := &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		{Put: &types.Put{TableName: aws.String("t"), Item: map[string]types.AttributeValue{"pk": s("a"), "sk": s("b")}}},
		{ConditionCheck: &types.ConditionCheck{TableName: aws.String("t"), Key: map[string]types.AttributeValue{"pk": s("a"), "sk": s("c")},
			ConditionExpression: aws.String("attribute_not_exists(pk)")}},
	}}
	without := role(t, `{"Statement":[{"Effect":"Allow","Action":["dynamodb:PutItem","dynamodb:UpdateItem"],"Resource":"`+table+`"}]}`)
	var logs bytes.Buffer
	db, _, svc := clients(t, without, &logs)
	_, err := db.TransactWriteItems(ctx, in)
	apiErr, ok := errors.AsType[smithy.APIError](err)
	if !ok || apiErr.ErrorCode() != "AccessDeniedException" {
		t.Fatalf("err = %v, want AccessDeniedException", err)
	}
	want := "User: arn:aws:sts::123456789012:assumed-role/FnRole/Fn is not authorized to perform: dynamodb:ConditionCheckItem on resource: " +
		table + " because no identity-based policy allows the dynamodb:ConditionCheckItem action"
	if apiErr.ErrorMessage() != want {
		t.Fatalf("message %q\nwant    %q", apiErr.ErrorMessage(), want)
	}
	if len(svc.calls) != 0 {
		t.Fatalf("a denied call reached the service: %v", svc.calls)
	}
	for _, frag := range []string{`"function":"Fn"`, `"action":"dynamodb:ConditionCheckItem"`, `"resource":"` + table + `"`} {
		if !strings.Contains(logs.String(), frag) {
			t.Errorf("log lacks %s: %s", frag, logs.String())
		}
	}
	with := role(t, `{"Statement":[{"Effect":"Allow","Action":["dynamodb:PutItem","dynamodb:ConditionCheckItem"],"Resource":"`+table+`"}]}`)
	db, _, svc = clients(t, with, io.Discard)
	if _, err := db.TransactWriteItems(ctx, in); err != nil || len(svc.calls) != 1 {
		t.Fatalf("allowed transaction: %v, %d calls", err, len(svc.calls))
	}
}

// TestConditionKeys: dynamodb:LeadingKeys and dynamodb:Attributes are taken from the request
// as DynamoDB fills them, so a policy limited to the last-used write on credential items
// allows exactly that write.
func TestConditionKeys(t *testing.T) {
	ctx := context.Background()
	db, _, _ := clients(t, role(t, leadingKeys), io.Discard)
	touch := func(pk, attr string) error {
		_, err := db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName: aws.String("t"), Key: map[string]types.AttributeValue{"pk": s(pk), "sk": s("TOKENHASH")},
			UpdateExpression:          aws.String("SET #a = :at"),
			ConditionExpression:       aws.String("attribute_exists(pk) AND (attribute_not_exists(#a) OR #a <= :nb)"),
			ExpressionAttributeNames:  map[string]string{"#a": attr},
			ExpressionAttributeValues: map[string]types.AttributeValue{":at": &types.AttributeValueMemberN{Value: "1"}, ":nb": &types.AttributeValueMemberN{Value: "0"}},
		})
		return err
	}
	for _, tc := range []struct {
		name, pk, attr string
		allowed        bool
	}{
		{"LastUseOfACredential", "TOKENHASH#ab", "lastUsedAt", true},
		{"AnotherPartition", "ORG#acme", "lastUsedAt", false},
		{"AnotherAttribute", "TOKENHASH#ab", "orgId", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := touch(tc.pk, tc.attr); (err == nil) != tc.allowed {
				t.Fatalf("err = %v, allowed = %v", err, tc.allowed)
			}
		})
	}
}

// TestSecretNamedAnyWay: Secrets Manager authorizes the secret's full ARN whether the caller
// names it by name or by ARN; an unknown secret is refused.
func TestSecretNamedAnyWay(t *testing.T) {
	ctx := context.Background()
	r := role(t, `{"Statement":[{"Effect":"Allow","Action":"secretsmanager:GetSecretValue","Resource":"`+env.Secrets["pepper"]+`"}]}`)
	_, sm, _ := clients(t, r, io.Discard)
	for id, allowed := range map[string]bool{"pepper": true, env.Secrets["pepper"]: true, "other": false} {
		_, err := sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(id)})
		if allowed && err != nil && strings.Contains(err.Error(), "AccessDenied") || !allowed && (err == nil || !strings.Contains(err.Error(), "AccessDeniedException")) {
			t.Errorf("%s: err = %v, allowed = %v", id, err, allowed)
		}
	}
}

// TestUnmodelledCallsAreRefused: a call the check does not know how to authorize never
// passes unchecked.
func TestUnmodelledCallsAreRefused(t *testing.T) {
	all := role(t, `{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}`)
	db, _, svc := clients(t, all, io.Discard)
	_, err := db.ExecuteStatement(context.Background(), &dynamodb.ExecuteStatementInput{Statement: aws.String("SELECT * FROM t")})
	if err == nil || !strings.Contains(err.Error(), "does not model") || len(svc.calls) != 0 {
		t.Fatalf("err = %v, calls %v", err, svc.calls)
	}
}
