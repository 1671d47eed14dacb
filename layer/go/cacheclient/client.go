// Package cacheclient reads the values the Lambda cache extension holds (SSM parameters, Secrets Manager
// secrets, DynamoDB items) with one local HTTP call, or none while its near cache holds them.
//
//	client, err := cacheclient.New(cacheclient.Options{}) // once, outside the handler
//	url, err := client.GetParameter(ctx, "/app/url")
//	err = client.GetSecretJSON(ctx, "app/db", &db)
//	item, err := client.GetItem(ctx, "Table-pk1-sk1") // numbers are json.Number, every digit kept
//
// Standard library only. The port comes from CACHE_EXTENSION_PORT, else PARAMETERS_SECRETS_EXTENSION_HTTP_PORT
// (AWS's Parameters and Secrets extension's), else 4000; the token from CACHE_EXTENSION_TOKEN, else AWS_TOKEN (the
// Secrets Manager Agent's), else AWS_SESSION_TOKEN, else AWS_CONTAINER_AUTHORIZATION_TOKEN (Lambda SnapStart has
// no session token); an empty variable counts as unset. The extension chooses both the same way, so a function
// switching from AWS's extension or agent keeps its environment. An explicit Options.Port or Options.Token wins.
// With no token at all, a call that would ask the extension returns an *Error with Code "MissingToken" (Status 0)
// before it connects: nothing is sent. Offline values need no token.
//
// Errors are *Error, or wrap one: *NotFoundError (404), *UpstreamError (502/504) and *UnavailableError (no
// answer), also matched by errors.Is with ErrNotFound, ErrUpstream and ErrUnavailable. Messages never contain a
// value or the token.
package cacheclient

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// Sources: the routes of the extension, the sections of offline values, and what a refresh may name.
const (
	SourceParameters = "parameters"
	SourceSecrets    = "secrets"
	SourceDynamoDB   = "dynamodb"
)

var sources = []string{SourceParameters, SourceSecrets, SourceDynamoDB}

// The client's environment variables.
const (
	PortVariable      = "CACHE_EXTENSION_PORT"
	AWSPortVariable   = "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT" // AWS's Parameters and Secrets extension's
	NearCacheVariable = "CACHE_EXTENSION_CLIENT_CACHE"
	ValuesVariable    = "CACHE_EXTENSION_CLIENT_VALUES"
)

// PortVariables are where the port comes from, first non-empty one wins (else 4000): the extension reads the same
// ones, so a function keeping AWS's extension's PARAMETERS_SECRETS_EXTENSION_HTTP_PORT reaches it.
var PortVariables = []string{PortVariable, AWSPortVariable}

// TokenVariables are where the token comes from, first non-empty one wins: the extension reads the same ones
// (AWS_TOKEN is the Secrets Manager Agent's).
var TokenVariables = []string{"CACHE_EXTENSION_TOKEN", "AWS_TOKEN", "AWS_SESSION_TOKEN",
	"AWS_CONTAINER_AUTHORIZATION_TOKEN"}

var nearCacheSwitch = map[string]bool{"on": true, "true": true, "1": true, "yes": true,
	"off": false, "false": false, "0": false, "no": false}

// Options of New. The zero value is what a function on Lambda needs.
type Options struct {
	Port int // 0: the first non-empty of PortVariables, else 4000
	// Token is sent in X-Aws-Parameters-Secrets-Token; "": the first non-empty of TokenVariables, and with none of
	// them, calls that would ask the extension fail with Code "MissingToken" before connecting.
	Token string
	// Timeout bounds each request (0: 1 s). StartupTimeout is how long a refused or reset connection and 503 are
	// retried while the extension starts (0: 2 s; negative: not at all), with a 10 ms backoff, doubling to at
	// most 100 ms; a refresh is retried only while its connection is refused. RefreshTimeout bounds a refresh,
	// which waits for AWS (0: 5 s).
	Timeout, StartupTimeout, RefreshTimeout time.Duration
	// Values, when set, are answered instead of asking the extension (unit tests without one); without them,
	// the JSON file named by CACHE_EXTENSION_CLIENT_VALUES, if set.
	Values *Values
	// NearCache nil: CACHE_EXTENSION_CLIENT_CACHE decides (on, off, true, false, 1, 0, yes, no, any case; unset
	// or empty is on). Bool(false) turns it off.
	NearCache *bool
}

