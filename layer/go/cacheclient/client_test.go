package cacheclient

import (
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func asError(err error, target **Error) bool { return errors.As(err, target) }

func TestTokenChain(t *testing.T) {
	f := newFake(t, text("v", ""))
	for _, tc := range []struct {
		values []string // CACHE_EXTENSION_TOKEN, AWS_TOKEN, AWS_SESSION_TOKEN, AWS_CONTAINER_AUTHORIZATION_TOKEN; "-": unset
		sent   string   // "": none, so no request at all (MissingToken)
	}{
		{[]string{"-", "-", "-", "-"}, ""}, {[]string{"", "", "", ""}, ""},
		{[]string{"ext", "agent", "session", "container"}, "ext"}, {[]string{"ext", "agent", "-", "-"}, "ext"},
		{[]string{"", "agent", "session", "container"}, "agent"}, {[]string{"-", "agent", "session", "-"}, "agent"},
		{[]string{"-", "agent", "-", "container"}, "agent"}, {[]string{"-", "", "session", "container"}, "session"},
		{[]string{"", "", "session", "container"}, "session"}, {[]string{"-", "-", "-", "container"}, "container"},
		{[]string{"", "", "", "container"}, "container"}, {[]string{"-", "-", "session", "-"}, "session"},
	} {
		clearEnvironment(t)
		for i, name := range TokenVariables {
			if tc.values[i] != "-" {
				t.Setenv(name, tc.values[i])
			}
		}
		c, err := New(Options{Port: f.port(), NearCache: Bool(false)})
		if err != nil {
			t.Fatal(err)
		}
		before := f.connections()
		_, err = c.GetParameter(ctx, "p")
		c.Close()
		if tc.sent == "" {
			checkMissingToken(t, err)
			if f.connections() != before {
				t.Errorf("%v: a connection was made without a token", tc.values)
			}
			continue
		}
		got := f.last().Header[http.CanonicalHeaderKey(tokenHeader)]
		if !reflect.DeepEqual(got, []string{tc.sent}) {
			t.Errorf("%v: sent %v, expected %q", tc.values, got, tc.sent)
		}
		if strings.Contains(c.String(), tc.sent) {
			t.Error("the token is in the client's String")
		}
	}
	for _, name := range TokenVariables {
		t.Setenv(name, "from-"+name)
	}
	c := newClient(t, f, Options{Token: "explicit"})
	c.GetParameter(ctx, "p")
	if f.last().Header.Get(tokenHeader) != "explicit" {
		t.Error("the Token option does not win over the environment")
	}
}

// checkMissingToken: the no-token error is a plain *Error, Status 0, Code MissingToken, saying what to set.
func checkMissingToken(t *testing.T, err error) {
	t.Helper()
	var e *Error
	if !asError(err, &e) || e.Status != 0 || e.Code != "MissingToken" || errors.Is(err, ErrUnavailable) {
		t.Fatalf("expected the MissingToken *Error, got %T: %v", err, err)
	}
	for _, text := range []string{"CACHE_EXTENSION_TOKEN", "AWS_SESSION_TOKEN", "AWS_CONTAINER_AUTHORIZATION_TOKEN",
		"nothing was sent"} {
		if !strings.Contains(err.Error(), text) {
			t.Errorf("the message does not say %q: %v", text, err)
		}
	}
}

func TestNoTokenSendsNothing(t *testing.T) {
	f := newFake(t, text("v", ""))
	clearEnvironment(t)
	c, err := New(Options{Port: f.port()})
	if err != nil {
		t.Fatal(err)
	}
	var s string
	for _, call := range []func() error{
		func() error { _, err := c.GetParameter(ctx, "p"); return err },
		func() error { return c.GetSecretJSON(ctx, "s", &s) },
		func() error { _, err := c.GetItem(ctx, "T-1"); return err },
		func() error { _, err := c.Refresh(ctx, "p", ""); return err },
		func() error { _, err := c.RefreshAll(ctx); return err },
	} {
		checkMissingToken(t, call())
	}
	if f.connections() != 0 {
		t.Errorf("%d connections made without a token", f.connections())
	}
	offline, err := New(Options{Values: &Values{Parameters: map[string]string{"p": "v"}}})
	if err != nil {
		t.Fatal(err)
	}
	if v, err := offline.GetParameter(ctx, "p"); v != "v" || err != nil {
		t.Errorf("offline values need no token: %q, %v", v, err)
	}
}

func TestATokenAHeaderCannotCarryIsNeverSent(t *testing.T) {
	f := newFake(t, text("v", ""))
	for _, token := range []string{"a\r\nX-Injected: 1", "tok\x00en", "tokén"} {
		c := newClient(t, f, Options{Token: token})
		_, err := c.GetParameter(ctx, "p")
		var e *Error
		if !asError(err, &e) || strings.Contains(err.Error(), token) || f.count() != 0 {
			t.Errorf("%q: %v after %d requests", token, err, f.count())
		}
	}
}

func TestErrorKinds(t *testing.T) {
	for _, tc := range []struct {
		status int
		kind   error // nil: a plain *Error
	}{{404, ErrNotFound}, {502, ErrUpstream}, {504, ErrUpstream}, {400, nil}, {401, nil}, {403, nil}, {429, nil}, {500, nil}} {
		f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "3")
			answerWith(tc.status, "application/json", `{"error":"SomeCode","message":"what happened"}`, "")(w, r)
		})
		c := newClient(t, f, Options{})
		_, err := c.GetSecret(ctx, "name")
		var e *Error
		if !asError(err, &e) || e.Status != tc.status || e.Code != "SomeCode" || !e.HasRetryAfter || e.RetryAfter != 3*time.Second {
			t.Fatalf("%d: %#v", tc.status, err)
		}
		var notFound *NotFoundError
		var upstream *UpstreamError
		var down *UnavailableError
		if errors.As(err, &notFound) != (tc.kind == ErrNotFound) || errors.As(err, &upstream) != (tc.kind == ErrUpstream) ||
			errors.As(err, &down) {
			t.Errorf("%d: %T", tc.status, err)
		}
		for _, sentinel := range []error{ErrNotFound, ErrUpstream, ErrUnavailable} {
			if errors.Is(err, sentinel) != (sentinel == tc.kind) {
				t.Errorf("%d: errors.Is(%v) is %t", tc.status, sentinel, !(sentinel == tc.kind))
			}
		}
		if !strings.Contains(err.Error(), `/secrets "name"`) || !strings.Contains(err.Error(), "what happened") {
			t.Errorf("%d: %v", tc.status, err)
		}
	}
}

