package cacheclient

import (
	"context"
	"encoding/json"
	"fmt"
)

// GetParameterKey is one top-level key of a JSON object parameter, as text: a string member's text, any other
// member's JSON text exactly as the value holds it (1.50 stays 1.50); the last of a repeated key counts. The whole
// value is read (and kept by the near cache), so several keys of one value cost one request. An absent key is a
// *NotFoundError (Status 404, Code "KeyNotFound"), a value that is not a JSON object an *Error (Status 400, Code
// "NotJsonObject").
func (c *Client) GetParameterKey(ctx context.Context, name, key string) (string, error) {
	return c.getKey(ctx, SourceParameters, name, key)
}

// GetSecretKey is one top-level key of a JSON object secret, as text (GetSecretKey(ctx, "app/db", "password")),
// by GetParameterKey's rules; a binary secret is a 400 "NotJsonObject".
func (c *Client) GetSecretKey(ctx context.Context, name, key string) (string, error) {
	return c.getKey(ctx, SourceSecrets, name, key)
}

func (c *Client) getKey(ctx context.Context, route, name, key string) (string, error) {
	if key == "" {
		return "", invalid("the key is empty")
	}
	value, err := c.get(ctx, route, name)
	if err != nil {
		return "", err
	}
	text, status, code, message := member(value, key)
	if status == 0 {
		return text, nil
	}
	base := &Error{Status: status, Code: code, msg: fmt.Sprintf("/%s %q: HTTP %d %s: %s", route, name, status, code, message)}
	if status == 404 {
		return "", &NotFoundError{base}
	}
	return "", base
}

// member is the extension's key= rule (GET /secrets?name=ID&key=K) applied to a value the client holds: the text
// of member key, or the status, code and message of the error (which never quotes the value).
func member(value raw, key string) (text string, status int, code, message string) {
	notObject := "the value is not a JSON object, so it has no keys"
	if value.binary {
		return "", 400, "NotJsonObject", notObject
	}
	var members map[string]json.RawMessage // each member's bytes exactly as written; the last of a name wins
	if !isObject(value.text) || json.Unmarshal([]byte(value.text), &members) != nil {
		return "", 400, "NotJsonObject", notObject
	}
	found, ok := members[key]
	if !ok {
		return "", 404, "KeyNotFound", fmt.Sprintf("the value has no top-level key %q", key)
	}
	if len(found) > 0 && found[0] == '"' {
		var s string
		if json.Unmarshal(found, &s) == nil {
			return s, 0, "", ""
		}
	}
	return string(found), 0, "", ""
}
