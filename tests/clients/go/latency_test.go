package contract

import (
	"context"
	"os"
	"sort"
	"testing"
	"time"

	cacheclient "github.com/lambda-cache-extension/lambda-cache-extension/layer/go/cacheclient"
)

// TestLatency measures one read's latency through the client against the extension the contract's variables
// name: from the near cache, and over HTTP (near cache off). It reports numbers and asserts none; it runs only
// with CONTRACT_LATENCY=N (reads per kind):
//
//	CONTRACT_LATENCY=20000 CACHE_EXTENSION_PORT=... AWS_SESSION_TOKEN=... go test -run TestLatency -v .
func TestLatency(t *testing.T) {
	n := 0
	if text := os.Getenv("CONTRACT_LATENCY"); text != "" {
		for _, c := range text {
			n = n*10 + int(c-'0')
		}
	}
	if n <= 0 {
		t.Skip("CONTRACT_LATENCY (the number of reads per kind) is not set")
	}
	ctx := context.Background()
	for _, near := range []bool{true, false} {
		client, err := cacheclient.New(cacheclient.Options{NearCache: cacheclient.Bool(near)})
		if err != nil {
			t.Fatal(err)
		}
		samples := make([]time.Duration, n)
		for i := -n / 10; i < n; i++ { // a tenth more as a warm-up
			started := time.Now()
			if _, err := client.GetParameter(ctx, "CacheExtensions_Parameter1"); err != nil {
				t.Fatal(err)
			}
			if i >= 0 {
				samples[i] = time.Since(started)
			}
		}
		client.Close()
		sort.Slice(samples, func(a, b int) bool { return samples[a] < samples[b] })
		kind := "HTTP read"
		if near {
			kind = "near-cache read"
		}
		t.Logf("%s: p50 %v, p90 %v, p99 %v over %d reads", kind, samples[n/2], samples[n*9/10], samples[n*99/100], n)
	}
}
