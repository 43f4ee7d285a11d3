package identity_test

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	svix "github.com/svix/svix-webhooks/go"

	"github.com/opentrace/service-accounts/pkg/dynamo"
	"github.com/opentrace/service-accounts/pkg/dynamo/dynamotest"
	"github.com/opentrace/service-accounts/pkg/identity"
	sa "github.com/opentrace/service-accounts/pkg/serviceaccount"
	"github.com/opentrace/service-accounts/pkg/testworld"
)

// The endpoint's signing secret, as the provider shows it, and another one.
const (
	secret      = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	otherSecret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
)

type env struct {
	h     *identity.Handler
	db    *dynamotest.DB
	now   time.Time
	reads int // of the signing secret
	key   string
	ctx   context.Context
}

// newEnv is the webhook handler on a table, writing through the function's IAM role.
func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{db: dynamotest.Start(t), now: time.Now().UTC().Truncate(time.Millisecond), key: secret, ctx: context.Background()}
	e.h = &identity.Handler{
		Store:     dynamo.NewUnsigned(testworld.FunctionClient(t, "IdentityWebhookFunction", e.db), e.db.Table),
		Retention: 30 * 24 * time.Hour,
		Now:       func() time.Time { return e.now },
		Secret: func(context.Context) (string, error) {
			e.reads++
			if e.key == "" {
				return "", errors.New("secrets manager unavailable")
			}
			return e.key, nil
		},
	}
	return e
}

