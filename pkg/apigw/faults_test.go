package apigw_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

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

// interruptDelete starts a delete of {sa} that fails after taking the account's lock, midway
// through its pages: it answers 503 and leaves the delete recorded.
func (f *fixture) interruptDelete(t *testing.T) {
	t.Helper()
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
	resp, body := f.call(t, request{event: "delete", path: map[string]string{"saId": "{sa}"}})
	f.w.Tap.Fail(nil)
	if resp.StatusCode != 503 {
		t.Fatalf("interrupted delete: status %d %v, want 503", resp.StatusCode, body)
	}
}

// requireDeleted fails unless only the audit trail remains of {sa}, with one
// service_account.deleted event.
func (f *fixture) requireDeleted(t *testing.T) {
	t.Helper()
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

// TestDeleteInterruptedIsFinished: after an interrupted delete, a token generated meanwhile is
// refused, and the retried delete finishes the recorded one (it records no second event).
func TestDeleteInterruptedIsFinished(t *testing.T) {
	f := newFixture(t)
	f.interruptDelete(t)
	generate := request{event: "generate", path: map[string]string{"saId": "{sa}"}}
	if resp, body := f.call(t, generate); resp.StatusCode != 404 {
		t.Fatalf("generate during the delete: status %d %v, want 404", resp.StatusCode, body)
	}
	if resp, body := f.call(t, request{event: "delete", path: map[string]string{"saId": "{sa}"}}); resp.StatusCode != 204 {
		t.Fatalf("retried delete: status %d %v, want 204", resp.StatusCode, body)
	}
	f.requireDeleted(t)
}

// TestStaleDeleteLockIsTakenOver: nobody retries an interrupted delete, and its holder's lease
// runs out. The lock does not block the account until DynamoDB's TTL sweep (which can take
// days): the next writer finishes the recorded delete at once, so generate answers 404 and the
// account is gone from the list, its open token's credential with it.
func TestStaleDeleteLockIsTakenOver(t *testing.T) {
	f := newFixture(t)
	f.interruptDelete(t)
	f.w.Clock.Advance(31 * time.Second) // past the holder's 30 s lease
	if resp, body := f.call(t, request{event: "generate", path: map[string]string{"saId": "{sa}"}}); resp.StatusCode != 404 {
		t.Fatalf("generate after the lease ran out: status %d %v, want 404", resp.StatusCode, body)
	}
	f.requireDeleted(t)
	resp, body := f.call(t, request{event: "list"})
	if resp.StatusCode != 200 {
		t.Fatalf("list: status %d %v", resp.StatusCode, body)
	}
	for _, a := range body["items"].([]any) {
		if a.(map[string]any)["id"] == f.ids["{sa}"] {
			t.Fatal("the deleted account is still listed")
		}
	}
}
