package cacheclient

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

var ctx = context.Background()

func TestNearCacheKeepsForMaxAgeOnTheClock(t *testing.T) {
	f := newFake(t, text("v", "max-age=3"))
	c := newClient(t, f, Options{})
	clock := &fakeClock{at: time.Unix(1000, 0)}
	c.now = clock.now
	for i := 0; i < 5; i++ {
		if v, err := c.GetParameter(ctx, "p"); err != nil || v != "v" {
			t.Fatalf("read %d: %q, %v", i, v, err)
		}
		clock.advance(500 * time.Millisecond) // 0, 0.5, ... 2.0 s: within max-age
	}
	if f.count() != 1 {
		t.Fatalf("%d requests while max-age lasted, expected 1", f.count())
	}
	clock.advance(time.Second) // 3.0 s after the answer: expired
	c.GetParameter(ctx, "p")
	if f.count() != 2 {
		t.Fatalf("%d requests after max-age, expected 2", f.count())
	}
	// Each route has its own entries: the same name as a secret is another read.
	c.GetSecret(ctx, "p")
	if f.count() != 3 {
		t.Fatalf("%d requests, expected 3", f.count())
	}
}

func TestNearCacheUsesTheMonotonicClock(t *testing.T) {
	f := newFake(t, text("v", "max-age=60"))
	c := newClient(t, f, Options{})
	c.GetParameter(ctx, "p")
	// A wall clock set back or forward does not move the expiry: time.Now carries a monotonic reading, and
	// comparisons between two such times use it.
	kept := c.near.entries[nearKey{"parameters", "p"}]
	if kept.expires.String() == kept.expires.Round(0).String() {
		t.Fatal("the expiry has no monotonic clock reading")
	}
	c.GetParameter(ctx, "p")
	if f.count() != 1 {
		t.Fatalf("%d requests, expected 1", f.count())
	}
}

func TestNearCacheNeverKeeps(t *testing.T) {
	for _, cacheControl := range []string{"", "max-age=0", "no-store, max-age=5", "max-age=5, no-cache", "max-age=1.5",
		"max-age=-1", "max-age=5, max-age=5", "max-age=", "s-maxage=5"} {
		f := newFake(t, text("v", cacheControl))
		c := newClient(t, f, Options{})
		c.GetParameter(ctx, "p")
		c.GetParameter(ctx, "p")
		if f.count() != 2 {
			t.Errorf("Cache-Control %q: %d requests, expected 2", cacheControl, f.count())
		}
	}
	// Errors are never kept, whatever their Cache-Control.
	f := newFake(t, answerWith(404, "application/json", `{"error":"NotConfigured","message":"m"}`, "max-age=60"))
	c := newClient(t, f, Options{})
	for i := 0; i < 2; i++ {
		if _, err := c.GetParameter(ctx, "p"); err == nil {
			t.Fatal("expected an error")
		}
	}
	if f.count() != 2 {
		t.Fatalf("%d requests, expected 2", f.count())
	}
}

func TestNearCacheOff(t *testing.T) {
	f := newFake(t, text("v", "max-age=60"))
	c := newClient(t, f, Options{NearCache: Bool(false)})
	c.GetParameter(ctx, "p")
	c.GetParameter(ctx, "p")
	if f.count() != 2 || c.NearCache() {
		t.Fatalf("%d requests, near cache %t", f.count(), c.NearCache())
	}
}

func TestNearCacheVariable(t *testing.T) {
	for value, on := range map[string]bool{"on": true, "OFF": false, "True": true, "false": false, "1": true, "0": false,
		"yes": true, "No": false, "": true} {
		clearEnvironment(t)
		t.Setenv(NearCacheVariable, value)
		c, err := New(Options{Port: 1})
		if err != nil || c.NearCache() != on {
			t.Errorf("%s=%q: near cache %v, %v", NearCacheVariable, value, c != nil && c.NearCache(), err)
		}
	}
	for _, value := range []string{"sometimes", "enabled", "ON ", "2"} {
		clearEnvironment(t)
		t.Setenv(NearCacheVariable, value)
		_, err := New(Options{Port: 1})
		var e *Error
		if !asError(err, &e) || e.Status != 0 || !strings.Contains(err.Error(), NearCacheVariable) ||
			strings.Contains(err.Error(), value) {
			t.Errorf("%q: %v", value, err)
		}
		// The option decides without the variable: it is not read at all.
		if c, err := New(Options{Port: 1, NearCache: Bool(true)}); err != nil || !c.NearCache() {
			t.Errorf("with the option: %v", err)
		}
	}
}

func TestRefreshDropsBeforeSending(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			answerWith(502, "application/json", `{"error":"Boom","message":"m"}`, "")(w, r)
			return
		}
		text("v", "max-age=60")(w, r)
	})
	c := newClient(t, f, Options{})
	c.GetParameter(ctx, "a")
	c.GetSecret(ctx, "a")
	c.GetParameter(ctx, "b")
	if _, err := c.Refresh(ctx, "a", SourceSecrets); err == nil { // fails, and still dropped
		t.Fatal("expected the refresh to fail")
	}
	if _, ok := c.near.get(nearKey{"secrets", "a"}, c.now()); ok {
		t.Fatal("the refreshed secret is still kept")
	}
	if _, ok := c.near.get(nearKey{"parameters", "a"}, c.now()); !ok {
		t.Fatal("a refresh in secrets dropped the parameter of that name")
	}
	c.Refresh(ctx, "a", "")
	if _, ok := c.near.get(nearKey{"parameters", "a"}, c.now()); ok {
		t.Fatal("a refresh in every source kept the parameter")
	}
	c.RefreshAll(ctx)
	if c.near.len() != 0 {
		t.Fatalf("%d entries after RefreshAll", c.near.len())
	}
}

