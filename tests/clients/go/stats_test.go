package contract

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"
)

// What GET /stats counts as a read the extension served, per source.
var servedCounters = []string{"Hits", "Misses", "StaleServed"}

// servedReads is the number of reads the extension has served so far: the sum over every source of Hits, Misses
// and StaleServed in its GET /stats, asked with its token (this runner's own AWS_SESSION_TOKEN).
func servedReads() (int, error) {
	token := os.Getenv("AWS_SESSION_TOKEN")
	if token == "" {
		return 0, errors.New("AWS_SESSION_TOKEN (the extension's token) is not set: GET /stats needs it")
	}
	request, err := http.NewRequest(http.MethodGet, "http://127.0.0.1:"+os.Getenv("CACHE_EXTENSION_PORT")+"/stats", nil)
	if err != nil {
		return 0, err
	}
	request.Header.Set("X-Aws-Parameters-Secrets-Token", token)
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	response, err := client.Do(request)
	if err != nil {
		return 0, fmt.Errorf("GET /stats: %w", err)
	}
	defer response.Body.Close()
	if response.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET /stats answered %d", response.StatusCode)
	}
	var stats struct {
		Cache map[string]map[string]int `json:"cache"`
	}
	if err := json.NewDecoder(response.Body).Decode(&stats); err != nil {
		return 0, fmt.Errorf("GET /stats: not the JSON expected (%v)", err)
	}
	total := 0
	for _, counters := range stats.Cache {
		for _, name := range servedCounters {
			total += counters[name]
		}
	}
	return total, nil
}
