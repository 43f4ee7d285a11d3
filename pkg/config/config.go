// Package config reads a function's settings from its environment, as template.yaml sets it.
// A malformed variable is an error, never a silent default.
package config

import (
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	sa "github.com/opentrace/service-accounts/pkg/serviceaccount"
)

// Environment variables read by the functions.
const (
	EnvTable             = "TABLE_NAME"
	EnvPepperSecret      = "PEPPER_SECRET_ID" // only the functions that hash tokens
	EnvCursorSecret      = "CURSOR_SECRET_ID" // only the functions that sign list cursors
	EnvMaxActiveTokens   = "MAX_ACTIVE_TOKENS"
	EnvMaxAccountsPerOrg = "MAX_ACCOUNTS_PER_ORG"
	EnvMaxTokenLifetime  = "MAX_TOKEN_LIFETIME_DAYS"
	EnvLastUsedIntervalS = "LAST_USED_INTERVAL_SECONDS"
	EnvLogLevel          = "LOG_LEVEL"
	EnvAllowedOrigins    = "ALLOWED_ORIGINS" // comma-separated origins whose pages may call the API
)

// List splits a comma-separated setting, dropping blanks around and between its items.
func List(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// Int reads the variable name through getenv as a whole number from min to max, or def when
// it is unset. Every function reads its numbers this way: a malformed or out-of-range value is
// an error naming the variable and its range, so a typo in the template fails the cold start
// instead of silently changing a setting.
func Int(getenv func(string) string, name string, min, max, def int) (int, error) {
	raw := getenv(name)
	if raw == "" {
		return def, nil
	}
	n, err := strconv.Atoi(raw)
	if err != nil || n < min || n > max {
		return 0, fmt.Errorf("%s=%q: want a whole number from %d to %d", name, raw, min, max)
	}
	return n, nil
}

// Settings are a function's settings.
type Settings struct {
	Table        string
	PepperSecret string // "" for a function that does not hash tokens
	CursorSecret string // "" for a function that does not list
	Limits       sa.Limits
	LogLevel     slog.Level
}

// Load reads the settings through getenv (os.Getenv in a Lambda, the template's environment in
// the local stack). Unset limits take the product defaults; malformed values are errors, so a
// typo in the template stops a cold start instead of silently changing a limit.
func Load(getenv func(string) string) (Settings, error) {
	s := Settings{Table: getenv(EnvTable), PepperSecret: getenv(EnvPepperSecret), CursorSecret: getenv(EnvCursorSecret), Limits: sa.DefaultLimits}
	if s.Table == "" {
		return Settings{}, fmt.Errorf("%s is not set", EnvTable)
	}
	var err error
	interval := int(s.Limits.LastUsedInterval / time.Second)
	for _, v := range []struct {
		name     string
		dst      *int
		min, max int
	}{
		{EnvMaxActiveTokens, &s.Limits.MaxActiveTokens, 1, 1000},
		{EnvMaxAccountsPerOrg, &s.Limits.MaxAccountsPerOrg, 1, 1_000_000},
		{EnvMaxTokenLifetime, &s.Limits.MaxTokenLifetimeDays, 0, 365},
		{EnvLastUsedIntervalS, &interval, 1, 86_400},
	} {
		if *v.dst, err = Int(getenv, v.name, v.min, v.max, *v.dst); err != nil {
			return Settings{}, err
		}
	}
	s.Limits.LastUsedInterval = time.Duration(interval) * time.Second
	if s.LogLevel, err = logLevel(getenv); err != nil {
		return Settings{}, err
	}
	return s, nil
}

func logLevel(getenv func(string) string) (slog.Level, error) {
	var l slog.Level
	if raw := getenv(EnvLogLevel); raw != "" {
		if err := l.UnmarshalText([]byte(raw)); err != nil {
			return 0, fmt.Errorf("%s=%q: %w", EnvLogLevel, raw, err)
		}
	}
	return l, nil
}

// Logger returns the JSON logger, writing to w, of a function that needs no table or secret,
// at the level LOG_LEVEL names; a malformed level is an error, so a typo fails the cold start.
func Logger(getenv func(string) string, w io.Writer) (*slog.Logger, error) {
	l, err := logLevel(getenv)
	if err != nil {
		return nil, err
	}
	return Settings{LogLevel: l}.Logger(w), nil
}

// Logger returns the JSON logger every function writes with (to stdout in Lambda).
func (s Settings) Logger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: s.LogLevel}))
}
