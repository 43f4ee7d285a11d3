// Command audit is the scheduled audit: EventBridge invokes it daily; it flags never-used,
// stale, rotation-due and expiring tokens and unused accounts, writes each org's report, and
// optionally revokes long-unused tokens.
package main

import (
	"context"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/opentrace/service-accounts/pkg/audit"
	"github.com/opentrace/service-accounts/pkg/config"
)

func main() {
	thresholds := config.Must(audit.ThresholdsFromEnv(os.Getenv))
	store, log, err := config.TableFromEnvironment(context.Background(), os.Getenv)
	config.Must(store, err)
	r := &audit.Runner{Store: store, Thresholds: thresholds, Log: log, Metrics: os.Stdout}
	lambda.Start(r.Handle)
}
