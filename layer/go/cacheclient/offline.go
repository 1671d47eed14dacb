package cacheclient

import (
	"encoding/json"
	"fmt"
	"os"
)

// offline answers a read from the offline values, as the extension would: text, or an item as JSON text.
func (c *Client) offline(route, name string) (raw, error) {
	var (
		text  string
		found bool
	)
	switch route {
	case SourceParameters:
		text, found = c.values.Parameters[name]
	case SourceSecrets:
		text, found = c.values.Secrets[name]
	case SourceDynamoDB:
		var item any
		if item, found = c.values.DynamoDB[name]; found {
			data, err := itemJSON(item)
			if err != nil {
				return raw{}, &Error{msg: fmt.Sprintf("/%s %q: the offline item cannot be written as JSON", route, name)}
			}
			return raw{text: data, binary: true}, nil
		}
	}
	if !found {
		return raw{}, &NotFoundError{&Error{Status: 404, Code: "NotConfigured",
			msg: fmt.Sprintf("/%s %q is not among the offline values", route, name)}}
	}
	return raw{text: text}, nil
}

// itemJSON is an offline item as JSON text: JSON text given as a string is taken as it is, anything else is
// marshalled (a json.Number keeps its digits).
func itemJSON(item any) (string, error) {
	switch v := item.(type) {
	case string:
		return v, nil
	case json.RawMessage:
		return string(v), nil
	}
	data, err := json.Marshal(item)
	return string(data), err
}

// loadValues reads the offline values file; its errors name the variable and the path, never the content.
func loadValues(path string) (*Values, error) {
	file, err := os.Open(path)
	if err != nil {
		return nil, &Error{cause: err, msg: fmt.Sprintf("%s=%q cannot be read", ValuesVariable, path)}
	}
	defer file.Close()
	decoder := json.NewDecoder(file)
	decoder.UseNumber()
	decoder.DisallowUnknownFields()
	var values Values
	if err := decoder.Decode(&values); err != nil {
		return nil, &Error{msg: fmt.Sprintf("%s=%q is not a JSON object with only the keys parameters, secrets "+
			"and dynamodb, each an object of strings (items: objects)", ValuesVariable, path)}
	}
	return &values, nil
}
