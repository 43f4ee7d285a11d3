package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opentrace/service-accounts/pkg/local"
)

// loadKind is one route under load.
type loadKind struct {
	name, path, bearer string
	lat                []time.Duration
	errors             int64
	firstError         atomic.Value
	elapsed            time.Duration
}

type loadResult struct {
	workers int
	kinds   []*loadKind
}

// loadStack serves template.yaml on a loopback port in this process and puts GET /v1/whoami
// (through the authorizer, with a live service-account token) and GET /local/health (neither
// authorizer nor function: the stack's own floor) under the same bounded load, in alternating
// slices so both see the same machine.
func loadStack(ctx context.Context, o options) (*loadResult, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	// The stage's throttle (template.yaml: 1,000 req/s steady, 2,000 burst by default) would
	// answer most of this load with 429 before the authorizer: raised, so that what is measured
	// is the stack. The authorizer's result cache keeps its default TTL, 0: every request is
	// authorized.
	stack, err := local.Start(ctx, ln, local.Options{
		Template: "template.yaml", Logs: io.Discard,
		Params: map[string]string{"ApiThrottlingRateLimit": "1000000", "ApiThrottlingBurstLimit": "1000000"},
	})
	if err != nil {
		ln.Close()
		return nil, err
	}
	defer stack.Close()

	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		MaxIdleConns: o.workers, MaxIdleConnsPerHost: o.workers, MaxConnsPerHost: o.workers,
		IdleConnTimeout: time.Minute, DisableCompression: true,
	}}
	call := func(method, path, bearer string, body any) (int, map[string]any, error) {
		var rd io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
		req, err := http.NewRequestWithContext(ctx, method, stack.URL+path, rd)
		if err != nil {
			return 0, nil, err
		}
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/json") // the local endpoints take only JSON
		}
		resp, err := hc.Do(req)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out, nil
	}
	_, dev, err := call("POST", "/local/dev-token", "", map[string]string{"org": "org_load", "role": "admin", "user": "user_bench"})
	if err != nil {
		return nil, err
	}
	admin, _ := dev["token"].(string)
	status, acct, err := call("POST", "/orgs/org_load/service-accounts", admin, map[string]string{"name": "load-bench"})
	if err != nil || status != 201 {
		return nil, fmt.Errorf("create account: %d %v %v", status, acct, err)
	}
	status, tok, err := call("POST", fmt.Sprintf("/orgs/org_load/service-accounts/%s/tokens", acct["id"]), admin, map[string]string{"name": "load"})
	if err != nil || status != 201 {
		return nil, fmt.Errorf("generate token: %d %v %v", status, tok, err)
	}
	secret, _ := tok["token"].(string)

	health := &loadKind{name: "GET /local/health", path: "/local/health"}
	whoami := &loadKind{name: "GET /v1/whoami", path: "/v1/whoami", bearer: secret}
	res := &loadResult{workers: o.workers, kinds: []*loadKind{whoami, health}}

	// A short warm-up of each, not counted: connections, the authorizer's first write.
	for _, k := range []*loadKind{health, whoami} {
		if _, err := hammer(ctx, hc, stack.URL, k, o.workers, 500*time.Millisecond, false); err != nil {
			return nil, err
		}
	}
	const slices = 5
	slice := o.loadFor / slices
	for i := range slices {
		order := []*loadKind{health, whoami}
		if i%2 == 1 {
			order = []*loadKind{whoami, health}
		}
		for _, k := range order {
			if _, err := hammer(ctx, hc, stack.URL, k, o.workers, slice, true); err != nil {
				return nil, err
			}
		}
	}
	if whoami.errors+health.errors > 0 {
		return res, fmt.Errorf("load: %d whoami and %d health requests did not answer 200 (whoami: %v; health: %v)",
			whoami.errors, health.errors, whoami.firstError.Load(), health.firstError.Load())
	}
	return res, nil
}

// hammer sends GETs to k's route from workers goroutines, each one request at a time, for d,
// and records every latency when record is set.
func hammer(ctx context.Context, hc *http.Client, base string, k *loadKind, workers int, d time.Duration, record bool) (int, error) {
	var (
		mu     sync.Mutex
		wg     sync.WaitGroup
		errs   atomic.Int64
		failed atomic.Value
	)
	start := time.Now()
	deadline := start.Add(d)
	for range workers {
		wg.Go(func() {
			var lat []time.Duration
			for time.Now().Before(deadline) {
				req, err := http.NewRequestWithContext(ctx, "GET", base+k.path, nil)
				if err != nil {
					failed.Store(err.Error())
					return
				}
				if k.bearer != "" {
					req.Header.Set("Authorization", "Bearer "+k.bearer)
				}
				t0 := time.Now()
				resp, err := hc.Do(req)
				if err != nil {
					failed.Store(err.Error())
					return
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				lat = append(lat, time.Since(t0))
				if resp.StatusCode != 200 {
					if errs.Add(1) == 1 {
						k.firstError.Store(fmt.Sprintf("HTTP %d %s", resp.StatusCode, body))
					}
				}
			}
			mu.Lock()
			if record {
				k.lat = append(k.lat, lat...)
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	if record {
		k.elapsed += time.Since(start)
		k.errors += errs.Load()
	}
	if msg := failed.Load(); msg != nil {
		return 0, fmt.Errorf("load on %s: %v", k.path, msg)
	}
	return int(errs.Load()), nil
}

func (k *loadKind) rps() float64 { return float64(len(k.lat)) / k.elapsed.Seconds() }

func (k *loadKind) quantile(q float64) time.Duration {
	s := slices.Clone(k.lat)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

func (r *loadResult) addRows(t *table) {
	s := fmt.Sprintf("load on the local stack (%d workers, loopback)", r.workers)
	for _, k := range r.kinds {
		t.add(s, k.name, fmt.Sprintf("%.0f req/s", k.rps()),
			fmt.Sprintf("p50 %.2f ms, p99 %.2f ms, %d requests in %.1f s, %d not 200",
				ms(k.quantile(0.50)), ms(k.quantile(0.99)), len(k.lat), k.elapsed.Seconds(), k.errors))
	}
	whoami, health := r.kinds[0], r.kinds[1]
	t.add(s, "whoami ÷ health throughput", fmt.Sprintf("%.2f", whoami.rps()/health.rps()),
		fmt.Sprintf("p50 %.1f×, p99 %.1f× health's", ms(whoami.quantile(0.5))/ms(health.quantile(0.5)), ms(whoami.quantile(0.99))/ms(health.quantile(0.99))))
}
