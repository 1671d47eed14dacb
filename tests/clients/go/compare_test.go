package contract

// How a result is checked against a case's expect: value, base64, json, includes, exact.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/big"
	"reflect"
	"strconv"
	"strings"
)

// sameNumber compares two decimal texts by value, exactly (1.50 equals 1.5), never through a binary float.
func sameNumber(a, b string) bool {
	x, okX := new(big.Rat).SetString(a)
	y, okY := new(big.Rat).SetString(b)
	return okX && okY && x.Cmp(y) == 0
}

// checkExact is the "exact" expectation: each key a path into the result (member names and array indexes
// joined by "."), whose number must be a json.Number equal to the decimal text given.
func checkExact(result any, raw json.RawMessage) error {
	var exact map[string]string
	if err := json.Unmarshal(raw, &exact); err != nil {
		return err
	}
	for path, text := range exact {
		got := result
		for _, step := range strings.Split(path, ".") {
			switch node := got.(type) {
			case map[string]any:
				got = node[step]
			case []any:
				i, err := strconv.Atoi(step)
				if err != nil || i < 0 || i >= len(node) {
					return fmt.Errorf("%s: no element %s", path, step)
				}
				got = node[i]
			default:
				return fmt.Errorf("%s: a %T has no member %s", path, got, step)
			}
		}
		number, ok := got.(json.Number)
		if !ok {
			return fmt.Errorf("%s: a %T, not a json.Number", path, got)
		}
		if !sameNumber(string(number), text) {
			return fmt.Errorf("%s: %s is not %s", path, number, text)
		}
	}
	return nil
}

func checkResult(result any, expect map[string]json.RawMessage) error {
	if raw, ok := expect["value"]; ok {
		var want string
		json.Unmarshal(raw, &want)
		if got, isText := result.(string); !isText || got != want {
			return fmt.Errorf("expected the value %q, got a %T", want, result)
		}
		return nil
	}
	if raw, ok := expect["base64"]; ok {
		var want []byte // encoding/json decodes base64 text into []byte
		if err := json.Unmarshal(raw, &want); err != nil {
			return err
		}
		if got, isBytes := result.([]byte); !isBytes || !bytes.Equal(got, want) {
			return fmt.Errorf("expected %d bytes, got a %T that differs", len(want), result)
		}
		return nil
	}
	if raw, ok := expect["exact"]; ok {
		return checkExact(result, raw)
	}
	got, err := normalized(result)
	if err != nil {
		return err
	}
	want, err := normalized(json.RawMessage(firstOf(expect, "json", "includes")))
	if err != nil {
		return fmt.Errorf("unknown expect %v", keys(expect))
	}
	if _, ok := expect["json"]; ok {
		if !sameJSON(got, want, false) {
			return fmt.Errorf("%s is not %s", describe(got), describe(want))
		}
		return nil
	}
	if !sameJSON(got, want, true) {
		return fmt.Errorf("%s does not include %s", describe(got), describe(want))
	}
	return nil
}

func firstOf(m map[string]json.RawMessage, names ...string) []byte {
	for _, name := range names {
		if raw, ok := m[name]; ok {
			return raw
		}
	}
	return nil
}

func keys(m map[string]json.RawMessage) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func describe(v any) string {
	data, _ := json.Marshal(v)
	return string(data)
}

// normalized is a result as generic JSON data, every number a json.Number (a typed result goes through JSON).
func normalized(v any) (any, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	decoder := json.NewDecoder(bytes.NewReader(data))
	decoder.UseNumber()
	var out any
	err = decoder.Decode(&out)
	return out, err
}

// sameJSON compares JSON data, numbers by value (exactly, as decimals); with includes, objects may have more
// members and arrays more elements, in any order (each expected element included in some element).
func sameJSON(got, want any, includes bool) bool {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok || (!includes && len(g) != len(w)) {
			return false
		}
		for key, value := range w {
			if item, present := g[key]; !present || !sameJSON(item, value, includes) {
				return false
			}
		}
		return true
	case []any:
		g, ok := got.([]any)
		if !ok {
			return false
		}
		if !includes {
			if len(g) != len(w) {
				return false
			}
			for i := range w {
				if !sameJSON(g[i], w[i], false) {
					return false
				}
			}
			return true
		}
		for _, value := range w {
			found := false
			for _, item := range g {
				if sameJSON(item, value, true) {
					found = true
					break
				}
			}
			if !found {
				return false
			}
		}
		return true
	case json.Number:
		g, ok := got.(json.Number)
		return ok && sameNumber(string(g), string(w))
	}
	return reflect.DeepEqual(got, want)
}
