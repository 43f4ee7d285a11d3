package apigw_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/opentrace/service-accounts/pkg/dynamo/dynamotest"
)

// TestWritesFailWith503AndLeaveNoPartialState: with DynamoDB failing (a server fault or
// throttling on every call, or only the write transaction, after the reads succeeded), every
// management write answers 503 with Retry-After, and once DynamoDB is back the table is
// exactly as before.
func TestWritesFailWith503AndLeaveNoPartialState(t *testing.T) {
	all := func(dynamotest.Call) bool { return true }
	faults := []struct {
		name   string
		inject func(f *fixture)
	}{
		{"InternalServerError", func(f *fixture) { f.w.Tap.Fail(all) }},
		{"Throttled", func(f *fixture) { f.w.Tap.Throttle(all) }},
		{"AtTransaction", func(f *fixture) {
			f.w.Tap.Fail(func(c dynamotest.Call) bool { return c.Op == "TransactWriteItems" })
		}},
	}
	writes := []request{
		{event: "create", body: str(`{"name":"new-account"}`)},
		{event: "generate", path: map[string]string{"saId": "{sa}"}},
		{event: "revoke", path: map[string]string{"saId": "{sa}", "tokenId": "{tok}"}},
		{event: "delete", path: map[string]string{"saId": "{sa}"}},
	}
	n := 0
	for _, fault := range faults {
		for _, w := range writes {
			t.Run(fault.name+"/"+w.event, func(t *testing.T) {
				f := newFixture(t)
				before := f.snapshot(t)
				fault.inject(f)
				resp, body := f.call(t, w)
				f.w.Tap.Fail(nil)
				if resp.StatusCode != 503 || resp.Headers["Retry-After"] == "" {
					t.Fatalf("status %d, Retry-After %q, body %v; want 503 with Retry-After", resp.StatusCode, resp.Headers["Retry-After"], body)
				}
				if after := f.snapshot(t); !reflect.DeepEqual(before, after) {
					t.Fatal("a failed write changed the table")
				}
				n++
			})
		}
	}
	t.Logf("%d faults injected into management writes", n)
}

// TestDeleteInterruptedIsFinished: a delete that fails after taking the account's lock,
// midway through its pages, answers 503 and leaves the delete recorded: a token generated
// meanwhile is refused, and the retried delete finishes the recorded one (it records no second
// event), after which only the audit trail remains of the account.
func TestDeleteInterruptedIsFinished(t *testing.T) {
	f := newFixture(t)
	del := request{event: "delete", path: map[string]string{"saId": "{sa}"}}
	lockTaken := false
	f.w.Tap.Fail(func(c dynamotest.Call) bool {
		if c.Op != "TransactWriteItems" {
			return false
		}
		if !lockTaken {
			lockTaken = true // the transaction that takes the lock goes through
			return false
		}
		return true // every page after it fails
	})
	resp, body := f.call(t, del)
	f.w.Tap.Fail(nil)
	if resp.StatusCode != 503 {
		t.Fatalf("interrupted delete: status %d %v, want 503", resp.StatusCode, body)
	}
	if resp, body := f.call(t, request{event: "generate", path: map[string]string{"saId": "{sa}"}}); resp.StatusCode != 404 {
		t.Fatalf("generate during the delete: status %d %v, want 404", resp.StatusCode, body)
	}
	if resp, body := f.call(t, del); resp.StatusCode != 204 {
		t.Fatalf("retried delete: status %d %v, want 204", resp.StatusCode, body)
	}
	deleted := 0
	for _, item := range f.snapshot(t) {
		if item["saId"] == nil || item["saId"].(*types.AttributeValueMemberS).Value != f.ids["{sa}"] {
			continue
		}
		typ := item["type"].(*types.AttributeValueMemberS).Value
		if typ != "event" {
			t.Errorf("left behind: %v", item["sk"])
		} else if strings.Contains(item["action"].(*types.AttributeValueMemberS).Value, "service_account.deleted") {
			deleted++
		}
	}
	if deleted != 1 {
		t.Fatalf("%d service_account.deleted events, want 1", deleted)
	}
}
