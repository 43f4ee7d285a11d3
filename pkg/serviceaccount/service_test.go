package serviceaccount_test

import (
	"strings"
	"testing"
	"time"

	"github.com/opentrace/service-accounts/pkg/secrets"
	sa "github.com/opentrace/service-accounts/pkg/serviceaccount"
	"github.com/opentrace/service-accounts/pkg/token"
)

func TestCreateAndGet(t *testing.T) {
	e := newEnv(t)
	acct, warnings, err := e.svc.Create(e.ctx, "org_a", "user_1", sa.CreateInput{Name: "  claude-code-dev-team ", Description: "MCP for the dev team"})
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 0 {
		t.Errorf("warnings = %v, want none for a descriptive name", warnings)
	}
	if !sa.ValidServiceAccountID(acct.ID) || acct.Name != "claude-code-dev-team" || acct.CreatedBy != "user_1" ||
		!acct.CreatedAt.Equal(e.clock.Now()) || acct.ActiveTokens != 0 || acct.LastUsedAt != nil {
		t.Fatalf("created = %+v", acct)
	}
	got, tokens, err := e.svc.Get(e.ctx, "org_a", acct.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got != acct || len(tokens) != 0 {
		t.Fatalf("get = %+v %v, want %+v and no tokens", got, tokens, acct)
	}
}

func TestNamingAdvice(t *testing.T) {
	for _, tc := range []struct {
		name string
		want []string
	}{
		{"claude-code-dev-team", nil},
		{"github-actions-prod", nil},
		{"monitoring-service", nil},
		{"CI Pipeline", nil},
		{"test", []string{sa.WarnVagueName}},
		{"Temp", []string{sa.WarnVagueName}},
		{"api-key-1", []string{sa.WarnNoPurpose}},
		{"token_2", []string{sa.WarnNoPurpose}},
		{"john-token", []string{sa.WarnPersonalName}},
		{"my key", []string{sa.WarnPersonalName}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, w := range sa.NamingAdvice(tc.name) {
				got = append(got, w.Code)
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Fatalf("advice for %q = %v, want %v", tc.name, got, tc.want)
			}
		})
	}
}

