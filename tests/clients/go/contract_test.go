// The shared client contract (tests/contract/cases.json) run against a real extension.
//
//	CONTRACT_CASES=.../cases.json CACHE_EXTENSION_PORT=... AWS_SESSION_TOKEN=... CONTRACT_DOWN_PORT=... CONTRACT_TRAP_PORT=... \
//	go test -count=1 -v .
//
// With CONTRACT_STARTUP=1 only the cases marked "startup" run, otherwise only the others. A case with "env" runs
// in a child process of this test binary started with that environment (CONTRACT_ONLY=its id), so that the
// client takes its token and port from its real process environment (CACHE_EXTENSION_CLIENT_CACHE included). Every case
// gets a client of its own, closed after it, so each starts with an empty near cache. "expect.requests" is
// checked against the extension's GET /stats, read by this process (never by a child) before and after the case.
package contract

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cacheclient "github.com/lambda-cache-extension/lambda-cache-extension/layer/go/cacheclient"
)

const (
	caseTimeout  = 10 * time.Second
	childTimeout = 20 * time.Second // a child runs one case: its own start plus at most one case's time
)

// The clients' token chain, first non-empty one wins; a case's "env" replaces all of it (cases.json's "about").
var tokenVariables = cacheclient.TokenVariables

// What a case's "env" decides for the client in its child: set as the case says, or absent when it names none.
// The token chain and AWS's port variable, as cases.json's "about" says, and the near cache switch (never set in
// this runner's environment anyway); CACHE_EXTENSION_PORT stays as this runner has it unless the case names it.
var clientVariables = append(append([]string{}, tokenVariables...), cacheclient.AWSPortVariable,
	cacheclient.NearCacheVariable)

// The placeholders a case's "env" may hold, and the variable of this runner each stands for.
var placeholders = map[string]string{"$TOKEN": "AWS_SESSION_TOKEN", "$PORT": cacheclient.PortVariable,
	"$DOWN_PORT": "CONTRACT_DOWN_PORT", "$TRAP_PORT": "CONTRACT_TRAP_PORT", "$VALUES_FILE": "CONTRACT_VALUES_FILE"}

type step struct {
	Call      string `json:"call"`
	Name      string `json:"name"`
	Source    string `json:"source"`
	Transform string `json:"transform"`
	Key       string `json:"key"`
	PauseMs   *int   `json:"pauseMs"`
}

type contractCase struct {
	ID      string                     `json:"id"`
	Startup bool                       `json:"startup"`
	Client  map[string]json.RawMessage `json:"client"`
	Env     map[string]string          `json:"env"`
	Repeat  int                        `json:"repeat"`
	Steps   []step                     `json:"steps"`
	Expect  map[string]json.RawMessage `json:"expect"`
	// ValuesFile: offline values written to a file of their own, which "$VALUES_FILE" in Env names.
	ValuesFile json.RawMessage `json:"valuesFile"`
	step
}

func TestContract(t *testing.T) {
	casesPath := os.Getenv("CONTRACT_CASES")
	if casesPath == "" {
		t.Skip("CONTRACT_CASES is not set (it names tests/contract/cases.json; the pytest suite sets it)")
	}
	data, err := os.ReadFile(casesPath)
	if err != nil {
		t.Fatalf("cannot read %s: %v", casesPath, err)
	}
	var table struct{ Cases []contractCase }
	if err := json.Unmarshal(data, &table); err != nil {
		t.Fatalf("%s: %v", casesPath, err)
	}
	only, isChild := os.LookupEnv("CONTRACT_ONLY")
	startup := os.Getenv("CONTRACT_STARTUP") == "1"
	var cases []contractCase
	for _, c := range table.Cases {
		if (isChild && c.ID == only) || (!isChild && c.Startup == startup) {
			cases = append(cases, c)
		}
	}
	if isChild && len(cases) != 1 {
		t.Fatalf("CONTRACT_ONLY names %d cases, not one", len(cases))
	}
	if len(cases) == 0 {
		t.Skipf("no case in %s with startup=%t", casesPath, startup)
	}
	secrets := expectedValues(table.Cases)
	for _, c := range cases {
		c := c
		t.Run(c.ID, func(t *testing.T) {
			switch {
			case c.Env != nil && !isChild:
				if c.ValuesFile != nil { // the child finds the file's path as "$VALUES_FILE" stands for
					path := filepath.Join(t.TempDir(), "values.json")
					if err := os.WriteFile(path, c.ValuesFile, 0o600); err != nil {
						t.Fatal(err)
					}
					t.Setenv("CONTRACT_VALUES_FILE", path)
				}
				// The child makes the client and runs the case; this process counts what the extension served.
				countingRequests(t, c, func() error { return runInChild(c) })
			case isChild:
				checkChildEnvironment(t, c)
				if err := check(c, secrets); err != nil {
					t.Fatal(err)
				}
			default:
				countingRequests(t, c, func() error { return check(c, secrets) })
			}
		})
	}
}

