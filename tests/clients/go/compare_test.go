package contract

import (
	"encoding/json"
	"fmt"
	"math/big"
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