// Values are offline values: a missing name is a *NotFoundError (code NotConfigured). Parameters and secrets are
// their values as stored in AWS. Items are JSON objects (map[string]any, a struct) or JSON text of one; New
// refuses any other. The JSON file named by CACHE_EXTENSION_CLIENT_VALUES has this shape, except that a
// parameter or secret may also be any other JSON value but null, standing for a value whose text is that JSON
// (compact, numbers as written), which the Binary calls refuse; its items are JSON objects.
type Values struct {
	Parameters map[string]string `json:"parameters,omitempty"`
	Secrets    map[string]string `json:"secrets,omitempty"`
	DynamoDB   map[string]any    `json:"dynamodb,omitempty"`
}

// Bool returns a pointer to v, for Options.NearCache.
func Bool(v bool) *bool { return &v }

// Client reads through one extension. It is safe for concurrent use; make one per process and reuse it (its
// kept-alive connections and its near cache live as long as it does).
type Client struct {
	port                                    int
	timeout, startupTimeout, refreshTimeout time.Duration
	values                                  offlineValues // nil: ask the extension
	near                                    *nearCache    // nil when off
	http                                    *transport
	now                                     func() time.Time // time.Now, with its monotonic reading; tests move it
}

// New makes a client. It fails (an *Error naming the variable, never its value) on a bad CACHE_EXTENSION_PORT
// (or PARAMETERS_SECRETS_EXTENSION_HTTP_PORT, when it is the one read), CACHE_EXTENSION_CLIENT_CACHE or
// CACHE_EXTENSION_CLIENT_VALUES.
func New(options Options) (*Client, error) {
	c := &Client{port: options.Port, timeout: options.Timeout, startupTimeout: options.StartupTimeout,
		refreshTimeout: options.RefreshTimeout, now: time.Now}
	if options.Values != nil {
		values, err := checkValues(options.Values)
		if err != nil {
			return nil, err
		}
		c.values = values
	}
	if c.port == 0 {
		c.port = 4000
		for _, name := range PortVariables {
			text := os.Getenv(name)
			if text == "" {
				continue
			}
			// Only the variable that decides is checked, as the extension does: a bad one below it is ignored.
			port, ok := parsePort(text)
			if !ok {
				return nil, &Error{msg: name + " is not a port number (1 to 65535)"}
			}
			c.port = port
			break
		}
	}
	c.timeout = orDefault(c.timeout, time.Second)
	c.refreshTimeout = orDefault(c.refreshTimeout, 5*time.Second)
	if c.startupTimeout == 0 {
		c.startupTimeout = 2 * time.Second
	} else if c.startupTimeout < 0 {
		c.startupTimeout = 0
	}
	token := options.Token
	for _, name := range TokenVariables {
		if token != "" {
			break
		}
		token = os.Getenv(name)
	}
	if c.values == nil {
		if path := os.Getenv(ValuesVariable); path != "" {
			values, err := loadValues(path)
			if err != nil {
				return nil, err
			}
			c.values = values
		}
	}
	near := true
	if options.NearCache != nil {
		near = *options.NearCache
	} else if text := os.Getenv(NearCacheVariable); text != "" {
		on, ok := nearCacheSwitch[strings.ToLower(text)]
		if !ok {
			return nil, &Error{msg: NearCacheVariable + " is not one of on, off, true, false, 1, 0, yes, no " +
				"(any case; empty counts as on)"}
		}
		near = on
	}
	if near {
		c.near = newNearCache()
	}
	c.http = newTransport(c.port, token, c.timeout)
	return c, nil
}

// parsePort takes ASCII digits only, as the extension does (strconv.Atoi would also take "+80").
func parsePort(text string) (int, bool) {
	if strings.TrimLeft(text, "0123456789") != "" {
		return 0, false
	}
	port, err := strconv.Atoi(text)
	return port, err == nil && port >= 1 && port <= 65535
}

func orDefault(d, fallback time.Duration) time.Duration {
	if d <= 0 {
		return fallback
	}
	return d
}

// String describes the client, never with its token.
func (c *Client) String() string {
	return fmt.Sprintf("cacheclient.Client(port=%d, offline=%t, nearCache=%t)", c.port, c.values != nil, c.near != nil)
}

// Port is the port the client asks.
func (c *Client) Port() int { return c.port }

// NearCache says whether the near cache is on.
func (c *Client) NearCache() bool { return c.near != nil }

