package cacheclient

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
)

// Offline values follow one rule in every client (Python, Node.js, Java, Go). Parameters and secrets: a string
// is the value as stored in AWS, what the extension would serve; in the values file any other JSON value
// (object, array, number, boolean) stands for a value whose text is that JSON: read as its compact JSON text
// (numbers as written), decoded by the JSON calls, refused by the Binary calls; null is refused. Items are JSON
// objects. Refusals happen in New and name the section and the name, never the value (it may be a secret).

// offlineValues are the checked values a client answers from, by source, then name.
type offlineValues map[string]map[string]raw

// offline answers a read from the offline values, as the extension would: text, or an item as JSON text.
func (c *Client) offline(route, name string) (raw, error) {
	value, found := c.values[route][name]
	if !found {
		return raw{}, &NotFoundError{&Error{Status: 404, Code: "NotConfigured",
			msg: fmt.Sprintf("/%s %q is not among the offline values", route, name)}}
	}
	return value, nil
}

// checkValues: the values given in code, checked (items must be JSON objects).
func checkValues(given *Values) (offlineValues, error) {
	values := offlineValues{SourceParameters: {}, SourceSecrets: {}, SourceDynamoDB: {}}
	for name, text := range given.Parameters {
		values[SourceParameters][name] = raw{text: text}
	}
	for name, text := range given.Secrets {
		values[SourceSecrets][name] = raw{text: text}
	}
	for name, item := range given.DynamoDB {
		data, err := itemJSON(item)
		if err != nil || !isObject(data) {
			return nil, &Error{msg: fmt.Sprintf("offline values: dynamodb %q must be an item, a JSON object "+
				"(a map, a struct, or JSON text of an object)", name)}
		}
		values[SourceDynamoDB][name] = raw{text: data, binary: true}
	}
	return values, nil
}

// itemJSON is an offline item as JSON text: JSON text given as a string is taken as it is, anything else is
// marshalled (a json.Number keeps its digits).
func itemJSON(item any) (string, error) {
	switch v := item.(type) {
	case string:
		return v, nil
	case json.RawMessage:
		return string(v), nil
	case nil:
		return "", errors.New("nil")
	}
	data, err := json.Marshal(item)
	return string(data), err
}

// loadValues reads the offline values file; its errors name the variable and the path, and the section and
// name of a refused value, never the content.
func loadValues(path string) (offlineValues, error) {
	file, err := os.Open(path)
	if err != nil {
		return nil, &Error{cause: err, msg: fmt.Sprintf("%s=%q cannot be read", ValuesVariable, path)}
	}
	defer file.Close()
	var sections struct {
		Parameters map[string]json.RawMessage `json:"parameters"`
		Secrets    map[string]json.RawMessage `json:"secrets"`
		DynamoDB   map[string]json.RawMessage `json:"dynamodb"`
	}
	decoder := json.NewDecoder(file)
	decoder.DisallowUnknownFields()
	if err := decoder.Decode(&sections); err != nil {
		return nil, &Error{msg: fmt.Sprintf("%s=%q is not a JSON object with only the keys parameters, secrets "+
			"and dynamodb, each an object of names to values", ValuesVariable, path)}
	}
	values := offlineValues{SourceParameters: {}, SourceSecrets: {}, SourceDynamoDB: {}}
	for source, entries := range map[string]map[string]json.RawMessage{
		SourceParameters: sections.Parameters, SourceSecrets: sections.Secrets, SourceDynamoDB: sections.DynamoDB} {
		for name, message := range entries {
			value, why := fileValue(source, message)
			if why != "" {
				return nil, &Error{msg: fmt.Sprintf("%s=%q: offline values: %s %q %s", ValuesVariable, path, source, name, why)}
			}
			values[source][name] = value
		}
	}
	return values, nil
}

// fileValue is one value of the values file, or why it is refused (never showing it).
func fileValue(source string, message json.RawMessage) (raw, string) {
	kind := jsonKind(message)
	if source == SourceDynamoDB {
		if kind != "an object" {
			return raw{}, "must be an item, a JSON object, not " + kind
		}
		return raw{text: string(message), binary: true}, ""
	}
	switch kind {
	case "null":
		return raw{}, "is null: give a string (the value as stored in AWS) or a JSON value"
	case "a string":
		var text string
		if err := json.Unmarshal(message, &text); err != nil {
			return raw{}, "is not a valid JSON string"
		}
		return raw{text: text}, ""
	}
	text, err := compactJSON(message)
	if err != nil {
		return raw{}, "is not valid JSON"
	}
	return raw{text: text, jsonValue: true}, ""
}

func jsonKind(message json.RawMessage) string {
	trimmed := bytes.TrimLeft(message, " \t\r\n")
	if len(trimmed) == 0 {
		return "empty"
	}
	switch trimmed[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

// compactJSON writes a JSON value compactly as the other clients do: member order kept, numbers as written,
// strings with only the escapes JSON needs (Go's encoder also escapes U+2028 and U+2029).
func compactJSON(message json.RawMessage) (string, error) {
	decoder := json.NewDecoder(bytes.NewReader(message))
	decoder.UseNumber()
	var out, encoded bytes.Buffer
	encoder := json.NewEncoder(&encoded)
	encoder.SetEscapeHTML(false)
	// Whether the next token needs a comma, and whether it is an object's key, per open object or array.
	type level struct {
		object, first, key bool
	}
	var stack []level
	for {
		token, err := decoder.Token()
		if err == io.EOF {
			return out.String(), nil
		}
		if err != nil {
			return "", err
		}
		if delim, ok := token.(json.Delim); ok && (delim == '}' || delim == ']') {
			out.WriteByte(byte(delim))
			stack = stack[:len(stack)-1]
			continue
		}
		if n := len(stack); n > 0 {
			top := &stack[n-1]
			switch {
			case top.object && top.key:
				if !top.first {
					out.WriteByte(',')
				}
			case top.object:
				out.WriteByte(':')
			case !top.first:
				out.WriteByte(',')
			}
			top.first = false
			if top.object {
				top.key = !top.key
			}
		}
		switch v := token.(type) {
		case json.Delim:
			out.WriteByte(byte(v))
			stack = append(stack, level{object: v == '{', first: true, key: v == '{'})
		case string:
			encoded.Reset()
			encoder.Encode(v) // a string always encodes
			out.Write(bytes.TrimSuffix(encoded.Bytes(), []byte("\n")))
		case json.Number:
			out.WriteString(v.String())
		case bool:
			out.WriteString(fmt.Sprint(v))
		case nil:
			out.WriteString("null")
		}
	}
}