func TestRetryAfterAndMaxAgeParsing(t *testing.T) {
	for header, want := range map[string]int64{"7": 7, "0": 0, "007": 7, " 12\t": 12, "1.5": -1, "-1": -1, "+3": -1,
		"Wed, 21 Oct 2015 07:28:00 GMT": -1, "soon": -1, "": -1, "7 s": -1, "0x10": -1, "1e3": -1, "\u00b2": -1,
		"99999999999999999999999": 1 << 31, strings.Repeat("9", 5000): 1 << 31} {
		got, ok := retryAfter(header)
		if (want < 0 && ok) || (want >= 0 && (!ok || got != time.Duration(want)*time.Second)) {
			t.Errorf("Retry-After %q: %v, %t", header, got, ok)
		}
	}
	for header, want := range map[string]int64{"max-age=5": 5, "MAX-AGE=5": 5, `max-age="5"`: 5, "public, max-age=7": 7,
		"max-age=0": 0, "max-age=5, no-store": 0, "no-cache,max-age=5": 0, "max-age=5,max-age=5": 0, "max-age=x": 0,
		"max-age=99999999999": 1 << 31, "": 0} {
		if got := maxAge(header); got != time.Duration(want)*time.Second {
			t.Errorf("Cache-Control %q: %v", header, got)
		}
	}
}

