package apigw

import (
	"time"

	sa "github.com/opentrace/service-accounts/pkg/serviceaccount"
)

// The response bodies of the contract. Times are RFC 3339 UTC; absent times are null.

type accountJSON struct {
	ID           string     `json:"id"`
	Name         string     `json:"name"`
	Description  string     `json:"description"`
	CreatedAt    time.Time  `json:"createdAt"`
	CreatedBy    string     `json:"createdBy"`
	ActiveTokens int        `json:"activeTokens"`
	LastUsedAt   *time.Time `json:"lastUsedAt"`
}

func newAccountJSON(a sa.ServiceAccount) accountJSON {
	return accountJSON{
		ID: a.ID, Name: a.Name, Description: a.Description, CreatedAt: a.CreatedAt.UTC(),
		CreatedBy: a.CreatedBy, ActiveTokens: a.ActiveTokens, LastUsedAt: utc(a.LastUsedAt),
	}
}

type warningJSON struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

type createdAccountJSON struct {
	accountJSON
	Warnings []warningJSON `json:"warnings"`
}

type accountWithTokensJSON struct {
	accountJSON
	Tokens []tokenJSON `json:"tokens"`
}

type accountListJSON struct {
	Items      []accountJSON `json:"items"`
	NextCursor *string       `json:"nextCursor"`
}

type tokenJSON struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Hint       string     `json:"hint"`
	Status     string     `json:"status"`
	CreatedAt  time.Time  `json:"createdAt"`
	CreatedBy  string     `json:"createdBy"`
	ExpiresAt  *time.Time `json:"expiresAt"`
	LastUsedAt *time.Time `json:"lastUsedAt"`
	RevokedAt  *time.Time `json:"revokedAt"`
}

type tokenListJSON struct {
	Items []tokenJSON `json:"items"`
}

type issuedTokenJSON struct {
	tokenJSON
	Token string `json:"token"`
}

func (a *API) tokenJSON(t sa.Token) tokenJSON {
	return tokenJSON{
		ID: t.ID, Name: t.Name, Hint: t.Hint, Status: t.Status(a.Service.Now()),
		CreatedAt: t.CreatedAt.UTC(), CreatedBy: t.CreatedBy, ExpiresAt: utc(t.ExpiresAt),
		LastUsedAt: utc(t.LastUsedAt), RevokedAt: utc(t.RevokedAt),
	}
}

func (a *API) tokensJSON(ts []sa.Token) []tokenJSON {
	out := make([]tokenJSON, 0, len(ts))
	for _, t := range ts {
		out = append(out, a.tokenJSON(t))
	}
	return out
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}
