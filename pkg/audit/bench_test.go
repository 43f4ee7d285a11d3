package audit_test

import (
	"testing"
	"time"

	"github.com/opentrace/service-accounts/pkg/audit"
)

// BenchmarkAudit runs a first audit (every finding new, so every finding is a write) over a
// table seeded per iteration outside the timer. tokens/s is end to end through the SDK and
// minidyn, whose Query walks the whole table, so it measures minidyn as much as the Runner;
// writes/finding counts the items written (findings, org marks, reports) per finding; seed-s is
// the untimed seeding, which grows quadratically in minidyn (it re-sorts its keys on insert).
func BenchmarkAudit(b *testing.B) {
	for _, bc := range []struct {
		name  string
		shape seedShape
	}{
		{"10k", seedShape{tokens: 10_000, orgs: 100, tokensPerAccount: 10, riskyEvery: 10}},
		{"100k", seedShape{tokens: 100_000, orgs: 100, tokensPerAccount: 10, riskyEvery: 10}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			now := t0.Add(400 * audit.Day)
			var seeding, audited time.Duration
			var writes, findings int64
			for range b.N {
				b.StopTimer()
				start := time.Now()
				e := newEnv(b)
				seedBulk(b, e.db, bc.shape, now)
				seeding += time.Since(start)
				runner := &audit.Runner{Store: e.store, Thresholds: audit.DefaultThresholds}
				b.StartTimer()
				start = time.Now()
				sum, err := runner.Run(e.ctx, now)
				audited += time.Since(start)
				if err != nil || !sum.Complete || sum.Tokens != bc.shape.tokens {
					b.Fatalf("audit: %+v, %v", sum, err)
				}
				writes += e.counter.writes.Load()
				for _, n := range sum.Findings {
					findings += int64(n)
				}
			}
			b.ReportMetric(float64(bc.shape.tokens*b.N)/audited.Seconds(), "tokens/s")
			b.ReportMetric(float64(writes)/float64(findings), "writes/finding")
			b.ReportMetric(seeding.Seconds()/float64(b.N), "seed-s")
		})
	}
}