func TestStartupRetriesGetsOnly(t *testing.T) {
	var gets, posts atomic.Int32
	f := newFake(t, nil)
	f.reply = func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			posts.Add(1)
			answerWith(503, "application/json", `{"error":"NotReady","message":"starting"}`, "")(w, r)
			return
		}
		if gets.Add(1) < 3 {
			answerWith(503, "application/json", `{"error":"NotReady","message":"starting"}`, "")(w, r)
			return
		}
		text("v", "")(w, r)
	}
	c := newClient(t, f, Options{})
	if v, err := c.GetParameter(ctx, "p"); err != nil || v != "v" || gets.Load() != 3 {
		t.Fatalf("%q, %v after %d GETs", v, err, gets.Load())
	}
	_, err := c.RefreshAll(ctx)
	var e *Error
	if !asError(err, &e) || e.Status != 503 || errors.Is(err, ErrUnavailable) || posts.Load() != 1 {
		t.Fatalf("a POST answered 503: %v after %d POSTs", err, posts.Load())
	}
	// A 503 past the start-up timeout is Unavailable, with the status and the Retry-After.
	f.reply = func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "2")
		answerWith(503, "application/json", `{"error":"NotReady","message":"starting"}`, "")(w, r)
	}
	short := newClient(t, f, Options{StartupTimeout: 50 * time.Millisecond})
	_, err = short.GetParameter(ctx, "p")
	if !asError(err, &e) || !errors.Is(err, ErrUnavailable) || e.Status != 503 || e.RetryAfter != 2*time.Second {
		t.Fatalf("%#v", err)
	}
}

// rawServer accepts connections on loopback; the n-th gets answers[n] ("" closes it without an answer) once its
// request head has arrived. It returns its port and a count of the connections accepted.
func rawServer(t *testing.T, answers []string) (int, *atomic.Int32) {
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { listener.Close() })
	var accepted atomic.Int32
	go func() {
		for _, answer := range answers {
			conn, err := listener.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			buffer := make([]byte, 0, 4096)
			chunk := make([]byte, 4096)
			for !strings.Contains(string(buffer), "\r\n\r\n") {
				n, err := conn.Read(chunk)
				if err != nil {
					break
				}
				buffer = append(buffer, chunk[:n]...)
			}
			if answer != "" {
				conn.Write([]byte(answer))
			}
			conn.Close()
		}
	}()
	_, port, _ := net.SplitHostPort(listener.Addr().String())
	n, _ := strconv.Atoi(port)
	return n, &accepted
}

const okAnswer = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1\r\nConnection: close\r\n\r\nv"
const refreshed = `{"refreshed":[],"failed":[]}`

func TestAConnectionClosedBeforeAnAnswer(t *testing.T) {
	port, accepted := rawServer(t, []string{"", okAnswer})
	clearEnvironment(t)
	c, _ := New(Options{Port: port, Token: "t"})
	if v, err := c.GetParameter(ctx, "p"); err != nil || v != "v" || accepted.Load() != 2 {
		t.Fatalf("a GET is sent again: %q, %v, %d connections", v, err, accepted.Load())
	}
	post := "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " + strconv.Itoa(len(refreshed)) +
		"\r\n\r\n" + refreshed
	port, accepted = rawServer(t, []string{"", post})
	c, _ = New(Options{Port: port, Token: "t"})
	_, err := c.RefreshAll(ctx)
	if !errors.Is(err, ErrUnavailable) || accepted.Load() != 1 {
		t.Fatalf("a POST is never sent twice: %v, %d connections", err, accepted.Load())
	}
	if _, err := c.Refresh(ctx, "p", ""); err != nil || accepted.Load() != 2 {
		t.Fatalf("%v", err)
	}
}

func TestARefusedConnectionIsRetriedUntilItListens(t *testing.T) {
	listener, _ := net.Listen("tcp", "127.0.0.1:0")
	port := listener.Addr().(*net.TCPAddr).Port
	listener.Close() // refused until the server below starts there
	server := &http.Server{Handler: http.HandlerFunc(text("v", ""))}
	go func() {
		time.Sleep(150 * time.Millisecond)
		if l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port)); err == nil {
			server.Serve(l)
		}
	}()
	t.Cleanup(func() { server.Close() })
	clearEnvironment(t)
	c, _ := New(Options{Port: port, Token: "t"})
	if v, err := c.GetParameter(ctx, "p"); err != nil || v != "v" {
		t.Fatalf("%q, %v", v, err)
	}
	started := time.Now()
	down, _ := New(Options{Port: freePort(t), Token: "t", StartupTimeout: -1})
	_, err := down.RefreshAll(ctx)
	var e *Error
	if !errors.Is(err, ErrUnavailable) || !asError(err, &e) || e.Status != 0 || e.HasRetryAfter || time.Since(started) > time.Second {
		t.Fatalf("%v", err)
	}
}

