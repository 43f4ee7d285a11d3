// Package identity takes the identity provider's webhooks: POST /v1/identity/webhooks, which
// API Gateway serves without the authorizer, since the provider holds no token of ours. Each
// delivery is signed the Svix way (the provider sends through Svix); one that does not verify
// changes nothing. The one event acted on is organization.deleted: the org gets its tombstone,
// after which its writes are refused and the table's stream starts the sweep of its tokens.
package identity

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
	svix "github.com/svix/svix-webhooks/go"

	"github.com/opentrace/service-accounts/pkg/apigw"
	"github.com/opentrace/service-accounts/pkg/config"
	sa "github.com/opentrace/service-accounts/pkg/serviceaccount"
)

const (
	// MaxBodyBytes bounds a delivery: the provider's events are a few hundred bytes.
	MaxBodyBytes = 64 << 10
	// OrgDeleted is the one event type acted on.
	OrgDeleted = "organization.deleted"
	// secretRefresh is how old the signing secret may be before a delivery that does not
	// verify makes the handler read it again: a secret rotated at the provider reaches warm
	// instances within it, and forged deliveries cannot make it read more often.
	secretRefresh = 5 * time.Minute
)

// Store is what the handler needs from the table.
type Store interface {
	// DeleteOrg writes orgID's tombstone and records organization.deleted, reporting false
	// (and changing nothing) when the org already has one. Errors: EUNAVAILABLE, EINTERNAL.
	DeleteOrg(ctx context.Context, orgID, messageID string, at, purgeAt time.Time) (bool, error)
}

// Handler serves POST /v1/identity/webhooks.
type Handler struct {
	Store Store
	// Secret reads the webhook's signing secret ("whsec_" and base64, as the provider shows
	// it) from where it is kept.
	Secret func(ctx context.Context) (string, error)
	// Retention is how long a deleted org's data is kept before the audit purges it.
	Retention time.Duration
	Now       func() time.Time // nil is time.Now
	Log       *slog.Logger

	mu       sync.Mutex
	verifier *svix.Webhook
	readAt   time.Time
}

// Handle verifies a delivery and acts on it. Answers:
//   - 401: no valid signature, or a timestamp more than five minutes away (a replay);
//   - 413: a body over MaxBodyBytes; 400: a body that is not the event it claims to be;
//   - 200: organization.deleted acted on (or already acted on: a repeated delivery changes
//     nothing); any other event type acknowledged and ignored, so the provider stops sending it;
//   - 5xx: the secret or the table could not be read, so the provider retries later.
func (h *Handler) Handle(ctx context.Context, req events.APIGatewayProxyRequest) (events.APIGatewayProxyResponse, error) {
	body, tooLarge := requestBody(req)
	if tooLarge {
		resp := apigw.Respond(http.StatusRequestEntityTooLarge, apigw.Problem{
			Type: apigw.ProblemTypeBase + "too_large", Title: http.StatusText(http.StatusRequestEntityTooLarge),
			Status: http.StatusRequestEntityTooLarge, Detail: fmt.Sprintf("A webhook body is at most %d bytes.", MaxBodyBytes),
		}, nil)
		resp.Headers["Content-Type"] = "application/problem+json"
		return resp, nil
	}
	headers := http.Header{}
	for k, vs := range req.MultiValueHeaders {
		headers[http.CanonicalHeaderKey(k)] = vs
	}
	for k, v := range req.Headers {
		if _, ok := headers[http.CanonicalHeaderKey(k)]; !ok {
			headers.Set(k, v)
		}
	}
	if err := h.verify(ctx, body, headers); err != nil {
		if sa.ErrorCode(err) != sa.EUNAUTHORIZED {
			h.log().Error("webhook verification could not run", slog.String("error", err.Error()))
		} else {
			h.log().Warn("webhook refused", slog.String("reason", err.Error()), slog.String("svixId", svixID(headers)))
		}
		return apigw.Respond(0, nil, err), nil
	}
	var ev struct {
		Type string `json:"type"`
		Data struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &ev); err != nil || ev.Type == "" {
		return apigw.Respond(0, nil, sa.Invalid(sa.FieldError{Field: "body", Message: "is not a webhook event"})), nil
	}
	if ev.Type != OrgDeleted {
		h.log().Info("webhook ignored", slog.String("type", ev.Type), slog.String("svixId", svixID(headers)))
		return apigw.Respond(http.StatusOK, map[string]any{"type": ev.Type, "acted": false}, nil), nil
	}
	if !sa.ValidOrgID(ev.Data.ID) {
		return apigw.Respond(0, nil, sa.Invalid(sa.FieldError{Field: "data.id", Message: "must name an organization"})), nil
	}
	at := h.now().UTC().Truncate(time.Millisecond)
	created, err := h.Store.DeleteOrg(ctx, ev.Data.ID, svixID(headers), at, at.Add(h.Retention))
	if err != nil {
		h.log().Error("org deletion failed", slog.String("orgId", ev.Data.ID), slog.String("code", sa.ErrorCode(err)), slog.String("error", err.Error()))
		return apigw.Respond(0, nil, err), nil
	}
	h.log().Info("org deleted at the identity provider", slog.String("orgId", ev.Data.ID), slog.Bool("repeated", !created),
		slog.String("svixId", svixID(headers)))
	return apigw.Respond(http.StatusOK, map[string]any{"type": ev.Type, "acted": true, "organization": ev.Data.ID, "repeated": !created}, nil), nil
}

