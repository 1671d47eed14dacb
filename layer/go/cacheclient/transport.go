package cacheclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"syscall"
	"time"
)

// missingToken is the same words in every client: what to set when there is no token. Without one the extension
// answers 401, so the client says so itself, before it connects, rather than send a request that must fail.
const missingToken = "no token for the cache extension, so nothing was sent: set CACHE_EXTENSION_TOKEN to the " +
	"extension's token (on Lambda, AWS_SESSION_TOKEN, or AWS_CONTAINER_AUTHORIZATION_TOKEN with SnapStart, is set " +
	"for you; AWS_TOKEN is read too)"

const (
	tokenHeader = "X-Aws-Parameters-Secrets-Token"
	maxBody     = 64 << 20 // a DynamoDB item is at most 400 KB; anything near this is not the extension
	firstDelay  = 10 * time.Millisecond
	maxDelay    = 100 * time.Millisecond
	// Connections to the extension, at most: a function's goroutines share them.
	maxConns = 4
)

// answer is one HTTP answer of the extension, read whole.
type answer struct {
	status        int
	contentType   string
	body          []byte
	maxAge        time.Duration
	retryAfter    time.Duration
	hasRetryAfter bool
}

// transport speaks HTTP/1.1 to the extension on 127.0.0.1 only, never through a proxy (HTTP_PROXY must never
// see the token). GETs share kept-alive connections; a POST goes on a connection of its own, so that one the
// extension closed while idle (say while Lambda froze the environment) cannot fail it after it was sent: a
// POST is never sent twice.
type transport struct {
	port      int
	token     string
	keepAlive *http.Client
	oneShot   *http.Client
}

func newTransport(port int, token string, dialTimeout time.Duration) *transport {
	address := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	dialer := &net.Dialer{Timeout: dialTimeout}
	dial := func(ctx context.Context, _, _ string) (net.Conn, error) {
		return dialer.DialContext(ctx, "tcp", address)
	}
	keepAlive := &http.Transport{DialContext: dial, MaxIdleConns: maxConns, MaxIdleConnsPerHost: maxConns,
		MaxConnsPerHost: maxConns, DisableCompression: true}
	oneShot := &http.Transport{DialContext: dial, DisableKeepAlives: true, DisableCompression: true}
	return &transport{port: port, token: token, keepAlive: &http.Client{Transport: keepAlive},
		oneShot: &http.Client{Transport: oneShot}}
}

func (t *transport) closeIdle() {
	t.keepAlive.CloseIdleConnections()
}

// call makes one request and returns its 200 answer, or the error its answer or its failure means. While the
// extension starts, a refused connection is retried, and for a GET (idempotent) also a connection closed before
// any answer and 503, until startup has passed. A POST is never sent twice. Without a token nothing is sent: an
// *Error with Code "MissingToken" and Status 0.
func (t *transport) call(ctx context.Context, method, target, what string, timeout, startup time.Duration) (*answer, error) {
	if t.token == "" {
		return nil, &Error{Code: "MissingToken", msg: what + ": " + missingToken}
	}
	if !headerSafe(t.token) {
		// Never sent, never echoed: a header cannot carry it, and CR or LF would inject headers.
		return nil, &Error{msg: "the token has characters an HTTP header cannot carry"}
	}
	deadline := time.Now().Add(startup)
	delay := firstDelay
	for {
		a, err := t.once(ctx, method, target, timeout)
		var reason string
		switch {
		case err != nil:
			if !startupFailure(err, method) || ctx.Err() != nil {
				return nil, unavailable(&Error{cause: err, msg: fmt.Sprintf(
					"%s: no answer from the cache extension on 127.0.0.1:%d within %v (%s)", what, t.port, timeout, failure(err))})
			}
			reason = failure(err)
		case a.status == http.StatusOK:
			return a, nil
		case a.status == http.StatusServiceUnavailable && method == http.MethodGet:
			reason = "503 not ready"
		default:
			return nil, answerError(a, what)
		}
		if time.Now().Add(delay).After(deadline) {
			base := &Error{cause: err, msg: fmt.Sprintf("%s: the cache extension is not reachable on 127.0.0.1:%d after %v (%s)",
				what, t.port, startup, reason)}
			if a != nil { // 503 until the end
				base.Status, base.RetryAfter, base.HasRetryAfter = a.status, a.retryAfter, a.hasRetryAfter
			}
			return nil, unavailable(base)
		}
		timer := time.NewTimer(delay) // the extension may still be starting: back off briefly
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil, unavailable(&Error{cause: ctx.Err(), msg: fmt.Sprintf(
				"%s: the cache extension on 127.0.0.1:%d was starting when the context ended", what, t.port)})
		case <-timer.C:
		}
		if delay *= 2; delay > maxDelay {
			delay = maxDelay
		}
	}
}