func freePort(t *testing.T) int {
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close()
	return listener.Addr().(*net.TCPAddr).Port
}

func TestATimeoutIsUnavailable(t *testing.T) {
	release := make(chan struct{})
	f := newFake(t, func(w http.ResponseWriter, r *http.Request) { <-release })
	defer close(release)
	c := newClient(t, f, Options{Timeout: 100 * time.Millisecond})
	started := time.Now()
	_, err := c.GetItem(ctx, "T-1")
	if !errors.Is(err, ErrUnavailable) || time.Since(started) > 2*time.Second || !strings.Contains(err.Error(), "timed out") {
		t.Fatalf("%v after %v", err, time.Since(started))
	}
}

func TestOneKeptAliveConnection(t *testing.T) {
	f := newFake(t, text("v", ""))
	c := newClient(t, f, Options{NearCache: Bool(false)})
	for i := 0; i < 10; i++ {
		c.GetParameter(ctx, "p")
	}
	if f.count() != 10 || f.connections() != 1 {
		t.Fatalf("%d requests on %d connections", f.count(), f.connections())
	}
	c.Refresh(ctx, "p", "") // a connection of its own
	if f.connections() != 2 {
		t.Fatalf("%d connections", f.connections())
	}
}

func TestNeverThroughAProxy(t *testing.T) {
	f := newFake(t, text("v", ""))
	c := newClient(t, f, Options{})
	t.Setenv("HTTP_PROXY", "http://127.0.0.1:1")
	t.Setenv("http_proxy", "http://127.0.0.1:1")
	if v, err := c.GetParameter(ctx, "p"); err != nil || v != "v" {
		t.Fatalf("%q, %v", v, err)
	}
}

func TestNamesAreEscaped(t *testing.T) {
	f := newFake(t, text("v", ""))
	c := newClient(t, f, Options{})
	c.GetItem(ctx, "T-a b&c=d?e#f%/+é~")
	if got := f.last().RequestURI; got != "/dynamodb?name=T-a%20b%26c%3Dd%3Fe%23f%25%2F%2B%C3%A9~" {
		t.Fatal(got)
	}
	c.Refresh(ctx, "x&y=z", SourceDynamoDB)
	if got := f.last().RequestURI; got != "/refresh?name=x%26y%3Dz&source=dynamodb" || f.last().Method != "POST" {
		t.Fatal(got)
	}
}

func TestBadArguments(t *testing.T) {
	f := newFake(t, text("v", ""))
	c := newClient(t, f, Options{})
	for _, err := range []error{
		func() error { _, err := c.GetParameter(ctx, ""); return err }(),
		func() error { _, err := c.Refresh(ctx, "", ""); return err }(),
		func() error { _, err := c.Refresh(ctx, "p", "ssm"); return err }(),
		func() error { _, err := c.Refresh(ctx, "p", "Parameters"); return err }(),
	} {
		var e *Error
		if !errors.Is(err, ErrInvalidArgument) || asError(err, &e) {
			t.Errorf("%v", err)
		}
	}
	if f.count() != 0 {
		t.Fatalf("%d requests", f.count())
	}
}

func TestTransformsNeverQuoteTheValue(t *testing.T) {
	f := newFake(t, text("s3cr3t-not-json", ""))
	c := newClient(t, f, Options{})
	var v any
	for _, err := range []error{
		c.GetSecretJSON(ctx, "s", &v),
		func() error { _, err := c.GetSecretBinary(ctx, "s"); return err }(),
		func() error { _, err := c.GetItem(ctx, "T-1"); return err }(),
	} {
		var e *Error
		if !asError(err, &e) || e.Status != 0 || strings.Contains(err.Error(), "s3cr3t") || strings.Contains(err.Error(), "'s'") {
			t.Errorf("%v", err)
		}
	}
	f.reply = text(`{"port": "x5432"}`, "")
	var typed struct{ Port int }
	if err := c.GetSecretJSON(ctx, "s", &typed); err == nil || strings.Contains(err.Error(), "x5432") {
		t.Errorf("%v", err)
	}
}

