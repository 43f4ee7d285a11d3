// Command audit is the scheduled audit: EventBridge invokes it daily; it flags never-used,
// stale, rotation-due and expiring tokens and unused accounts, writes each org's report, and
// optionally revokes long-unused tokens.
package main

import "github.com/opentrace/service-accounts/pkg/wire"

func main() { wire.Start(wire.Audit) }
