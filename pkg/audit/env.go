package audit

import (
	"fmt"
	"time"

	"github.com/opentrace/service-accounts/pkg/config"
)

// Environment variables of the audit function, as template.yaml sets them from its Audit*
// parameters. Each threshold is a whole number of days; 0 turns its rule off.
const (
	EnvNeverUsedDays              = "AUDIT_NEVER_USED_DAYS"
	EnvStaleDays                  = "AUDIT_STALE_DAYS"
	EnvRotationDays               = "AUDIT_ROTATION_DAYS"
	EnvExpiringDays               = "AUDIT_EXPIRING_DAYS"
	EnvUnusedAccountDays          = "AUDIT_UNUSED_ACCOUNT_DAYS"
	EnvUnusedAccountNeverUsedDays = "AUDIT_UNUSED_ACCOUNT_NEVER_USED_DAYS"
	EnvAutoRevoke                 = "AUDIT_AUTO_REVOKE" // "true" or "false"
	EnvAutoRevokeDays             = "AUDIT_AUTO_REVOKE_DAYS"
)

// maxDays bounds every threshold: ten years is beyond any sensible policy, and a larger number
// is more likely a typo (hours or seconds) than a choice.
const maxDays = 3650

// ThresholdsFromEnv reads the thresholds through getenv (os.Getenv in a Lambda, the template's
// environment in the local stack). Unset variables keep DefaultThresholds. A malformed value is
// an error rather than a default, so a typo in the template fails the cold start instead of
// silently changing what the audit reports or revokes. With auto-revocation on, its threshold
// must be set and at least the never-used and stale thresholds, so that a token is reported
// before it is revoked.
func ThresholdsFromEnv(getenv func(string) string) (Thresholds, error) {
	th := DefaultThresholds
	for _, v := range []struct {
		name string
		dst  *time.Duration
	}{
		{EnvNeverUsedDays, &th.NeverUsed},
		{EnvStaleDays, &th.Stale},
		{EnvRotationDays, &th.RotationDue},
		{EnvExpiringDays, &th.Expiring},
		{EnvUnusedAccountDays, &th.UnusedAccount},
		{EnvUnusedAccountNeverUsedDays, &th.UnusedAccountNeverUsed},
		{EnvAutoRevokeDays, &th.AutoRevokeAfter},
	} {
		n, err := config.Int(getenv, v.name, 0, maxDays, int(*v.dst/Day))
		if err != nil {
			return Thresholds{}, err
		}
		*v.dst = time.Duration(n) * Day
	}
	if raw := getenv(EnvAutoRevoke); raw != "" {
		switch raw {
		case "true":
			th.AutoRevoke = true
		case "false":
			th.AutoRevoke = false
		default:
			return Thresholds{}, fmt.Errorf("%s=%q: want true or false", EnvAutoRevoke, raw)
		}
	}
	if th.AutoRevoke {
		switch {
		case th.AutoRevokeAfter == 0:
			return Thresholds{}, fmt.Errorf("%s=true needs %s above 0", EnvAutoRevoke, EnvAutoRevokeDays)
		case th.AutoRevokeAfter < th.Stale || th.AutoRevokeAfter < th.NeverUsed:
			return Thresholds{}, fmt.Errorf("%s (%s) must be at least %s and %s, so a token is reported before it is revoked",
				EnvAutoRevokeDays, days(th.AutoRevokeAfter), EnvStaleDays, EnvNeverUsedDays)
		}
	}
	return th, nil
}