// expectedValues: text that must never show up in an error message, every expected value of the table.
func expectedValues(cases []contractCase) []string {
	var values []string
	for _, c := range cases {
		for _, key := range []string{"value", "base64"} {
			var text string
			if json.Unmarshal(c.Expect[key], &text) == nil && len(text) >= 6 { // "true", "5": in any sentence
				values = append(values, text)
			}
		}
		if raw, ok := c.Expect["json"]; ok {
			var compact bytes.Buffer
			if json.Compact(&compact, raw) == nil && compact.Len() >= 6 {
				values = append(values, compact.String())
			}
		}
	}
	return values
}

// countingRequests runs body and, when the case expects a number of requests, checks it against /stats read
// right before and right after (success or failure). A failure of the case itself is reported first.
func countingRequests(t *testing.T, c contractCase, body func() error) {
	raw, counted := c.Expect["requests"]
	if !counted {
		if err := body(); err != nil {
			t.Fatal(err)
		}
		return
	}
	var expected int
	if err := json.Unmarshal(raw, &expected); err != nil {
		t.Fatalf("expect.requests: %v", err)
	}
	before, err := servedReads()
	if err != nil {
		t.Fatal(err)
	}
	failure := body()
	after, err := servedReads()
	if failure != nil {
		t.Fatal(failure)
	}
	if err != nil {
		t.Fatal(err)
	}
	if served := after - before; served != expected {
		t.Fatalf("the extension served %d reads during the case, expected %d", served, expected)
	}
}

// caseEnvironment is the case's "env" with its placeholders replaced: the variables the client under test sees.
func caseEnvironment(c contractCase) (map[string]string, error) {
	if _, ok := c.Client["token"]; ok {
		return nil, errors.New("a case with env gives no token option")
	}
	env := map[string]string{}
	for name, value := range c.Env {
		if source, ok := placeholders[value]; ok {
			if value = os.Getenv(source); value == "" {
				return nil, fmt.Errorf("%s (%q in a case's env) is not set", source, c.Env[name])
			}
		}
		env[name] = value
	}
	return env, nil
}

// runInChild runs a case with "env" in a child process of this test binary started with that environment.
func runInChild(c contractCase) error {
	variables, err := caseEnvironment(c)
	if err != nil {
		return err
	}
	var env []string
	for _, entry := range os.Environ() {
		name, _, _ := strings.Cut(entry, "=")
		if _, named := variables[name]; !named && !contains(clientVariables, name) && name != "CONTRACT_ONLY" {
			env = append(env, entry)
		}
	}
	for name, value := range variables {
		env = append(env, name+"="+value)
	}
	env = append(env, "CONTRACT_ONLY="+c.ID)
	ctx, cancel := context.WithTimeout(context.Background(), childTimeout)
	defer cancel()
	child := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestContract$", "-test.v", "-test.count=1",
		"-test.timeout="+childTimeout.String())
	child.Env = env
	out, runErr := child.CombinedOutput()
	output := string(out)
	redacted := []string{os.Getenv("AWS_SESSION_TOKEN")}
	for _, name := range tokenVariables { // the ports stay readable: they are no secret
		redacted = append(redacted, variables[name])
	}
	for _, text := range redacted {
		if text != "" { // whatever the child says, no token in this report
			output = strings.ReplaceAll(output, text, "<token>")
		}
	}
	if runErr != nil {
		return fmt.Errorf("the case failed in its child process (%v):\n%s", runErr, output)
	}
	if n := strings.Count(output, "--- PASS: TestContract/"); n != 1 {
		return fmt.Errorf("the child process passed %d cases, not one:\n%s", n, output)
	}
	return nil
}