func TestPort(t *testing.T) {
	for _, tc := range []struct {
		ours, aws string // CACHE_EXTENSION_PORT, PARAMETERS_SECRETS_EXTENSION_HTTP_PORT; "-": unset
		port      int
	}{
		{"-", "-", 4000}, {"", "", 4000}, {"4123", "-", 4123}, {"-", "2773", 2773}, {"", "2773", 2773},
		{"4123", "2773", 4123}, {"4123", "", 4123}, {"04123", "-", 4123},
		{"4123", "http", 4123}, // the variable that does not decide is not read, as by the extension
	} {
		clearEnvironment(t)
		for name, value := range map[string]string{PortVariable: tc.ours, AWSPortVariable: tc.aws} {
			if value != "-" {
				t.Setenv(name, value)
			}
		}
		c, err := New(Options{})
		if err != nil || c.Port() != tc.port {
			t.Errorf("%q, %q: port %v (%v), expected %d", tc.ours, tc.aws, c, err, tc.port)
			continue
		}
		c.Close()
		// An explicit Port wins over either variable.
		c, _ = New(Options{Port: 5})
		if c.Port() != 5 {
			t.Errorf("%q, %q: the Port option does not win (%d)", tc.ours, tc.aws, c.Port())
		}
		c.Close()
	}
	for _, name := range PortVariables {
		for _, bad := range []string{"http", "0", "70000", "-1", "+80", " 80", "８０", "99999999999999999999"} {
			clearEnvironment(t)
			t.Setenv(name, bad)
			_, err := New(Options{})
			if err == nil || !strings.Contains(err.Error(), name) || strings.Contains(err.Error(), bad) {
				t.Errorf("%s=%q: %v", name, bad, err)
			}
		}
	}
}

func TestOfflineValues(t *testing.T) {
	clearEnvironment(t)
	c, err := New(Options{Port: freePort(t), Values: &Values{
		Parameters: map[string]string{"/p": `{"a": 1}`, "/b": "AP8BAg=="},
		DynamoDB:   map[string]any{"T-1": map[string]any{"id": "1", "n": 2}, "T-2": `{"big": 12345678901234567890.5}`},
	}})
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := c.GetParameterJSON(ctx, "/p", &v); err != nil || v["a"] != json1 {
		t.Fatalf("%v, %v", v, err)
	}
	if b, err := c.GetParameterBinary(ctx, "/b"); err != nil || string(b) != "\x00\xff\x01\x02" {
		t.Fatalf("%q, %v", b, err)
	}
	if item, err := c.GetItem(ctx, "T-1"); err != nil || item["n"] != json2 {
		t.Fatalf("%v, %v", item, err)
	}
	if item, err := c.GetItem(ctx, "T-2"); err != nil || item["big"] != jsonBig {
		t.Fatalf("%v, %v", item, err)
	}
	_, err = c.GetSecret(ctx, "missing")
	var notFound *NotFoundError
	if !errors.As(err, &notFound) || notFound.Err.Code != "NotConfigured" || notFound.Err.Status != 404 {
		t.Fatalf("%#v", err)
	}
	if result, err := c.Refresh(ctx, "/p", ""); err != nil || result.Refreshed == nil || len(result.Refreshed) != 0 || result.Failed == nil {
		t.Fatalf("%#v, %v", result, err)
	}
}

func TestOfflineValuesFromAFile(t *testing.T) {
	clearEnvironment(t)
	path := filepath.Join(t.TempDir(), "values.json")
	os.WriteFile(path, []byte(`{"parameters": {"/p": "v"}, "dynamodb": {"T-1": {"big": 12345678901234567890.123456789012345678, "l": [1E-130]}}}`), 0o600)
	t.Setenv(ValuesVariable, path)
	c, err := New(Options{Port: freePort(t)})
	if err != nil {
		t.Fatal(err)
	}
	if v, err := c.GetParameter(ctx, "/p"); err != nil || v != "v" {
		t.Fatalf("%q, %v", v, err)
	}
	item, err := c.GetItem(ctx, "T-1")
	if err != nil || item["big"] != jsonNumber("12345678901234567890.123456789012345678") || item["l"].([]any)[0] != jsonNumber("1E-130") {
		t.Fatalf("%v, %v", item, err)
	}
	for _, content := range []string{`{"parameter": {}}`, `{"parameters": {"p": null}}`, `{"dynamodb": {"T": "s3cr3t"}}`, `not json s3cr3t`, `[]`} {
		os.WriteFile(path, []byte(content), 0o600)
		_, err := New(Options{Port: 1})
		if err == nil || !strings.Contains(err.Error(), ValuesVariable) || strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("%s: %v", content, err)
		}
	}
	t.Setenv(ValuesVariable, filepath.Join(t.TempDir(), "missing.json"))
	if _, err := New(Options{Port: 1}); err == nil || !strings.Contains(err.Error(), ValuesVariable) {
		t.Errorf("%v", err)
	}
}