func TestCreateReturnsWarnings(t *testing.T) {
	e := newEnv(t)
	_, warnings, err := e.svc.Create(e.ctx, "org_a", "u", sa.CreateInput{Name: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 1 || warnings[0].Code != sa.WarnVagueName {
		t.Fatalf("warnings = %v", warnings)
	}
}

// TestValidation names every input rule and the exact code it yields; nothing is written.
func TestValidation(t *testing.T) {
	e := newEnv(t)
	existing := e.create(t, "org_a", "taken")
	long := strings.Repeat("x", 65)
	for _, tc := range []struct {
		name  string
		run   func() error
		code  string
		field string
	}{
		{"ErrNameEmpty", func() error { _, _, err := e.svc.Create(e.ctx, "org_a", "u", sa.CreateInput{Name: "  "}); return err }, sa.EINVALID, "name"},
		{"ErrNameTooLong", func() error { _, _, err := e.svc.Create(e.ctx, "org_a", "u", sa.CreateInput{Name: long}); return err }, sa.EINVALID, "name"},
		{"ErrNameControlChar", func() error {
			_, _, err := e.svc.Create(e.ctx, "org_a", "u", sa.CreateInput{Name: "a\x00b"})
			return err
		}, sa.EINVALID, "name"},
		{"ErrNameNewline", func() error { _, _, err := e.svc.Create(e.ctx, "org_a", "u", sa.CreateInput{Name: "a\nb"}); return err }, sa.EINVALID, "name"},
		{"ErrNameInvisible", func() error {
			_, _, err := e.svc.Create(e.ctx, "org_a", "u", sa.CreateInput{Name: "a\u200bb"})
			return err
		}, sa.EINVALID, "name"},
		{"ErrNameInvalidUTF8", func() error {
			_, _, err := e.svc.Create(e.ctx, "org_a", "u", sa.CreateInput{Name: "a\xffb"})
			return err
		}, sa.EINVALID, "name"},
		{"ErrDescriptionTooLong", func() error {
			_, _, err := e.svc.Create(e.ctx, "org_a", "u", sa.CreateInput{Name: "ok", Description: strings.Repeat("d", 501)})
			return err
		}, sa.EINVALID, "description"},
		{"ErrDescriptionControlChar", func() error {
			_, _, err := e.svc.Create(e.ctx, "org_a", "u", sa.CreateInput{Name: "ok", Description: "\x1b[31m"})
			return err
		}, sa.EINVALID, "description"},
		{"ErrOrgIDInvalid", func() error { _, _, err := e.svc.Create(e.ctx, "org#b", "u", sa.CreateInput{Name: "ok"}); return err }, sa.EINVALID, "orgId"},
		{"ErrNameTaken", func() error {
			_, _, err := e.svc.Create(e.ctx, "org_a", "u", sa.CreateInput{Name: "TAKEN"})
			return err
		}, sa.ECONFLICT, ""},
		{"ErrLimitZeroIsDefault", func() error { _, err := e.svc.List(e.ctx, "org_a", sa.ListInput{Limit: -1}); return err }, sa.EINVALID, "limit"},
		{"ErrLimitTooLarge", func() error { _, err := e.svc.List(e.ctx, "org_a", sa.ListInput{Limit: 101}); return err }, sa.EINVALID, "limit"},
		{"ErrCursorGarbage", func() error { _, err := e.svc.List(e.ctx, "org_a", sa.ListInput{Cursor: "nope"}); return err }, sa.EINVALID, "cursor"},
		{"ErrExpiresInDaysZero", func() error {
			_, _, err := e.svc.GenerateToken(e.ctx, "org_a", existing.ID, "u", sa.GenerateInput{ExpiresInDays: intp(0)})
			return err
		}, sa.EINVALID, "expiresInDays"},
		{"ErrExpiresInDaysTooLarge", func() error {
			_, _, err := e.svc.GenerateToken(e.ctx, "org_a", existing.ID, "u", sa.GenerateInput{ExpiresInDays: intp(366)})
			return err
		}, sa.EINVALID, "expiresInDays"},
		{"ErrTokenNameTooLong", func() error {
			_, _, err := e.svc.GenerateToken(e.ctx, "org_a", existing.ID, "u", sa.GenerateInput{Name: long})
			return err
		}, sa.EINVALID, "name"},
		{"ErrServiceAccountIDMalformed", func() error { _, _, err := e.svc.Get(e.ctx, "org_a", "sa_../../x"); return err }, sa.ENOTFOUND, ""},
		{"ErrServiceAccountUnknown", func() error { _, _, err := e.svc.Get(e.ctx, "org_a", "sa_01JAAAAAAAAAAAAAAAAAAAAAAA"); return err }, sa.ENOTFOUND, ""},
		{"ErrTokenIDMalformed", func() error { return e.svc.RevokeToken(e.ctx, "org_a", existing.ID, "tok_x", "u") }, sa.ENOTFOUND, ""},
		{"ErrTokenUnknown", func() error {
			return e.svc.RevokeToken(e.ctx, "org_a", existing.ID, "tok_01JAAAAAAAAAAAAAAAAAAAAAAA", "u")
		}, sa.ENOTFOUND, ""},
		{"ErrGenerateForUnknownAccount", func() error {
			_, _, err := e.svc.GenerateToken(e.ctx, "org_a", "sa_01JAAAAAAAAAAAAAAAAAAAAAAA", "u", sa.GenerateInput{})
			return err
		}, sa.ENOTFOUND, ""},
		{"ErrDeleteUnknown", func() error { return e.svc.Delete(e.ctx, "org_a", "sa_01JAAAAAAAAAAAAAAAAAAAAAAA", "u") }, sa.ENOTFOUND, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.run()
			wantCode(t, err, tc.code)
			if tc.field != "" {
				e, _ := err.(*sa.Error)
				if e == nil || len(e.Fields) != 1 || e.Fields[0].Field != tc.field {
					t.Fatalf("fields = %+v, want exactly %q", e, tc.field)
				}
			}
		})
	}
	page, err := e.svc.List(e.ctx, "org_a", sa.ListInput{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 1 || page.Items[0].ID != existing.ID || page.Items[0].ActiveTokens != 0 {
		t.Fatalf("after rejected input the org holds %+v, want only %q untouched", page.Items, existing.Name)
	}
}

func TestNamesUniqueIgnoringCase(t *testing.T) {
	e := newEnv(t)
	e.create(t, "org_a", "Deploy-Bot")
	for _, name := range []string{"deploy-bot", "DEPLOY-BOT", " Deploy-Bot "} {
		_, _, err := e.svc.Create(e.ctx, "org_a", "u", sa.CreateInput{Name: name})
		wantCode(t, err, sa.ECONFLICT)
	}
	// Another org may use the same name.
	e.create(t, "org_b", "deploy-bot")
}

func TestNameFreedByDelete(t *testing.T) {
	e := newEnv(t)
	acct := e.create(t, "org_a", "ci-pipeline")
	if err := e.svc.Delete(e.ctx, "org_a", acct.ID, "u"); err != nil {
		t.Fatal(err)
	}
	e.create(t, "org_a", "CI-Pipeline")
}

func TestAccountLimitPerOrg(t *testing.T) {
	limits := sa.DefaultLimits
	limits.MaxAccountsPerOrg = 3
	e := newEnv(t, sa.WithLimits(limits))
	var last sa.ServiceAccount
	for i := range 3 {
		last = e.create(t, "org_a", "svc-"+string(rune('a'+i)))
	}
	_, _, err := e.svc.Create(e.ctx, "org_a", "u", sa.CreateInput{Name: "one-too-many"})
	wantCode(t, err, sa.ECONFLICT)
	e.create(t, "org_b", "other-org-unaffected")
	if err := e.svc.Delete(e.ctx, "org_a", last.ID, "u"); err != nil {
		t.Fatal(err)
	}
	e.create(t, "org_a", "fits-again")
}

func TestPagination(t *testing.T) {
	e := newEnv(t)
	var want []string
	for i := range 7 {
		want = append(want, e.create(t, "org_a", "svc-"+string(rune('a'+i))).ID)
		e.clock.Advance(time.Millisecond)
	}
	e.create(t, "org_b", "not-mine")
	var got []string
	cursor := ""
	pages := 0
	for {
		page, err := e.svc.List(e.ctx, "org_a", sa.ListInput{Limit: 3, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, it := range page.Items {
			got = append(got, it.ID)
		}
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
	}
	if pages != 3 || strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("pages=%d got %v, want 3 pages of %v", pages, got, want)
	}
	// An exact multiple of the page size ends without an empty trailing page.
	page, err := e.svc.List(e.ctx, "org_a", sa.ListInput{Limit: 7})
	if err != nil || len(page.Items) != 7 || page.NextCursor != "" {
		t.Fatalf("limit 7: %d items, cursor %q, err %v", len(page.Items), page.NextCursor, err)
	}
}

func TestCursorIsTamperEvident(t *testing.T) {
	e := newEnv(t)
	for i := range 3 {
		e.create(t, "org_a", "a-"+string(rune('a'+i)))
		e.create(t, "org_b", "b-"+string(rune('a'+i)))
	}
	pageB, err := e.svc.List(e.ctx, "org_b", sa.ListInput{Limit: 1})
	if err != nil || pageB.NextCursor == "" {
		t.Fatalf("org_b page: %v %v", pageB, err)
	}
	c := pageB.NextCursor
	flipped := []byte(c)
	flipped[len(flipped)-1] ^= 1
	for name, cursor := range map[string]string{
		"ErrCursorFromOtherOrg": c,
		"ErrCursorAltered":      string(flipped),
		"ErrCursorTruncated":    c[:len(c)-2],
		"ErrCursorHuge":         strings.Repeat("A", 300),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := e.svc.List(e.ctx, "org_a", sa.ListInput{Limit: 1, Cursor: cursor})
			wantCode(t, err, sa.EINVALID)
		})
	}
}

func TestGenerateAndAuthenticate(t *testing.T) {
	e := newEnv(t)
	acct := e.create(t, "org_a", "claude-code")
	tok, secret := e.generate(t, "org_a", acct.ID)
	if !strings.HasPrefix(secret, "otsa_") || len(secret) != 43 || tok.Hint != "otsa_…"+secret[39:] {
		t.Fatalf("secret %q hint %q", secret[:5], tok.Hint)
	}
	if strings.Contains(tok.Hash, secret) || tok.Hash == "" {
		t.Fatal("the stored form must be a hash")
	}
	id, err := e.svc.Authenticate(e.ctx, secret)
	if err != nil {
		t.Fatal(err)
	}
	if id.OrgID != "org_a" || id.ServiceAccountID != acct.ID || id.ServiceAccountName != "claude-code" || id.TokenID != tok.ID {
		t.Fatalf("identity = %+v", id.Credential)
	}
	got, _, err := e.svc.Get(e.ctx, "org_a", acct.ID)
	if err != nil || got.ActiveTokens != 1 {
		t.Fatalf("active tokens = %d (%v), want 1", got.ActiveTokens, err)
	}
}

func TestAuthenticateRejects(t *testing.T) {
	e := newEnv(t)
	acct := e.create(t, "org_a", "claude-code")
	_, secret := e.generate(t, "org_a", acct.ID)
	typo := []byte(secret)
	typo[10] ^= 0x01
	for name, presented := range map[string]string{
		"Empty":       "",
		"WrongPrefix": "otsb_" + secret[5:],
		"Typo":        string(typo),
		"Truncated":   secret[:42],
		"Unknown":     mustToken(t),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := e.svc.Authenticate(e.ctx, presented)
			wantCode(t, err, sa.EUNAUTHORIZED)
		})
	}
}