// checkChildEnvironment: in the child, the environment the parent gave it is the case's (a placeholder's value
// is the parent's, so here it is only known to be set).
func checkChildEnvironment(t *testing.T, c contractCase) {
	names := append([]string{}, clientVariables...)
	for name := range c.Env {
		if !contains(names, name) {
			names = append(names, name)
		}
	}
	for _, name := range names {
		want, named := c.Env[name]
		_, placeholder := placeholders[want]
		got, set := os.LookupEnv(name)
		switch {
		case !named && set:
			t.Fatalf("%s is set, the case does not name it", name)
		case named && placeholder && got == "":
			t.Fatalf("%s is not set (%s in the case)", name, want)
		case named && !placeholder && (!set || got != want):
			t.Fatalf("%s is not the case's value", name)
		}
	}
}

func values(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

func contains(list []string, s string) bool {
	for _, item := range list {
		if item == s {
			return true
		}
	}
	return false
}

// options maps a case's "client" to cacheclient.Options.
func options(c contractCase) (cacheclient.Options, error) {
	var o cacheclient.Options
	for key, raw := range c.Client {
		var err error
		switch key {
		case "port":
			var text string
			if json.Unmarshal(raw, &text) == nil && text == "$DOWN_PORT" {
				raw = json.RawMessage(os.Getenv("CONTRACT_DOWN_PORT"))
				if len(raw) == 0 {
					return o, errors.New("CONTRACT_DOWN_PORT is not set")
				}
			}
			err = json.Unmarshal(raw, &o.Port)
		case "token":
			err = json.Unmarshal(raw, &o.Token)
		case "timeoutMs", "startupTimeoutMs":
			var ms int
			err = json.Unmarshal(raw, &ms)
			if key == "timeoutMs" {
				o.Timeout = time.Duration(ms) * time.Millisecond
			} else if o.StartupTimeout = time.Duration(ms) * time.Millisecond; ms == 0 {
				o.StartupTimeout = -1 // 0 ms: no retrying (the option's zero value means the default)
			}
		case "values":
			decoder := json.NewDecoder(bytes.NewReader(raw))
			decoder.UseNumber()
			decoder.DisallowUnknownFields()
			o.Values = &cacheclient.Values{}
			err = decoder.Decode(o.Values)
		case "nearCache":
			var on bool
			err = json.Unmarshal(raw, &on)
			o.NearCache = cacheclient.Bool(on)
		default:
			err = errors.New("unknown client option")
		}
		if err != nil {
			return o, fmt.Errorf("case %q: client option %s: %v", c.ID, key, err)
		}
	}
	return o, nil
}

func call(ctx context.Context, client *cacheclient.Client, s step) (any, error) {
	switch s.Call {
	case "parameter", "secret":
		if s.Key != "" {
			// Go's style: the key's text, then json.Unmarshal of it as a function would (numbers json.Number).
			var text string
			var err error
			if s.Call == "parameter" {
				text, err = client.GetParameterKey(ctx, s.Name, s.Key)
			} else {
				text, err = client.GetSecretKey(ctx, s.Name, s.Key)
			}
			if err != nil || s.Transform == "" {
				return text, err
			}
			if s.Transform == "json" {
				decoder := json.NewDecoder(strings.NewReader(text))
				decoder.UseNumber()
				var v any
				return v, decoder.Decode(&v)
			}
			return nil, fmt.Errorf("a key read takes transform json only here, not %q", s.Transform)
		}
		switch s.Transform {
		case "":
			if s.Call == "parameter" {
				return client.GetParameter(ctx, s.Name)
			}
			return client.GetSecret(ctx, s.Name)
		case "json":
			var v any
			var err error
			if s.Call == "parameter" {
				err = client.GetParameterJSON(ctx, s.Name, &v)
			} else {
				err = client.GetSecretJSON(ctx, s.Name, &v)
			}
			return v, err
		case "binary":
			if s.Call == "parameter" {
				return client.GetParameterBinary(ctx, s.Name)
			}
			return client.GetSecretBinary(ctx, s.Name)
		}
	case "item":
		if s.Transform == "" {
			return client.GetItem(ctx, s.Name)
		}
	case "refresh":
		return client.Refresh(ctx, s.Name, s.Source)
	case "refreshAll":
		return client.RefreshAll(ctx)
	}
	return nil, fmt.Errorf("unknown call %q (transform %q)", s.Call, s.Transform)
}

// run makes the case's client and its calls: its steps in order (a call or a pause), else its call repeat times
// (default once); an error ends them. Making the client is part of the case: an error from New is the case's.
func run(c contractCase) (any, error) {
	o, err := options(c)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), caseTimeout)
	defer cancel()
	client, err := cacheclient.New(o)
	if err != nil {
		return nil, err
	}
	defer client.Close()
	steps := c.Steps
	if steps == nil {
		repeat := c.Repeat
		if repeat == 0 {
			repeat = 1
		}
		for i := 0; i < repeat; i++ {
			steps = append(steps, c.step)
		}
	}
	var result any
	for _, s := range steps {
		if s.PauseMs != nil {
			time.Sleep(time.Duration(*s.PauseMs) * time.Millisecond)
			continue
		}
		if result, err = call(ctx, client, s); err != nil {
			return nil, err
		}
	}
	return result, nil
}

