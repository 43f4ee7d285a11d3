// Command audit is the scheduled audit: EventBridge invokes it daily; it flags never-used,
// stale, rotation-due and expiring tokens and unused accounts, writes each org's report,
// optionally revokes long-unused tokens, and purges the data of deleted organisations.
package main

import (
	"github.com/opentrace/service-accounts/pkg/wire"
	"github.com/opentrace/service-accounts/pkg/wire/auditfn"
)

func main() { wire.Start(auditfn.New) }