func (t *transport) once(ctx context.Context, method, target string, timeout time.Duration) (*answer, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	request, err := http.NewRequestWithContext(ctx, method, "http://127.0.0.1:"+strconv.Itoa(t.port)+target, nil)
	if err != nil {
		return nil, err
	}
	request.Header["User-Agent"] = []string{""}     // not sent: the extension has no use for it
	request.Header[tokenHeader] = []string{t.token} // never empty: call sends nothing without one
	client := t.keepAlive
	if method != http.MethodGet {
		client = t.oneShot
	}
	response, err := client.Do(request)
	if err != nil {
		return nil, err
	}
	defer response.Body.Close()
	body, err := io.ReadAll(io.LimitReader(response.Body, maxBody+1))
	if err != nil {
		return nil, err
	}
	if len(body) > maxBody {
		return nil, errors.New("the answer is too large")
	}
	a := &answer{status: response.StatusCode, contentType: response.Header.Get("Content-Type"), body: body,
		maxAge: maxAge(response.Header.Get("Cache-Control"))}
	a.retryAfter, a.hasRetryAfter = retryAfter(response.Header.Get("Retry-After"))
	return a, nil
}

// startupFailure says whether err may be the extension still starting: no connection yet, or (for a GET only,
// which may be sent again) one closed before any answer.
func startupFailure(err error, method string) bool {
	if errors.Is(err, syscall.ECONNREFUSED) {
		return true
	}
	return method == http.MethodGet && (errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF))
}

// failure names what went wrong in a few words, with nothing of the request in it.
func failure(err error) string {
	var netErr net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF):
		return "connection closed before an answer"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return "timed out"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	return "connection failed"
}

// answerError is the error an answer other than 200 means; the extension's message never echoes a secret.
func answerError(a *answer, what string) error {
	var detail struct {
		Error   any `json:"error"`
		Message any `json:"message"`
	}
	code, message := "", "no details"
	if json.Unmarshal(a.body, &detail) == nil && detail.Error != nil {
		code, message = fmt.Sprint(detail.Error), fmt.Sprint(detail.Message)
	}
	return statusError(&Error{Status: a.status, Code: code, RetryAfter: a.retryAfter, HasRetryAfter: a.hasRetryAfter,
		msg: fmt.Sprintf("%s: HTTP %d %s: %s", what, a.status, code, message)})
}

// headerSafe: printable ASCII (and tab) only, the characters a header value carries as they are.
func headerSafe(value string) bool {
	for i := 0; i < len(value); i++ {
		if c := value[i]; (c < 0x20 && c != '\t') || c > 0x7e {
			return false
		}
	}
	return true
}

// escape percent-encodes everything but the unreserved characters (RFC 3986), as the other clients do: a name
// may hold '&', '=', '+', '#', '/', spaces or any UTF-8.
func escape(name string) string {
	const hex = "0123456789ABCDEF"
	out := make([]byte, 0, len(name)+8)
	for i := 0; i < len(name); i++ {
		c := name[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			out = append(out, c)
		} else {
			out = append(out, '%', hex[c>>4], hex[c&15])
		}
	}
	return string(out)
}
