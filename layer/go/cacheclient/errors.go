package cacheclient

import (
	"errors"
	"strings"
	"time"
)

// Error is every failure the client reports, or what a kind-specific error wraps: test for it with
// errors.As(err, &e) where e is a *Error. Its message names the route and the name, never a value or the token.
type Error struct {
	// Status is the HTTP status of the extension's answer, 0 without one (no answer, a bad option, a bad value).
	Status int
	// Code is the extension's "error" field: NotConfigured, RateLimited, an AWS error code, ...; "" without one.
	Code string
	// RetryAfter is the answer's Retry-After in seconds (the extension sends one, at least 1 s, with 429
	// RateLimited). HasRetryAfter says whether there was one in delta-seconds form: digits only, so an
	// HTTP-date, a fraction or any other text is ignored.
	RetryAfter    time.Duration
	HasRetryAfter bool

	msg   string
	cause error // what failed underneath (a network error, a context's), for errors.Is; never a value
}

func (e *Error) Error() string { return "cacheclient: " + e.msg }

// Unwrap gives what failed underneath, if anything: a network error or context.DeadlineExceeded, say.
func (e *Error) Unwrap() error { return e.cause }

// Sentinels for errors.Is: errors.Is(err, cacheclient.ErrNotFound).
var (
	ErrNotFound    = errors.New("cacheclient: not found")
	ErrUpstream    = errors.New("cacheclient: upstream failure")
	ErrUnavailable = errors.New("cacheclient: extension unavailable")
	// ErrInvalidArgument is wrapped by the errors of a bad call (an empty name, an unknown source): no request
	// is made. These are not *Error.
	ErrInvalidArgument = errors.New("cacheclient: invalid argument")
)

// NotFoundError is a 404: the name is not configured in config.yaml (Code "NotConfigured"), or not found upstream.
type NotFoundError struct{ Err *Error }

// UpstreamError is a 502 or 504: AWS failed and the extension had nothing to serve.
type UpstreamError struct{ Err *Error }

// UnavailableError is no answer: the extension is not running, was still starting past the start-up timeout
// (Status 503 when it answered so), or did not answer in time.
type UnavailableError struct{ Err *Error }

func (e *NotFoundError) Error() string    { return e.Err.Error() }
func (e *NotFoundError) Unwrap() error    { return e.Err }
func (e *NotFoundError) Is(t error) bool  { return t == ErrNotFound }
func (e *UpstreamError) Error() string    { return e.Err.Error() }
func (e *UpstreamError) Unwrap() error    { return e.Err }
func (e *UpstreamError) Is(t error) bool  { return t == ErrUpstream }
func (e *UnavailableError) Error() string { return e.Err.Error() }
func (e *UnavailableError) Unwrap() error { return e.Err }
func (e *UnavailableError) Is(t error) bool {
	return t == ErrUnavailable
}

// statusError is the error for an answer of this status: a kind for 404, 502 and 504, else the plain *Error.
func statusError(base *Error) error {
	switch base.Status {
	case 404:
		return &NotFoundError{base}
	case 502, 504:
		return &UpstreamError{base}
	}
	return base
}

func unavailable(base *Error) error { return &UnavailableError{base} }

func invalid(text string) error { return &argumentError{text} }

type argumentError struct{ text string }

func (e *argumentError) Error() string   { return "cacheclient: " + e.text }
func (e *argumentError) Is(t error) bool { return t == ErrInvalidArgument }

// maxSeconds bounds Retry-After and max-age: a larger number counts as this (RFC 9110 1.2.2's rule for
// delta-seconds), and a long digit string is never parsed as a whole.
const maxSeconds = 1 << 31

// deltaSeconds parses delta-seconds (RFC 9110: ASCII digits only); ok is false for anything else.
func deltaSeconds(text string) (seconds int64, ok bool) {
	if text == "" {
		return 0, false
	}
	for i := 0; i < len(text); i++ {
		if text[i] < '0' || text[i] > '9' {
			return 0, false
		}
	}
	text = strings.TrimLeft(text, "0")
	if len(text) > 10 {
		return maxSeconds, true
	}
	for i := 0; i < len(text); i++ {
		seconds = seconds*10 + int64(text[i]-'0')
	}
	if seconds > maxSeconds {
		seconds = maxSeconds
	}
	return seconds, true
}

// retryAfter reads a Retry-After header: delta-seconds only.
func retryAfter(value string) (time.Duration, bool) {
	seconds, ok := deltaSeconds(strings.Trim(value, " \t"))
	return time.Duration(seconds) * time.Second, ok
}

// maxAge is Cache-Control's max-age in whole seconds: 0 when absent, not digits, given twice (stale, as RFC 9111
// 4.2.1 says), or beside no-store or no-cache.
func maxAge(value string) time.Duration {
	if value == "" {
		return 0
	}
	var seconds int64
	seen := false
	for _, directive := range strings.Split(strings.ToLower(value), ",") {
		key, argument, _ := strings.Cut(directive, "=")
		switch strings.TrimSpace(key) {
		case "no-store", "no-cache":
			return 0
		case "max-age":
			n, ok := deltaSeconds(strings.Trim(strings.TrimSpace(argument), `"`))
			if seen || !ok {
				return 0
			}
			seen, seconds = true, n
		}
	}
	return time.Duration(seconds) * time.Second
}
