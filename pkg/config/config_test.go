package config_test

import (
	"testing"
	"time"

	"github.com/opentrace/service-accounts/pkg/config"
	sa "github.com/opentrace/service-accounts/pkg/serviceaccount"
)

func TestLoad(t *testing.T) {
	base := map[string]string{config.EnvTable: "t", config.EnvPepperSecret: "s"}
	for _, tc := range []struct {
		name string
		set  map[string]string
		want func(config.Settings) bool
		ok   bool
	}{
		{"Defaults", nil, func(s config.Settings) bool { return s.Limits == sa.DefaultLimits && s.Table == "t" }, true},
		{"Limits", map[string]string{config.EnvMaxActiveTokens: "3", config.EnvMaxAccountsPerOrg: "7",
			config.EnvMaxTokenLifetime: "90", config.EnvLastUsedIntervalS: "5"}, func(s config.Settings) bool {
			return s.Limits == sa.Limits{MaxActiveTokens: 3, MaxAccountsPerOrg: 7, MaxTokenLifetimeDays: 90, LastUsedInterval: 5 * time.Second}
		}, true},
		{"LogLevel", map[string]string{config.EnvLogLevel: "debug"}, func(s config.Settings) bool { return s.LogLevel.String() == "DEBUG" }, true},
		{"ErrNoTable", map[string]string{config.EnvTable: ""}, nil, false},
		// Secrets are per function: NewApp requires those the function needs.
		{"NoSecrets", map[string]string{config.EnvPepperSecret: ""}, func(s config.Settings) bool { return s.PepperSecret == "" && s.CursorSecret == "" }, true},
		{"ErrNotANumber", map[string]string{config.EnvMaxActiveTokens: "ten"}, nil, false},
		{"ErrZeroTokens", map[string]string{config.EnvMaxActiveTokens: "0"}, nil, false},
		{"ErrLifetimeTooLong", map[string]string{config.EnvMaxTokenLifetime: "366"}, nil, false},
		{"ErrLogLevel", map[string]string{config.EnvLogLevel: "loud"}, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{}
			for k, v := range base {
				env[k] = v
			}
			for k, v := range tc.set {
				env[k] = v
			}
			s, err := config.Load(func(k string) string { return env[k] })
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
			if tc.ok && !tc.want(s) {
				t.Fatalf("settings = %+v", s)
			}
		})
	}
}
