package authorizer

import (
	"errors"
	"testing"

	sa "github.com/opentrace/service-accounts/pkg/serviceaccount"
)

// TestReasonWithoutCause: a refusal whose error carries no cause is logged by its message; it
// used to panic the authorizer (errors.Unwrap returned nil).
func TestReasonWithoutCause(t *testing.T) {
	for err, want := range map[error]string{
		sa.Errorf(sa.EUNAUTHORIZED, "Unauthorized"):                                            "unauthorized: Unauthorized",
		&sa.Error{Code: sa.EUNAUTHORIZED, Message: "Unauthorized", Err: errors.New("expired")}: "expired",
	} {
		if got := reason(err); got != want {
			t.Errorf("reason(%v) = %q, want %q", err, got, want)
		}
	}
}
