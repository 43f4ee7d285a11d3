package authorizer_test

import (
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/opentrace/service-accounts/pkg/authorizer"
	sa "github.com/opentrace/service-accounts/pkg/serviceaccount"
)

// BenchmarkAuthorizer measures a whole authorizer invocation for a service-account token
// against minidyn, beside the one consistent GetItem of the same item that it cannot avoid,
// through the same client, alternating the two in one loop. The ratio metric is the
// authorizer's cost over that read; the goal is at most 1.15.
func BenchmarkAuthorizer(b *testing.B) {
	e := newEnv(b, authorizer.UserConfig{})
	_, _, secret := e.issue(b, "org_a", "claude-code", sa.GenerateInput{})
	req := events.APIGatewayCustomAuthorizerRequest{
		Type: "TOKEN", AuthorizationToken: "Bearer " + secret, MethodArn: arn("GET", "/v1/whoami"),
	}
	// Within one last-used interval, as a busy token is: no write per request.
	if _, err := e.auth.Handle(e.ctx, req); err != nil {
		b.Fatal(err)
	}
	in := &dynamodb.GetItemInput{TableName: aws.String(e.db.Table), Key: credentialKey(b, secret), ConsistentRead: aws.Bool(true)}
	// Interleaved, so both see the same machine: a loaded core or a GC cycle falls on both.
	var authNS, getNS time.Duration
	b.ReportAllocs()
	for b.Loop() {
		t0 := time.Now()
		if _, err := e.auth.Handle(e.ctx, req); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		out, err := e.client.GetItem(e.ctx, in)
		if err != nil || out.Item == nil {
			b.Fatal(err)
		}
		authNS += t1.Sub(t0)
		getNS += time.Since(t1)
	}
	b.ReportMetric(float64(authNS.Nanoseconds())/float64(b.N), "authorizer-ns/op")
	b.ReportMetric(float64(getNS.Nanoseconds())/float64(b.N), "getitem-ns/op")
	b.ReportMetric(float64(authNS)/float64(getNS), "ratio")
}