// Close releases the idle kept-alive connections and drops the near cache. The client stays usable.
func (c *Client) Close() {
	if c.near != nil {
		c.near.forget("", nil, true)
	}
	c.http.closeIdle()
}

// GetParameter is an SSM parameter's value (or /aws/reference/secretsmanager/ID's).
func (c *Client) GetParameter(ctx context.Context, name string) (string, error) {
	v, err := c.get(ctx, SourceParameters, name)
	return v.text, err
}

// GetParameterJSON decodes a parameter's value, JSON text, into v (as json.Unmarshal does).
func (c *Client) GetParameterJSON(ctx context.Context, name string, v any) error {
	return c.getJSON(ctx, SourceParameters, name, v)
}

// GetParameterBinary is a parameter's value decoded from base64.
func (c *Client) GetParameterBinary(ctx context.Context, name string) ([]byte, error) {
	return c.getBinary(ctx, SourceParameters, name)
}

// GetSecret is a Secrets Manager secret's value: its text (a binary secret's bytes, as they are).
func (c *Client) GetSecret(ctx context.Context, name string) (string, error) {
	v, err := c.get(ctx, SourceSecrets, name)
	return v.text, err
}

// GetSecretJSON decodes a secret's value, JSON text, into v (as json.Unmarshal does).
func (c *Client) GetSecretJSON(ctx context.Context, name string, v any) error {
	return c.getJSON(ctx, SourceSecrets, name, v)
}

// GetSecretBinary is a binary secret's bytes, or a text secret decoded from base64.
func (c *Client) GetSecretBinary(ctx context.Context, name string) ([]byte, error) {
	return c.getBinary(ctx, SourceSecrets, name)
}

// GetItem is a DynamoDB item, by its TABLE-HASH[-SORT] address or configured name. Numbers are json.Number,
// every digit kept (DynamoDB's carry up to 38 significant digits, more than a float64 holds).
func (c *Client) GetItem(ctx context.Context, key string) (map[string]any, error) {
	var item map[string]any
	if err := c.GetItemJSON(ctx, key, &item); err != nil {
		return nil, err
	}
	return item, nil
}

// GetItemJSON decodes a DynamoDB item into v, a pointer to a struct or a map (numbers into `any` are json.Number).
func (c *Client) GetItemJSON(ctx context.Context, key string, v any) error {
	value, err := c.get(ctx, SourceDynamoDB, key)
	if err != nil {
		return err
	}
	if !isObject(value.text) {
		return &Error{msg: fmt.Sprintf("/%s %q: the item is not a JSON object", SourceDynamoDB, key)}
	}
	return decodeJSON(value.text, v, SourceDynamoDB, key)
}

// RefreshResult is the extension's answer to a refresh: what it fetched from AWS again, and what failed.
type RefreshResult struct {
	Refreshed []Refreshed     `json:"refreshed"`
	Failed    []RefreshFailed `json:"failed"`
}

// Refreshed is one item a refresh fetched again.
type Refreshed struct {
	Source string `json:"source"`
	Name   string `json:"name"`
}

// RefreshFailed is one item a refresh could not fetch: its HTTP status and error code.
type RefreshFailed struct {
	Source string `json:"source"`
	Name   string `json:"name"`
	Status int    `json:"status"`
	Error  string `json:"error"`
}

// Refresh fetches name from AWS again now, past its TTL (POST /refresh), in source (SourceParameters,
// SourceSecrets or SourceDynamoDB) or, with "", in every source that configures or allows it. The near cache
// drops the name first, even if the refresh then fails. A failed refresh is the error a failed read is; too
// many refreshes too fast an *Error with Status 429, Code "RateLimited" and RetryAfter. With offline values:
// nothing to refresh, empty lists.
func (c *Client) Refresh(ctx context.Context, name, source string) (*RefreshResult, error) {
	if name == "" {
		return nil, invalid("the name is empty")
	}
	routes := sources
	if source != "" {
		if !isSource(source) {
			return nil, invalid(fmt.Sprintf("source must be %s, %s, %s or empty, not %q",
				SourceParameters, SourceSecrets, SourceDynamoDB, source))
		}
		routes = []string{source}
	}
	query := "name=" + escape(name)
	what := fmt.Sprintf("/refresh %q", name)
	if source != "" {
		query += "&source=" + source
		what += " in " + source
	}
	if c.near != nil {
		c.near.forget(name, routes, false)
	}
	return c.refresh(ctx, query, what)
}

