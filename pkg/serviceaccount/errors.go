package serviceaccount

import (
	"errors"
	"fmt"
)

// Application error codes. Each maps to exactly one HTTP status, in one place (pkg/apigw), so the
// domain never speaks HTTP and the adapters never invent their own classes of failure.
const (
	EINVALID      = "invalid"      // the caller sent something the rules reject
	ENOTFOUND     = "not_found"    // no such resource in the caller's org
	ECONFLICT     = "conflict"     // the request is valid but clashes with current state
	EUNAUTHORIZED = "unauthorized" // no usable credential
	EFORBIDDEN    = "forbidden"    // a valid identity acting outside what it may do
	EUNAVAILABLE  = "unavailable"  // a dependency failed or throttled; retrying may succeed
	EINTERNAL     = "internal"     // a bug or an unexpected failure; details stay in the logs
)

// Error is the one application error type. Message is safe to show to the caller; Err is the
// internal cause, which is logged but never returned to a client.
type Error struct {
	Code    string
	Message string
	Fields  []FieldError
	Err     error
}

// FieldError names one invalid input field and says what is wrong with it.
type FieldError struct {
	Field   string
	Message string
}

// Error returns the public message followed by the internal cause, for logs.
func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return e.Code + ": " + e.Message
}

// Unwrap returns the internal cause, so errors.Is and errors.As see through an *Error.
func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with the given code and a formatted public message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Invalid returns an EINVALID error listing each bad field.
func Invalid(fields ...FieldError) *Error {
	msg := "The request is invalid."
	if len(fields) == 1 {
		msg = fields[0].Message
	}
	return &Error{Code: EINVALID, Message: msg, Fields: fields}
}

// Unavailable wraps a dependency failure as EUNAVAILABLE, keeping the cause for the logs.
func Unavailable(err error) *Error {
	return &Error{Code: EUNAVAILABLE, Message: "A dependency is unavailable; retry shortly.", Err: err}
}

// Internal wraps an unexpected failure as EINTERNAL, keeping the cause for the logs.
func Internal(err error) *Error {
	return &Error{Code: EINTERNAL, Message: "Internal error.", Err: err}
}

// ErrorCode returns the code of the first *Error in err's chain, EINTERNAL for any other
// non-nil error, and "" for nil.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the public message of the first *Error in err's chain, and
// "Internal error." for anything else, so internals never reach a caller.
func ErrorMessage(err error) string {
	if e, ok := errors.AsType[*Error](err); ok && e.Code != EINTERNAL {
		return e.Message
	}
	return "Internal error."
}

// NotFound is the one way a missing account, token or other thing is reported: ENOTFOUND,
// "The <what> does not exist." Every "not found" of the system reads the same, so an id of
// another org is indistinguishable from an invented one.
func NotFound(what string) *Error { return Errorf(ENOTFOUND, "The %s does not exist.", what) }