// verify checks the delivery's signature and timestamp. A delivery that does not verify with a
// secret read more than secretRefresh ago is checked again with the secret read afresh.
// Errors: EUNAUTHORIZED (refused), EUNAVAILABLE (the secret could not be read), EINTERNAL (the
// secret is not a signing secret).
func (h *Handler) verify(ctx context.Context, body []byte, headers http.Header) error {
	wh, fresh, err := h.verifierFor(ctx, false)
	if err != nil {
		return err
	}
	err = wh.Verify(body, headers)
	if err != nil && !fresh {
		if wh, _, err = h.verifierFor(ctx, true); err != nil {
			return err
		}
		err = wh.Verify(body, headers)
	}
	if err != nil {
		// The library's messages name the failure (missing headers, no matching signature, a
		// timestamp too old or too new), never the secret.
		return &sa.Error{Code: sa.EUNAUTHORIZED, Message: "The webhook's signature does not verify.", Err: err}
	}
	return nil
}

// verifierFor returns the verifier for the signing secret, reading the secret when none is
// held, or when refresh is asked and the one held is older than secretRefresh. fresh reports
// that the secret was read just now, or recently enough not to read it again.
func (h *Handler) verifierFor(ctx context.Context, refresh bool) (*svix.Webhook, bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.now()
	if h.verifier != nil && (!refresh || now.Sub(h.readAt) < secretRefresh) {
		return h.verifier, now.Sub(h.readAt) < secretRefresh, nil
	}
	secret, err := h.Secret(ctx)
	if err != nil {
		return nil, false, sa.Unavailable(fmt.Errorf("read the webhook signing secret: %w", err))
	}
	// The library takes an empty key for a valid one, which anyone could sign with.
	raw, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if len(raw) < 16 {
		return nil, false, sa.Internal(errors.New("the webhook signing secret is not a whsec_ secret of at least 16 bytes"))
	}
	wh, err := svix.NewWebhook(secret)
	if err != nil {
		return nil, false, sa.Internal(errors.New("the webhook signing secret is not a whsec_ secret"))
	}
	h.verifier, h.readAt = wh, now
	return wh, true, nil
}

func (h *Handler) now() time.Time {
	if h.Now == nil {
		return time.Now()
	}
	return h.Now()
}

func (h *Handler) log() *slog.Logger {
	if h.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return h.Log
}

// requestBody returns the delivery's body, and whether it is over MaxBodyBytes.
func requestBody(req events.APIGatewayProxyRequest) ([]byte, bool) {
	if !req.IsBase64Encoded {
		return []byte(req.Body), len(req.Body) > MaxBodyBytes
	}
	if base64.StdEncoding.DecodedLen(len(req.Body)) > MaxBodyBytes+2 {
		return nil, true
	}
	b, err := base64.StdEncoding.DecodeString(req.Body)
	if err != nil {
		return nil, false // not a body any signature covers: refused as unsigned
	}
	return b, len(b) > MaxBodyBytes
}

func svixID(h http.Header) string {
	if id := h.Get("svix-id"); id != "" {
		return id
	}
	return h.Get("webhook-id")
}

// Environment variables of the webhook function (template.yaml sets them).
const (
	EnvSecret        = "IDENTITY_WEBHOOK_SECRET_ID"
	EnvRetentionDays = "DELETED_ORG_RETENTION_DAYS"
)

// RetentionFromEnv reads how many days a deleted org's data is kept: 1 to 3650, 30 if unset.
func RetentionFromEnv(getenv func(string) string) (time.Duration, error) {
	days, err := config.Int(getenv, EnvRetentionDays, 1, 3650, 30)
	return time.Duration(days) * 24 * time.Hour, err
}