// RefreshAll fetches every configured item from AWS again now (POST /refresh?all=true) and drops the whole near
// cache first. Failures are listed in Failed, not returned as an error.
func (c *Client) RefreshAll(ctx context.Context) (*RefreshResult, error) {
	if c.near != nil {
		c.near.forget("", nil, true)
	}
	return c.refresh(ctx, "all=true", "/refresh all")
}

func (c *Client) refresh(ctx context.Context, query, what string) (*RefreshResult, error) {
	if c.values != nil {
		return &RefreshResult{Refreshed: []Refreshed{}, Failed: []RefreshFailed{}}, nil // offline: never stale
	}
	a, err := c.http.call(ctx, http.MethodPost, "/refresh?"+query, what, c.refreshTimeout, c.startupTimeout)
	if err != nil {
		return nil, err
	}
	var result RefreshResult
	if !isObject(string(a.body)) || json.Unmarshal(a.body, &result) != nil {
		return nil, &Error{Status: a.status, msg: what + ": the extension's answer is not the JSON object expected"}
	}
	if result.Refreshed == nil {
		result.Refreshed = []Refreshed{}
	}
	if result.Failed == nil {
		result.Failed = []RefreshFailed{}
	}
	return &result, nil
}

// get is a value: from the near cache, the offline values or the extension.
func (c *Client) get(ctx context.Context, route, name string) (raw, error) {
	key := nearKey{route, name}
	if c.near != nil { // the fast path: no HTTP
		if v, ok := c.near.get(key, c.now()); ok {
			return v, nil
		}
	}
	if name == "" {
		return raw{}, invalid("the name is empty")
	}
	if c.values != nil {
		return c.offline(route, name)
	}
	var generation uint64
	if c.near != nil {
		generation = c.near.currentGeneration()
	}
	what := fmt.Sprintf("/%s %q", route, name)
	a, err := c.http.call(ctx, http.MethodGet, "/"+route+"?name="+escape(name), what, c.timeout, c.startupTimeout)
	if err != nil {
		return raw{}, err
	}
	arrival := c.now()
	v := raw{text: string(a.body), binary: !strings.HasPrefix(a.contentType, "text/")}
	if a.maxAge > 0 && c.near != nil {
		c.near.keep(key, v, arrival, arrival.Add(a.maxAge), generation)
	}
	return v, nil
}

func (c *Client) getJSON(ctx context.Context, route, name string, v any) error {
	value, err := c.get(ctx, route, name)
	if err != nil {
		return err
	}
	return decodeJSON(value.text, v, route, name)
}

func (c *Client) getBinary(ctx context.Context, route, name string) ([]byte, error) {
	value, err := c.get(ctx, route, name)
	if err != nil {
		return nil, err
	}
	if value.binary && route == SourceSecrets {
		return []byte(value.text), nil // a binary secret's bytes (application/octet-stream)
	}
	if value.jsonValue { // base64 text is given as a string, never as a JSON value
		return nil, &Error{msg: fmt.Sprintf("/%s %q: the Binary calls need base64 text, and the offline value is a JSON value", route, name)}
	}
	data, err := base64.StdEncoding.DecodeString(value.text)
	if err != nil {
		return nil, &Error{msg: fmt.Sprintf("/%s %q: the value is not valid base64", route, name)}
	}
	return data, nil
}

// decodeJSON decodes text into v, numbers into `any` as json.Number. Its error never quotes the text: a
// json.SyntaxError's would show a character of the value.
func decodeJSON(text string, v any, route, name string) error {
	decoder := json.NewDecoder(strings.NewReader(text))
	decoder.UseNumber()
	err := decoder.Decode(v)
	if err == nil && decoder.More() {
		err = fmt.Errorf("more than one JSON value")
	}
	if err != nil {
		reason := "is not valid JSON"
		if typeErr, ok := err.(*json.UnmarshalTypeError); ok && typeErr.Field != "" {
			reason = "does not fit the Go type at " + typeErr.Field
		}
		return &Error{msg: fmt.Sprintf("/%s %q: the value %s", route, name, reason)}
	}
	return nil
}

func isObject(text string) bool {
	trimmed := bytes.TrimLeft([]byte(text), " \t\r\n")
	return len(trimmed) > 0 && trimmed[0] == '{'
}

func isSource(source string) bool {
	for _, s := range sources {
		if s == source {
			return true
		}
	}
	return false
}