// delivery is a webhook as the provider sends it: the body and the Svix headers, signed with
// key at ts.
func delivery(t *testing.T, body, key, id string, ts time.Time) events.APIGatewayProxyRequest {
	t.Helper()
	wh, err := svix.NewWebhook(key)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := wh.Sign(id, ts, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	return events.APIGatewayProxyRequest{
		HTTPMethod: "POST", Path: "/v1/identity/webhooks", Body: body,
		Headers: map[string]string{"content-type": "application/json", "svix-id": id,
			"svix-timestamp": strconv.FormatInt(ts.Unix(), 10), "svix-signature": sig},
	}
}

func orgDeleted(org string) string {
	return `{"object":"event","type":"organization.deleted","instance_id":"ins_1","timestamp":1716883200,` +
		`"data":{"object":"organization","id":"` + org + `","slug":"acme","deleted":true}}`
}

func (e *env) send(t *testing.T, req events.APIGatewayProxyRequest) (int, map[string]any) {
	t.Helper()
	resp, err := e.h.Handle(e.ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	var body map[string]any
	_ = json.Unmarshal([]byte(resp.Body), &body)
	return resp.StatusCode, body
}

// orgItems returns what the table holds of org: its partition and its tombstone.
func (e *env) orgItems(t *testing.T, org string) (events []map[string]any, tombstone map[string]any) {
	t.Helper()
	out, err := e.db.Client.Query(e.ctx, &dynamodb.QueryInput{
		TableName: aws.String(e.db.Table), KeyConditionExpression: aws.String("pk = :pk"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": &types.AttributeValueMemberS{Value: "ORG#" + org}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := attributevalue.UnmarshalListOfMaps(out.Items, &events); err != nil {
		t.Fatal(err)
	}
	events = filter(events, func(it map[string]any) bool { return it["type"] == "event" })
	got, err := e.db.Client.GetItem(e.ctx, &dynamodb.GetItemInput{TableName: aws.String(e.db.Table), Key: map[string]types.AttributeValue{
		"pk": &types.AttributeValueMemberS{Value: "TOMBSTONE#" + org}, "sk": &types.AttributeValueMemberS{Value: "TOMBSTONE"}}})
	if err != nil {
		t.Fatal(err)
	}
	if got.Item != nil {
		if err := attributevalue.UnmarshalMap(got.Item, &tombstone); err != nil {
			t.Fatal(err)
		}
	}
	return events, tombstone
}

func filter(items []map[string]any, keep func(map[string]any) bool) []map[string]any {
	var out []map[string]any
	for _, it := range items {
		if keep(it) {
			out = append(out, it)
		}
	}
	return out
}

// TestOrgDeleted: a delivery of organization.deleted, signed with the endpoint's secret, gets
// the org its tombstone (with the retention period's end) and records organization.deleted
// once, counting the accounts and open tokens found; the org's writes are refused from then
// on. The same message again is a 200 that changes nothing.
func TestOrgDeleted(t *testing.T) {
	e := newEnv(t)
	svc := testworld.Service(t, e.db, testworld.Pepper)
	for _, name := range []string{"claude-code", "ci-deploy"} {
		acct, _, err := svc.Create(e.ctx, "org_gone", "user_admin", sa.CreateInput{Name: name})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := svc.GenerateToken(e.ctx, "org_gone", acct.ID, "user_admin", sa.GenerateInput{}); err != nil {
			t.Fatal(err)
		}
	}
	req := delivery(t, orgDeleted("org_gone"), secret, "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", time.Now())
	for i, want := range []bool{false, true} { // the first delivery, then the same message again
		status, body := e.send(t, req)
		if status != 200 || body["acted"] != true || body["organization"] != "org_gone" || body["repeated"] != want {
			t.Fatalf("delivery %d: %d %v", i+1, status, body)
		}
	}
	evs, stone := e.orgItems(t, "org_gone")
	deleted := filter(evs, func(it map[string]any) bool { return it["action"] == "organization.deleted" })
	if len(deleted) != 1 {
		t.Fatalf("%d organization.deleted events, want 1", len(deleted))
	}
	detail := deleted[0]["detail"].(map[string]any)
	if detail["serviceAccounts"] != 2.0 || detail["activeTokens"] != 2.0 || detail["messageId"] != "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W" {
		t.Fatalf("detail %v", detail)
	}
	if stone == nil || stone["purgeAt"] != float64(e.now.Add(30*24*time.Hour).UnixMilli()) || stone["sweptAt"] != nil {
		t.Fatalf("tombstone %v", stone)
	}
	_, _, err := svc.Create(e.ctx, "org_gone", "user_admin", sa.CreateInput{Name: "after"})
	if sa.ErrorCode(err) != sa.EFORBIDDEN || sa.ErrorMessage(err) != "organization deleted" {
		t.Fatalf("a write after the tombstone: %v, want 403 organization deleted", err)
	}
	if e.reads != 1 {
		t.Fatalf("the signing secret was read %d times, want once", e.reads)
	}
}

// TestRefusedDeliveries: whatever does not verify changes nothing: 401 without a valid
// signature or with a timestamp more than five minutes away; 413 over 64 KiB; 400 for a
// verified body that is not the event it claims; 200 without effect for other event types.
func TestRefusedDeliveries(t *testing.T) {
	now := time.Now()
	body := orgDeleted("org_target")
	tampered := delivery(t, body, secret, "msg_1", now)
	tampered.Body = strings.Replace(tampered.Body, "org_target", "org_victim", 1)
	noHeaders := delivery(t, body, secret, "msg_1", now)
	noHeaders.Headers = map[string]string{"content-type": "application/json"}
	multi := delivery(t, body, secret, "msg_1", now)
	multi.MultiValueHeaders = map[string][]string{}
	for k, v := range multi.Headers {
		multi.MultiValueHeaders[k] = []string{v}
	}
	multi.Headers = nil
	for _, tc := range []struct {
		name   string
		req    events.APIGatewayProxyRequest
		status int
		acted  bool
	}{
		{"OtherSecret", delivery(t, body, otherSecret, "msg_1", now), 401, false},
		{"TamperedBody", tampered, 401, false},
		{"NoSignature", noHeaders, 401, false},
		{"Stale", delivery(t, body, secret, "msg_1", now.Add(-6*time.Minute)), 401, false},
		{"FromTheFuture", delivery(t, body, secret, "msg_1", now.Add(6*time.Minute)), 401, false},
		{"TooLarge", delivery(t, body+strings.Repeat(" ", identity.MaxBodyBytes), secret, "msg_1", now), 413, false},
		{"NotJSON", delivery(t, "not json", secret, "msg_1", now), 400, false},
		{"NoOrgID", delivery(t, `{"type":"organization.deleted","data":{"object":"organization","deleted":true}}`, secret, "msg_1", now), 400, false},
		{"WildcardOrgID", delivery(t, orgDeleted("org_*"), secret, "msg_1", now), 400, false},
		{"OtherType", delivery(t, `{"type":"user.created","data":{"id":"user_1"}}`, secret, "msg_1", now), 200, false},
		{"MultiValueHeaders", multi, 200, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			status, resp := e.send(t, tc.req)
			if status != tc.status {
				t.Fatalf("status %d %v, want %d", status, resp, tc.status)
			}
			evs, stone := e.orgItems(t, "org_target")
			if acted := stone != nil; acted != tc.acted || len(evs) != map[bool]int{true: 1}[tc.acted] {
				t.Fatalf("tombstone %v, %d events; want acted = %v", stone, len(evs), tc.acted)
			}
		})
	}
}

// TestSigningSecret: the secret is read once and kept; a delivery that does not verify makes
// the handler read it again only when the one it holds is over five minutes old, so a secret
// rotated at the provider is picked up and forged deliveries cannot make it read more often. A
// secret that cannot be read is a 503 (the provider retries), one that is not a signing secret
// (an empty key would verify anyone's signature) a 500.
func TestSigningSecret(t *testing.T) {
	e := newEnv(t)
	body := orgDeleted("org_rotated")
	e.key = otherSecret
	if status, _ := e.send(t, delivery(t, `{"type":"user.created","data":{"id":"user_1"}}`, otherSecret, "msg_0", time.Now())); status != 200 {
		t.Fatalf("status %d, want 200", status)
	}
	// The secret is rotated at the provider and in Secrets Manager: the handler holds the old
	// one, so deliveries signed with the new one fail until the one it holds is 5 minutes old.
	e.key = secret
	for range 5 {
		if status, _ := e.send(t, delivery(t, body, secret, "msg_1", time.Now())); status != 401 {
			t.Fatalf("status %d, want 401 while the held secret is fresh", status)
		}
	}
	if e.reads != 1 {
		t.Fatalf("%d reads of the secret, want 1", e.reads)
	}
	e.now = e.now.Add(5 * time.Minute)
	if status, _ := e.send(t, delivery(t, body, secret, "msg_1", time.Now())); status != 200 || e.reads != 2 {
		t.Fatalf("status %d after %d reads, want 200 after 2", status, e.reads)
	}

	down := newEnv(t)
	down.key = ""
	if status, resp := down.send(t, delivery(t, body, secret, "msg_1", time.Now())); status != 503 {
		t.Fatalf("secret unreadable: %d %v, want 503", status, resp)
	}
	for _, bad := range []string{"whsec_", "whsec_c2hvcnQ=", "not base64 at all!"} {
		e := newEnv(t)
		e.key = bad
		if status, _ := e.send(t, delivery(t, body, secret, "msg_1", time.Now())); status != 500 {
			t.Fatalf("secret %q: %d, want 500", bad, status)
		}
	}
}