func TestAnAnswerInFlightDuringARefreshIsNotKept(t *testing.T) {
	release := make(chan struct{})
	arrived := make(chan struct{})
	f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			close(arrived)
			<-release // the old value is on its way while the refresh happens
			text("old", "max-age=60")(w, r)
			return
		}
		answerWith(200, "application/json", `{"refreshed":[],"failed":[]}`, "")(w, r)
	})
	c := newClient(t, f, Options{})
	done := make(chan error)
	go func() { _, err := c.GetParameter(ctx, "p"); done <- err }()
	<-arrived
	if _, err := c.Refresh(ctx, "p", ""); err != nil {
		t.Fatal(err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if c.near.len() != 0 {
		t.Fatal("an answer that may predate the refresh was kept")
	}
}

func TestNearCacheHoldsAtMostAThousand(t *testing.T) {
	f := newFake(t, text("v", "max-age=60"))
	c := newClient(t, f, Options{})
	clock := &fakeClock{at: time.Unix(1000, 0)}
	c.now = clock.now
	for i := 0; i < nearMax+5; i++ {
		clock.advance(time.Millisecond)
		c.GetParameter(ctx, fmt.Sprint("p", i))
	}
	if c.near.len() != nearMax {
		t.Fatalf("%d entries, expected %d", c.near.len(), nearMax)
	}
	for i := 0; i < 5; i++ { // the oldest went first
		if _, ok := c.near.entries[nearKey{"parameters", fmt.Sprint("p", i)}]; ok {
			t.Fatalf("p%d, among the oldest, is still kept", i)
		}
	}
	// Expired entries go before the oldest fresh one.
	clock.advance(59*time.Second + 990*time.Millisecond) // p5..p9 expired (kept at 1.006..1.010 s, max-age 60)
	c.GetParameter(ctx, "new")
	if _, ok := c.near.entries[nearKey{"parameters", "p999"}]; !ok || c.near.len() > nearMax {
		t.Fatalf("%d entries; the newest were dropped before expired ones", c.near.len())
	}
}

func TestEveryReadIsFresh(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasPrefix(r.URL.Path, "/dynamodb"):
			answerWith(200, "application/json", `{"id":"1","list":[1,2],"nested":{"n":12345678901234567890.5}}`, "max-age=60")(w, r)
		default:
			answerWith(200, "application/octet-stream", "\x00\xff\x01", "max-age=60")(w, r)
		}
	})
	c := newClient(t, f, Options{})
	item, _ := c.GetItem(ctx, "T-1")
	item["id"] = "changed"
	item["list"].([]any)[0] = "changed"
	item["nested"].(map[string]any)["n"] = "changed"
	again, err := c.GetItem(ctx, "T-1")
	if err != nil || again["id"] != "1" || again["list"].([]any)[0] != json.Number("1") ||
		again["nested"].(map[string]any)["n"] != json.Number("12345678901234567890.5") {
		t.Fatalf("the second read changed with the first one's result: %v, %v", again, err)
	}
	data, _ := c.GetSecretBinary(ctx, "b")
	data[0] = 42
	if again, _ := c.GetSecretBinary(ctx, "b"); string(again) != "\x00\xff\x01" {
		t.Fatal("the second read changed with the first one's bytes")
	}
	if f.count() != 2 {
		t.Fatalf("%d requests, expected 2 (the rest from the near cache)", f.count())
	}
}

func TestCloseDropsTheNearCache(t *testing.T) {
	f := newFake(t, text("v", "max-age=60"))
	c := newClient(t, f, Options{})
	c.GetParameter(ctx, "p")
	c.Close()
	c.GetParameter(ctx, "p")
	if f.count() != 2 {
		t.Fatalf("%d requests, expected 2", f.count())
	}
}

func TestConcurrentReadsAndRefreshes(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			answerWith(200, "application/json", `{"refreshed":[],"failed":[]}`, "")(w, r)
			return
		}
		text("v", "max-age=60")(w, r)
	})
	c := newClient(t, f, Options{})
	done := make(chan error, 8)
	for g := 0; g < 8; g++ {
		go func(g int) {
			for i := 0; i < 50; i++ {
				if g == 0 && i%10 == 0 {
					if _, err := c.Refresh(ctx, "p1", ""); err != nil {
						done <- err
						return
					}
				}
				if v, err := c.GetParameter(ctx, fmt.Sprint("p", i%5)); err != nil || v != "v" {
					done <- fmt.Errorf("%q, %v", v, err)
					return
				}
			}
			done <- nil
		}(g)
	}
	for g := 0; g < 8; g++ {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if n := f.connections(); n > maxConns+5 { // GETs share at most maxConns; each refresh has its own
		t.Fatalf("%d connections", n)
	}
}