func TestRefreshAnswer(t *testing.T) {
	f := newFake(t, answerWith(200, "application/json",
		`{"refreshed":[{"source":"parameters","name":"a"}],"failed":[{"source":"secrets","name":"b","status":404,"error":"NotFound"}]}`, ""))
	c := newClient(t, f, Options{})
	result, err := c.RefreshAll(ctx)
	want := &RefreshResult{Refreshed: []Refreshed{{"parameters", "a"}}, Failed: []RefreshFailed{{"secrets", "b", 404, "NotFound"}}}
	if err != nil || !reflect.DeepEqual(result, want) || f.last().RequestURI != "/refresh?all=true" {
		t.Fatalf("%#v, %v", result, err)
	}
	f.reply = answerWith(200, "application/json", `[1]`, "")
	if _, err := c.RefreshAll(ctx); err == nil {
		t.Fatal("not an object: no error")
	}
}

// The offline values' rule (contract cases "offline values file: ..."): in the file, a parameter or secret that is
// another JSON value than a string reads as its compact JSON text, numbers as written; the Binary calls refuse it;
// null and items that are not objects are refused by New, naming the section and the name, never the value.
func TestOfflineJSONValues(t *testing.T) {
	clearEnvironment(t)
	path := filepath.Join(t.TempDir(), "values.json")
	os.WriteFile(path, []byte(`{"parameters": {"x": {"n": [1.50, 1e3, 0.0000001, -0], "s": "é<>\u00e9", "o": {}},
		"t": true, "s": "{\"a\": 1}"}, "dynamodb": {"T": {"n": 1.50}}}`), 0o600)
	t.Setenv(ValuesVariable, path)
	c, err := New(Options{Port: 1})
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"x": `{"n":[1.50,1e3,0.0000001,-0],"s":"é<>é","o":{}}`, "t": "true", "s": `{"a": 1}`} {
		if got, err := c.GetParameter(ctx, name); got != want || err != nil {
			t.Errorf("%s: %q, %v", name, got, err)
		}
	}
	var v map[string]any
	if err := c.GetParameterJSON(ctx, "x", &v); err != nil || v["o"] == nil {
		t.Errorf("%v, %v", v, err)
	}
	if _, err := c.GetParameterBinary(ctx, "t"); err == nil || !strings.Contains(err.Error(), "JSON value") {
		t.Errorf("binary of a JSON value: %v", err)
	}
	if item, err := c.GetItem(ctx, "T"); err != nil || item["n"] != jsonNumber("1.50") {
		t.Errorf("%v, %v", item, err)
	}
	for content, says := range map[string]string{
		`{"secrets": {"good": "s3cr3t", "bad": null}}`: `secrets "bad" is null`,
		`{"dynamodb": {"T": "s3cr3t"}}`:                `dynamodb "T" must be an item`,
		`{"dynamodb": {"T": [{"id": "s3cr3t"}]}}`:      `dynamodb "T" must be an item`,
	} {
		os.WriteFile(path, []byte(content), 0o600)
		if _, err := New(Options{Port: 1}); err == nil || !strings.Contains(err.Error(), says) || strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("%s: %v", content, err)
		}
	}
	for _, item := range []any{"s3cr3t", `[1]`, []any{1}, nil} {
		_, err := New(Options{Values: &Values{DynamoDB: map[string]any{"T": item}}})
		if err == nil || !strings.Contains(err.Error(), `dynamodb "T" must be an item`) || strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("%v: %v", item, err)
		}
	}
}