func TestRevokedTokenFailsOnNextCall(t *testing.T) {
	e := newEnv(t)
	acct := e.create(t, "org_a", "claude-code")
	tok, secret := e.generate(t, "org_a", acct.ID)
	_, keep := e.generate(t, "org_a", acct.ID)
	if _, err := e.svc.Authenticate(e.ctx, secret); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.RevokeToken(e.ctx, "org_a", acct.ID, tok.ID, "user_2"); err != nil {
		t.Fatal(err)
	}
	_, err := e.svc.Authenticate(e.ctx, secret)
	wantCode(t, err, sa.EUNAUTHORIZED)
	if _, err := e.svc.Authenticate(e.ctx, keep); err != nil {
		t.Fatalf("the other token must keep working: %v", err)
	}
	// Revoking again succeeds and changes nothing.
	if err := e.svc.RevokeToken(e.ctx, "org_a", acct.ID, tok.ID, "user_2"); err != nil {
		t.Fatal(err)
	}
	got, tokens, err := e.svc.Get(e.ctx, "org_a", acct.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.ActiveTokens != 1 || len(tokens) != 2 || tokens[0].Status(e.clock.Now()) != sa.StatusRevoked || tokens[0].RevokedAt == nil {
		t.Fatalf("after revoke: active=%d tokens=%+v", got.ActiveTokens, tokens)
	}
	stored, err := e.store.GetServiceAccount(e.ctx, "org_a", acct.ID)
	if err != nil || stored.ActiveTokens != 1 {
		t.Fatalf("stored counter = %d (%v), want 1", stored.ActiveTokens, err)
	}
}

func TestDeleteRevokesEveryToken(t *testing.T) {
	e := newEnv(t)
	acct := e.create(t, "org_a", "claude-code")
	var secrets []string
	for range 3 {
		_, s := e.generate(t, "org_a", acct.ID)
		secrets = append(secrets, s)
	}
	revoked, s := e.generate(t, "org_a", acct.ID)
	secrets = append(secrets, s)
	if err := e.svc.RevokeToken(e.ctx, "org_a", acct.ID, revoked.ID, "u"); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.Delete(e.ctx, "org_a", acct.ID, "u"); err != nil {
		t.Fatal(err)
	}
	for _, s := range secrets {
		_, err := e.svc.Authenticate(e.ctx, s)
		wantCode(t, err, sa.EUNAUTHORIZED)
	}
	_, _, err := e.svc.Get(e.ctx, "org_a", acct.ID)
	wantCode(t, err, sa.ENOTFOUND)
	assertOnlyTrailRemains(t, e, "org_a")
	wantCode(t, e.svc.Delete(e.ctx, "org_a", acct.ID, "u"), sa.ENOTFOUND)
}

func TestActiveTokenCap(t *testing.T) {
	limits := sa.DefaultLimits
	limits.MaxActiveTokens = 2
	e := newEnv(t, sa.WithLimits(limits))
	acct := e.create(t, "org_a", "claude-code")
	first, _ := e.generate(t, "org_a", acct.ID)
	e.generate(t, "org_a", acct.ID)
	_, _, err := e.svc.GenerateToken(e.ctx, "org_a", acct.ID, "u", sa.GenerateInput{})
	wantCode(t, err, sa.ECONFLICT)
	if err := e.svc.RevokeToken(e.ctx, "org_a", acct.ID, first.ID, "u"); err != nil {
		t.Fatal(err)
	}
	e.generate(t, "org_a", acct.ID)
}

func TestExpiry(t *testing.T) {
	limits := sa.DefaultLimits
	limits.MaxActiveTokens = 1
	e := newEnv(t, sa.WithLimits(limits))
	acct := e.create(t, "org_a", "claude-code")
	tok, secret, err := e.svc.GenerateToken(e.ctx, "org_a", acct.ID, "u", sa.GenerateInput{Name: "ci", ExpiresInDays: intp(30)})
	if err != nil {
		t.Fatal(err)
	}
	if want := e.clock.Now().AddDate(0, 0, 30); tok.ExpiresAt == nil || !tok.ExpiresAt.Equal(want) {
		t.Fatalf("expiresAt = %v, want %v", tok.ExpiresAt, want)
	}
	e.clock.Advance(30*24*time.Hour - time.Millisecond)
	if _, err := e.svc.Authenticate(e.ctx, secret); err != nil {
		t.Fatalf("just before expiry: %v", err)
	}
	e.clock.Advance(time.Millisecond)
	_, err = e.svc.Authenticate(e.ctx, secret)
	wantCode(t, err, sa.EUNAUTHORIZED)
	// An expired token does not hold its slot: a new one can be generated at the cap.
	e.generate(t, "org_a", acct.ID)
	_, tokens, err := e.svc.Get(e.ctx, "org_a", acct.ID)
	if err != nil || len(tokens) != 2 || tokens[0].Status(e.clock.Now()) != sa.StatusExpired {
		t.Fatalf("tokens = %+v, %v", tokens, err)
	}
}

func TestMaxTokenLifetime(t *testing.T) {
	limits := sa.DefaultLimits
	limits.MaxTokenLifetimeDays = 90
	e := newEnv(t, sa.WithLimits(limits))
	acct := e.create(t, "org_a", "claude-code")
	_, _, err := e.svc.GenerateToken(e.ctx, "org_a", acct.ID, "u", sa.GenerateInput{ExpiresInDays: intp(91)})
	wantCode(t, err, sa.EINVALID)
	tok, _ := e.generate(t, "org_a", acct.ID)
	if want := e.clock.Now().AddDate(0, 0, 90); tok.ExpiresAt == nil || !tok.ExpiresAt.Equal(want) {
		t.Fatalf("default expiry under a maximum = %v, want %v", tok.ExpiresAt, want)
	}
}

func TestRecordUsageWritesOncePerInterval(t *testing.T) {
	e := newEnv(t)
	acct := e.create(t, "org_a", "claude-code")
	_, secret := e.generate(t, "org_a", acct.ID)
	use := func() *time.Time {
		t.Helper()
		id, err := e.svc.Authenticate(e.ctx, secret)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.svc.RecordUsage(e.ctx, id, time.Second); err != nil {
			t.Fatal(err)
		}
		id, _ = e.svc.Authenticate(e.ctx, secret)
		return id.LastUsedAt
	}
	first := use()
	if first == nil || !first.Equal(e.clock.Now()) {
		t.Fatalf("lastUsedAt = %v, want %v", first, e.clock.Now())
	}
	e.clock.Advance(59 * time.Second)
	if got := use(); !got.Equal(*first) {
		t.Fatalf("inside the interval lastUsedAt moved to %v", got)
	}
	e.clock.Advance(time.Second)
	if got := use(); !got.Equal(e.clock.Now()) {
		t.Fatalf("after the interval lastUsedAt = %v, want %v", got, e.clock.Now())
	}
}

func TestTenantIsolation(t *testing.T) {
	e := newEnv(t)
	a := e.create(t, "org_a", "shared-name")
	b := e.create(t, "org_b", "shared-name")
	tokB, secretB := e.generate(t, "org_b", b.ID)

	_, _, err := e.svc.Get(e.ctx, "org_a", b.ID)
	wantCode(t, err, sa.ENOTFOUND)
	_, err = e.svc.ListTokens(e.ctx, "org_a", b.ID)
	wantCode(t, err, sa.ENOTFOUND)
	_, _, err = e.svc.GenerateToken(e.ctx, "org_a", b.ID, "u", sa.GenerateInput{})
	wantCode(t, err, sa.ENOTFOUND)
	wantCode(t, e.svc.RevokeToken(e.ctx, "org_a", b.ID, tokB.ID, "u"), sa.ENOTFOUND)
	wantCode(t, e.svc.RevokeToken(e.ctx, "org_a", a.ID, tokB.ID, "u"), sa.ENOTFOUND)
	wantCode(t, e.svc.Delete(e.ctx, "org_a", b.ID, "u"), sa.ENOTFOUND)

	page, err := e.svc.List(e.ctx, "org_a", sa.ListInput{})
	if err != nil || len(page.Items) != 1 || page.Items[0].ID != a.ID {
		t.Fatalf("org_a lists %+v (%v)", page.Items, err)
	}
	// org_b is untouched by all of the above.
	got, tokens, err := e.svc.Get(e.ctx, "org_b", b.ID)
	if err != nil || got.ActiveTokens != 1 || len(tokens) != 1 || tokens[0].RevokedAt != nil {
		t.Fatalf("org_b after org_a's attempts: %+v %+v %v", got, tokens, err)
	}
	if id, err := e.svc.Authenticate(e.ctx, secretB); err != nil || id.OrgID != "org_b" {
		t.Fatalf("org_b token: %+v %v", id, err)
	}
}

func mustToken(t *testing.T) string {
	t.Helper()
	e := newEnv(t)
	acct := e.create(t, "org_z", "elsewhere")
	_, s := e.generate(t, "org_z", acct.ID)
	return s
}

// TestPepperRotation: a rotation in two phases never refuses a good token, although
// instances see each change of the secret at different times (each caches it for up to five
// minutes), while the one-step rotation it replaces does.
//
// Before: {current v1}. Phase 1: {current v1, next v2}. Phase 2, once every instance holds
// phase 1: {current v2, previous v1}. Done, once no token hashed with v1 is left: {current v2}.
func TestPepperRotation(t *testing.T) {
	e := newEnv(t)
	acct := e.create(t, "org_a", "claude-code")
	v1, v2 := testPepper, token.Pepper{Version: "2", Key: []byte(strings.Repeat("n", 48))}
	instance := func(r secrets.Ring) *sa.Service { // one warm instance with its cached keyring
		t.Helper()
		src, err := secrets.NewStatic(r)
		if err != nil {
			t.Fatal(err)
		}
		return sa.NewService(e.store, secrets.Peppers{Source: src}, sa.WithClock(e.clock.Now))
	}
	before := instance(secrets.Ring{Current: v1})
	phase1 := instance(secrets.Ring{Current: v1, Next: &v2})
	phase2 := instance(secrets.Ring{Current: v2, Previous: &v1})
	done := instance(secrets.Ring{Current: v2})
	issue := func(by *sa.Service, want string) string {
		t.Helper()
		tok, secret, err := by.GenerateToken(e.ctx, "org_a", acct.ID, "u", sa.GenerateInput{})
		if err != nil || tok.PepperVersion != want {
			t.Fatalf("issued under version %q (%v), want %s", tok.PepperVersion, err, want)
		}
		return secret
	}
	accepts := func(who string, by *sa.Service, secret string, want bool) {
		t.Helper()
		_, err := by.Authenticate(e.ctx, secret)
		if (err == nil) != want {
			t.Fatalf("%s: accepted = %v (%v), want %v", who, err == nil, err, want)
		}
	}

	// Phase 1 beside instances still on the old keyring: next is never used to issue, so
	// every token issued is one every instance accepts.
	old := issue(before, "1")
	fromPhase1 := issue(phase1, "1")
	for _, by := range []*sa.Service{before, phase1} {
		accepts("phase 1 beside the old keyring", by, old, true)
		accepts("phase 1 beside the old keyring", by, fromPhase1, true)
	}

	// Phase 2 beside instances still on phase 1: a token issued with the new pepper is accepted
	// through next, the old tokens through current and previous.
	fresh := issue(phase2, "2")
	for _, by := range []*sa.Service{phase1, phase2} {
		for _, secret := range []string{old, fromPhase1, fresh} {
			accepts("phase 2 beside phase 1", by, secret, true)
		}
	}

	// What the two phases prevent: an instance that skipped phase 1 refuses the new token.
	accepts("the old keyring, had phase 1 been skipped", before, fresh, false)

	// Done: previous is removed once the tokens hashed with it are gone, and only then do they
	// stop working.
	accepts("done", done, fresh, true)
	accepts("done", done, old, false)
}

// TestLookAlikeNames: names that look the same are one name, and names that look like nothing
// are not names. Composed and decomposed spellings, fullwidth forms and case all meet in the
// uniqueness key; the name is stored in NFC; blank-looking names and line separators are 400;
// spaces within a name stay allowed.
func TestLookAlikeNames(t *testing.T) {
	e := newEnv(t)
	nfc, nfd := "caf\u00e9-bot-svc", "cafe\u0301-bot-svc"
	acct, _, err := e.svc.Create(e.ctx, "org_a", "u", sa.CreateInput{Name: nfd})
	if err != nil {
		t.Fatal(err)
	}
	if acct.Name != nfc {
		t.Fatalf("stored %q, want the NFC spelling %q", acct.Name, nfc)
	}
	for _, same := range []string{nfc, "CAF\u00c9-BOT-SVC", "\uff43\uff41\uff46\u00e9-bot-svc"} {
		_, _, err := e.svc.Create(e.ctx, "org_a", "u", sa.CreateInput{Name: same})
		wantCode(t, err, sa.ECONFLICT)
	}
	for name, blank := range map[string]string{
		"HangulFiller": "\u3164", "HangulFillers": "\u3164\u3164 \u3164", "BrailleBlank": "\u2800\u2800",
		"HalfwidthFiller": "\uffa0", "IdeographicSpace": "\u3000",
	} {
		t.Run(name, func(t *testing.T) {
			_, _, err := e.svc.Create(e.ctx, "org_a", "u", sa.CreateInput{Name: blank})
			wantCode(t, err, sa.EINVALID)
		})
	}
	for name, sep := range map[string]string{"LineSeparator": "ci\u2028bot", "ParagraphSeparator": "ci\u2029bot"} {
		t.Run(name, func(t *testing.T) {
			_, _, err := e.svc.Create(e.ctx, "org_a", "u", sa.CreateInput{Name: sep})
			wantCode(t, err, sa.EINVALID)
		})
	}
	if _, _, err := e.svc.Create(e.ctx, "org_a", "u", sa.CreateInput{Name: "Claude Code"}); err != nil {
		t.Fatalf("a name with a space: %v", err)
	}
}

// TestActiveTokensAgree: the list and the single-account route give the same count of active
// tokens, whatever state the tokens are in: an expired token that nothing has retired yet is
// no longer active in either, although it still holds its slot.
func TestActiveTokensAgree(t *testing.T) {
	e := newEnv(t)
	acct := e.create(t, "org_a", "claude-code")
	day := 1
	gen := func(in sa.GenerateInput) sa.Token {
		t.Helper()
		tok, _, err := e.svc.GenerateToken(e.ctx, "org_a", acct.ID, "u", in)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	gen(sa.GenerateInput{})                               // never expires
	gen(sa.GenerateInput{ExpiresInDays: &day})            // expires tomorrow, never retired
	revoked := gen(sa.GenerateInput{ExpiresInDays: &day}) // expires tomorrow, revoked today
	if err := e.svc.RevokeToken(e.ctx, "org_a", acct.ID, revoked.ID, "u"); err != nil {
		t.Fatal(err)
	}
	counts := func() (listed, single int) {
		t.Helper()
		page, err := e.svc.List(e.ctx, "org_a", sa.ListInput{})
		if err != nil || len(page.Items) != 1 {
			t.Fatalf("list: %+v %v", page, err)
		}
		got, _, err := e.svc.Get(e.ctx, "org_a", acct.ID)
		if err != nil {
			t.Fatal(err)
		}
		return page.Items[0].ActiveTokens, got.ActiveTokens
	}
	if listed, single := counts(); listed != 2 || single != 2 {
		t.Fatalf("today: list %d, single %d; want 2 and 2", listed, single)
	}
	e.clock.Advance(49 * time.Hour)
	if listed, single := counts(); listed != 1 || single != 1 {
		t.Fatalf("once a token has expired: list %d, single %d; want 1 and 1", listed, single)
	}
}
