// Package config reads a function's settings from its environment (as template.yaml sets it)
// and builds the clients and the domain service once per cold start. The functions and the
// local stack share it, so both wire the system the same way.
package config

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"time"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/opentrace/service-accounts/pkg/dynamo"
	"github.com/opentrace/service-accounts/pkg/secrets"
	sa "github.com/opentrace/service-accounts/pkg/serviceaccount"
)

// Environment variables read by the functions.
const (
	EnvTable             = "TABLE_NAME"
	EnvPepperSecret      = "PEPPER_SECRET_ID"
	EnvMaxActiveTokens   = "MAX_ACTIVE_TOKENS"
	EnvMaxAccountsPerOrg = "MAX_ACCOUNTS_PER_ORG"
	EnvMaxTokenLifetime  = "MAX_TOKEN_LIFETIME_DAYS"
	EnvLastUsedIntervalS = "LAST_USED_INTERVAL_SECONDS"
	EnvLogLevel          = "LOG_LEVEL"
)

// Settings are a function's settings.
type Settings struct {
	Table        string
	PepperSecret string
	Limits       sa.Limits
	LogLevel     slog.Level
}

// Load reads the settings through getenv (os.Getenv in a Lambda, the template's environment in
// the local stack). Unset limits take the product defaults; malformed values are errors, so a
// typo in the template stops a cold start instead of silently changing a limit.
func Load(getenv func(string) string) (Settings, error) {
	s := Settings{Table: getenv(EnvTable), PepperSecret: getenv(EnvPepperSecret), Limits: sa.DefaultLimits}
	if s.Table == "" {
		return Settings{}, fmt.Errorf("%s is not set", EnvTable)
	}
	if s.PepperSecret == "" {
		return Settings{}, fmt.Errorf("%s is not set", EnvPepperSecret)
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
		raw := getenv(v.name)
		if raw == "" {
			continue
		}
		n, err := strconv.Atoi(raw)
		if err != nil || n < v.min || n > v.max {
			return Settings{}, fmt.Errorf("%s=%q: want a whole number from %d to %d", v.name, raw, v.min, v.max)
		}
		*v.dst = n
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

// Logger returns the JSON logger of a function that needs no table or secret, at the level
// LOG_LEVEL names; a malformed level is an error, so a typo fails the cold start.
func Logger(getenv func(string) string) (*slog.Logger, error) {
	l, err := logLevel(getenv)
	if err != nil {
		return nil, err
	}
	return Settings{LogLevel: l}.Logger(), nil
}

// Logger returns the JSON logger every function writes with.
func (s Settings) Logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{Level: s.LogLevel}))
}

// App is what a function needs: the service, its store and a logger.
type App struct {
	Settings Settings
	Service  *sa.Service
	Store    *dynamo.Store
	Peppers  secrets.Source
	Log      *slog.Logger
}

// Build wires the service on db and peppers. It reads the keyring once, so a cold start with
// an unreadable or invalid secret fails instead of serving requests it cannot answer.
func Build(ctx context.Context, s Settings, db dynamo.API, peppers secrets.Source, opts ...sa.Option) (*App, error) {
	kr, err := peppers.Keyring(ctx)
	if err != nil {
		return nil, fmt.Errorf("read pepper secret: %w", err)
	}
	store, err := dynamo.New(db, s.Table, kr.CursorKey())
	if err != nil {
		return nil, err
	}
	opts = append([]sa.Option{sa.WithLimits(s.Limits)}, opts...)
	return &App{
		Settings: s,
		Service:  sa.NewService(store, secrets.Peppers{Source: peppers}, opts...),
		Store:    store,
		Peppers:  peppers,
		Log:      s.Logger(),
	}, nil
}

// FromEnvironment builds the App of a function running in AWS: settings from the process
// environment, AWS clients from the default credential chain.
func FromEnvironment(ctx context.Context) (*App, error) {
	s, err := Load(os.Getenv)
	if err != nil {
		return nil, err
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("load AWS config: %w", err)
	}
	peppers := secrets.NewSecretsManager(secretsmanager.NewFromConfig(cfg), s.PepperSecret)
	return Build(ctx, s, dynamodb.NewFromConfig(cfg), peppers)
}

// TableFromEnvironment builds the store and logger of a function that reads and writes the
// table but never lists accounts or handles tokens (the stream consumer, the audit): it needs
// TABLE_NAME and LOG_LEVEL only, and no access to the pepper secret.
func TableFromEnvironment(ctx context.Context, getenv func(string) string) (*dynamo.Store, *slog.Logger, error) {
	table := getenv(EnvTable)
	if table == "" {
		return nil, nil, fmt.Errorf("%s is not set", EnvTable)
	}
	log, err := Logger(getenv)
	if err != nil {
		return nil, nil, err
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("load AWS config: %w", err)
	}
	return dynamo.NewUnsigned(dynamodb.NewFromConfig(cfg), table), log, nil
}

// Must returns v, or logs err and exits: a function that cannot be wired must fail its cold
// start, which Lambda reports and retries, rather than answer requests.
func Must[T any](v T, err error) T {
	if err != nil {
		slog.New(slog.NewJSONHandler(os.Stderr, nil)).Error("cold start failed", slog.String("error", err.Error()))
		os.Exit(1)
	}
	return v
}
