package cacheclient

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"
)

// fake is an extension stand-in: it answers each request with reply(request) and records what it got.
type fake struct {
	t        *testing.T
	server   *httptest.Server
	mu       sync.Mutex
	requests []*http.Request
	conns    int // connections accepted
	reply    func(w http.ResponseWriter, r *http.Request)
}

func newFake(t *testing.T, reply func(w http.ResponseWriter, r *http.Request)) *fake {
	f := &fake{t: t, reply: reply}
	f.server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.requests = append(f.requests, r)
		f.mu.Unlock()
		f.reply(w, r)
	}))
	f.server.Config.ConnState = func(_ net.Conn, state http.ConnState) {
		if state == http.StateNew {
			f.mu.Lock()
			f.conns++
			f.mu.Unlock()
		}
	}
	f.server.Start()
	t.Cleanup(f.server.Close)
	return f
}

func (f *fake) port() int {
	_, port, _ := net.SplitHostPort(f.server.Listener.Addr().String())
	n, _ := strconv.Atoi(port)
	return n
}

func (f *fake) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.requests)
}

func (f *fake) connections() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.conns
}

func (f *fake) last() *http.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests[len(f.requests)-1]
}

// text answers 200 with body as text/plain and Cache-Control (none when empty).
func text(body, cacheControl string) func(http.ResponseWriter, *http.Request) {
	return answerWith(200, "text/plain; charset=utf-8", body, cacheControl)
}

func answerWith(status int, contentType, body, cacheControl string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", contentType)
		if cacheControl != "" {
			w.Header().Set("Cache-Control", cacheControl)
		}
		w.WriteHeader(status)
		w.Write([]byte(body))
	}
}

// newClient is a client of the fake with the token "t0k", no environment of its own.
func newClient(t *testing.T, f *fake, options Options) *Client {
	t.Helper()
	clearEnvironment(t)
	if options.Port == 0 {
		options.Port = f.port()
	}
	if options.Token == "" {
		options.Token = "t0k"
	}
	c, err := New(options)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// clearEnvironment unsets every variable the client reads, for this test.
func clearEnvironment(t *testing.T) {
	for _, name := range append(append([]string{NearCacheVariable, ValuesVariable}, PortVariables...), TokenVariables...) {
		t.Setenv(name, "x") // registers the restore
		unsetenv(t, name)
	}
}

// fakeClock is a clock tests move by hand: its times keep no monotonic reading, as only it decides.
type fakeClock struct {
	mu sync.Mutex
	at time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.at
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.at = c.at.Add(d)
	c.mu.Unlock()
}

type jsonNumber = json.Number

var (
	json1   = json.Number("1")
	json2   = json.Number("2")
	jsonBig = json.Number("12345678901234567890.5")
)