// errorKinds: how each kind of cases.json is told apart, by errors.As and errors.Is.
var errorKinds = map[string]struct {
	is       error
	matching func(error) bool
}{
	"NotFound":    {cacheclient.ErrNotFound, func(err error) bool { var e *cacheclient.NotFoundError; return errors.As(err, &e) }},
	"Upstream":    {cacheclient.ErrUpstream, func(err error) bool { var e *cacheclient.UpstreamError; return errors.As(err, &e) }},
	"Unavailable": {cacheclient.ErrUnavailable, func(err error) bool { var e *cacheclient.UnavailableError; return errors.As(err, &e) }},
}

// check runs the case on a client of its own and checks what it expects (all but requests).
func check(c contractCase, secrets []string) error {
	expect := c.Expect
	result, err := run(c)
	rawKind, wantsError := expect["error"]
	if !wantsError {
		if err != nil {
			return fmt.Errorf("expected a result, got %v", err)
		}
		return checkResult(result, expect)
	}
	if err == nil {
		return fmt.Errorf("expected an error, got a %T", result)
	}
	var kind string
	json.Unmarshal(rawKind, &kind)
	var base *cacheclient.Error
	if !errors.As(err, &base) {
		return fmt.Errorf("expected a *cacheclient.Error, got %T: %v", err, err)
	}
	for name, k := range errorKinds {
		if matches := k.matching(err); matches != (name == kind) || errors.Is(err, k.is) != matches {
			return fmt.Errorf("expected %s, got %T: %v", kind, err, err)
		}
	}
	if kind != "Error" && errorKinds[kind].is == nil {
		return fmt.Errorf("unknown error kind %q", kind)
	}
	var status int
	if json.Unmarshal(expect["status"], &status) == nil && base.Status != status {
		return fmt.Errorf("status %d, expected %d: %v", base.Status, status, err)
	}
	var code string
	if json.Unmarshal(expect["code"], &code) == nil && base.Code != code {
		return fmt.Errorf("code %q, expected %q: %v", base.Code, code, err)
	}
	var atLeast float64
	if json.Unmarshal(expect["retryAfterAtLeast"], &atLeast) == nil &&
		(!base.HasRetryAfter || base.RetryAfter.Seconds() < atLeast) {
		return fmt.Errorf("RetryAfter %v (set: %t), expected at least %v s", base.RetryAfter, base.HasRetryAfter, atLeast)
	}
	var banned []string
	var token string
	if json.Unmarshal(c.Client["token"], &token) == nil {
		banned = append(banned, token)
	}
	for _, name := range tokenVariables {
		banned = append(banned, os.Getenv(name))
	}
	banned = append(append(banned, values(c.Env)...), secrets...)
	for _, text := range banned {
		if text != "" && strings.Contains(err.Error(), text) {
			return errors.New("the error message contains the token, a value or a variable of the case's env")
		}
	}
	var includes, excludes []string
	json.Unmarshal(expect["messageIncludes"], &includes)
	json.Unmarshal(expect["messageExcludes"], &excludes)
	for _, text := range includes {
		if !strings.Contains(err.Error(), text) {
			return fmt.Errorf("the error message does not contain %q: %v", text, err)
		}
	}
	for _, text := range excludes {
		if strings.Contains(err.Error(), text) {
			return fmt.Errorf("the error message shows %q", text)
		}
	}
	return nil
}
