package authorizer_test

import (
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/opentrace/service-accounts/pkg/apigw"
	"github.com/opentrace/service-accounts/pkg/authorizer"
	sa "github.com/opentrace/service-accounts/pkg/serviceaccount"
)

// BenchmarkLastUsedWrites counts the lastUsedAt writes that reach DynamoDB (successful
// UpdateItems, as the table's Tap counts them) per 10,000 authorizations of one token within one
// last-used interval, through the real authorizer, service, store and minidyn. Each iteration
// starts a new interval (the clock jumps two intervals ahead) and spreads 10,000
// authorizations over 50 s of it, 5 ms apart, so the goal is exactly 1 write per iteration.
//
// OneInstance is one warm Lambda instance serving them in turn. Instances16 is 16 instances
// (each its own Service, so its own in-process memory of what it wrote) serving them
// concurrently on the same table, as a busy token spread over many Lambda instances is: every
// instance that read the credential before the first write attempts its own, and only the
// conditional write keeps those from landing. attempts/10k-auths counts the UpdateItems sent,
// landed or not; wall-ns/auth is the iteration's wall time per authorization.
func BenchmarkLastUsedWrites(b *testing.B) {
	const perIteration = 10_000
	for _, bc := range []struct {
		name      string
		instances int
	}{
		{"OneInstance", 1},
		{"Instances16", 16},
	} {
		b.Run(bc.name, func(b *testing.B) {
			e := newEnv(b, authorizer.UserConfig{})
			_, _, secret := e.issue(b, "org_a", "claude-code", sa.GenerateInput{})
			var now atomic.Int64 // unix nanos: the clock every instance reads
			now.Store(e.now.UnixNano())
			clock := func() time.Time { return time.Unix(0, now.Load()).UTC() }
			interval := sa.DefaultLimits.LastUsedInterval
			auths := make([]*authorizer.Authorizer, bc.instances)
			for i := range auths {
				auths[i] = &authorizer.Authorizer{Service: e.service(b, e.client, clock), Context: apigw.AuthorizerContext, Log: slog.New(slog.NewJSONHandler(io.Discard, nil))}
			}
			route := arn("GET", "/v1/whoami")
			req := events.APIGatewayCustomAuthorizerRequest{Type: "TOKEN", AuthorizationToken: "Bearer " + secret, MethodArn: route}
			var writes, tried int64
			var authorized time.Duration
			b.ReportAllocs()
			for b.Loop() {
				now.Add(int64(2 * interval)) // a new interval: the stored last use is stale
				before, triedBefore := e.lastUseWrites(), int64(e.db.Tap.Calls("UpdateItem"))
				start := time.Now()
				var wg sync.WaitGroup
				var failed atomic.Value
				for i, a := range auths {
					n := perIteration / bc.instances
					if i < perIteration%bc.instances {
						n++
					}
					wg.Go(func() {
						for range n {
							now.Add(int64(5 * time.Millisecond)) // 10,000 × 5 ms = 50 s: one interval
							resp, err := a.Handle(e.ctx, req)
							if got := outcome(resp, err, route); got != 200 {
								failed.Store(fmt.Sprintf("%d %v", got, err))
								return
							}
						}
					})
				}
				wg.Wait()
				authorized += time.Since(start)
				if msg := failed.Load(); msg != nil {
					b.Fatalf("an authorization failed: %v", msg)
				}
				writes += e.lastUseWrites() - before
				tried += int64(e.db.Tap.Calls("UpdateItem")) - triedBefore
			}
			b.ReportMetric(float64(writes)/float64(b.N), "writes/10k-auths")
			b.ReportMetric(float64(tried)/float64(b.N), "attempts/10k-auths")
			b.ReportMetric(float64(authorized.Nanoseconds())/float64(b.N*perIteration), "wall-ns/auth")
		})
	}
}
