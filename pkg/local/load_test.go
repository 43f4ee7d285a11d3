package local_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opentrace/service-accounts/pkg/local"
)

// loadDuration is how long TestConcurrentLoad runs: 30 s in `make test`; LOAD_DURATION (a Go
// duration) shortens or lengthens it.
func loadDuration(t *testing.T) time.Duration {
	t.Helper()
	if s := os.Getenv("LOAD_DURATION"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 || d > 10*time.Minute {
			t.Fatalf("LOAD_DURATION=%q: want a duration up to 10m", s)
		}
		return d
	}
	return 30 * time.Second
}

// loadToken records, for one token, when its end (revoke or its account's delete) returned.
type loadToken struct {
	secret, id, saID string
	how              atomic.Value // "revoke" or "delete": what ended it
	ended            atomic.Int64 // unix nanos when the revoke or delete returned; 0 while live
}

// TestConcurrentLoad: 20 clients generate, revoke, delete and authorize on shared accounts
// of up to 200 tokens, for a bounded time, on loopback only. The accounts start full, so their
// deletes fan out over several pages while tokens are generated and revoked. No token ever
// authorizes in a request that started after its revoke or delete returned, no request gets a
// 5xx, and at the end every account's stored active-token counter equals its true number of
// active tokens.
func TestConcurrentLoad(t *testing.T) {
	const maxTokens = 200
	s, logs := startStack(t, func(o *local.Options) { o.Params = map[string]string{"MaxActiveTokens": fmt.Sprint(maxTokens)} })
	defer func() {
		if t.Failed() {
			for _, l := range strings.Split(logs.String(), "\n") {
				if strings.Contains(l, `"level":"ERROR"`) {
					t.Log(l)
				}
			}
		}
	}()
	admin := devToken(t, s, "org_load", "admin", "user_load")
	api := s.URL + "/orgs/org_load/service-accounts"
	const clients, accounts = 20, 4

	var (
		mu       sync.Mutex
		live     = map[string][]*loadToken{} // by account
		all      []*loadToken
		acctIDs  []string
		seq      atomic.Int64
		ops      = map[string]*atomic.Int64{"generate": {}, "revoke": {}, "delete": {}, "authorize": {}, "create": {}}
		failures []string
	)
	fail := func(format string, args ...any) {
		mu.Lock()
		failures = append(failures, fmt.Sprintf(format, args...))
		mu.Unlock()
	}
	create := func() {
		r := call(t, "POST", api, admin, map[string]string{"name": fmt.Sprintf("load-%d", seq.Add(1))})
		ops["create"].Add(1)
		if r.status != 201 {
			fail("create: %d %s", r.status, r.raw)
			return
		}
		mu.Lock()
		acctIDs = append(acctIDs, r.body["id"].(string))
		mu.Unlock()
	}
	for range accounts {
		create()
	}
	// Fill every account to the cap, so that deletes have pages of tokens to go through.
	var fill sync.WaitGroup
	for c := range clients {
		fill.Go(func() {
			for i := c; i < accounts*maxTokens; i += clients {
				mu.Lock()
				saID := acctIDs[i%accounts]
				mu.Unlock()
				r := call(t, "POST", api+"/"+saID+"/tokens", admin, nil)
				if r.status != 201 {
					fail("fill: %d %s", r.status, r.raw)
					return
				}
				ts := &loadToken{secret: r.body["token"].(string), id: r.body["id"].(string), saID: saID}
				mu.Lock()
				live[saID] = append(live[saID], ts)
				all = append(all, ts)
				mu.Unlock()
			}
		})
	}
	fill.Wait()
	var largestDeleted atomic.Int64 // the most tokens an account held when a delete of it returned
	pick := func(rng *rand.Rand) (string, []*loadToken, bool) {
		mu.Lock()
		defer mu.Unlock()
		if len(acctIDs) == 0 { // every account is being deleted and replaced just now
			return "", nil, false
		}
		id := acctIDs[rng.IntN(len(acctIDs))]
		return id, append([]*loadToken(nil), live[id]...), true
	}

	deadline := time.Now().Add(loadDuration(t))
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(c), 42))
			for time.Now().Before(deadline) {
				saID, tokens, ok := pick(rng)
				if !ok {
					time.Sleep(time.Millisecond)
					continue
				}
				switch op := rng.IntN(100); {
				case op < 30: // generate
					r := call(t, "POST", api+"/"+saID+"/tokens", admin, nil)
					ops["generate"].Add(1)
					switch r.status {
					case 201:
						ts := &loadToken{secret: r.body["token"].(string), id: r.body["id"].(string), saID: saID}
						mu.Lock()
						live[saID] = append(live[saID], ts)
						all = append(all, ts)
						mu.Unlock()
					case 404, 409: // deleted meanwhile, or at the cap
					default:
						fail("generate: %d %s", r.status, r.raw)
					}
				case op < 45 && len(tokens) > 0: // revoke
					ts := tokens[rng.IntN(len(tokens))]
					r := call(t, "DELETE", api+"/"+saID+"/tokens/"+ts.id, admin, nil)
					ops["revoke"].Add(1)
					switch r.status {
					case 204:
						if ts.ended.CompareAndSwap(0, time.Now().UnixNano()) {
							ts.how.Store("revoke")
						}
						mu.Lock()
						live[saID] = dropToken(live[saID], ts)
						mu.Unlock()
					case 404: // its account was deleted meanwhile
					default:
						fail("revoke: %d %s", r.status, r.raw)
					}
				case op < 46: // delete the account, and replace it
					r := call(t, "DELETE", api+"/"+saID, admin, nil)
					ops["delete"].Add(1)
					switch r.status {
					case 204:
						now := time.Now().UnixNano()
						mu.Lock()
						if n := int64(len(live[saID])); n > largestDeleted.Load() {
							largestDeleted.Store(n)
						}
						for _, ts := range all {
							if ts.saID == saID && ts.ended.CompareAndSwap(0, now) {
								ts.how.Store("delete")
							}
						}
						delete(live, saID)
						for i, id := range acctIDs {
							if id == saID {
								acctIDs = append(acctIDs[:i], acctIDs[i+1:]...)
								break
							}
						}
						mu.Unlock()
						create()
					case 404:
					default:
						fail("delete: %d %s", r.status, r.raw)
					}
				default: // authorize with a token, live or dead
					mu.Lock()
					if len(all) == 0 {
						mu.Unlock()
						continue
					}
					ts := all[rng.IntN(len(all))]
					mu.Unlock()
					started := time.Now().UnixNano()
					endedBefore := ts.ended.Load()
					r := call(t, "GET", s.URL+"/v1/whoami", ts.secret, nil)
					ops["authorize"].Add(1)
					switch {
					case r.status >= 500:
						fail("authorize: %d %s", r.status, r.raw)
					case r.status == 200 && endedBefore != 0 && endedBefore < started:
						fail("token %s authorized %v after its %v returned", ts.id, time.Duration(started-endedBefore), ts.how.Load())
					case r.status != 200 && r.status != 401:
						fail("authorize: %d %s", r.status, r.raw)
					}
				}
			}
		})
	}
	wg.Wait()
	for _, f := range failures {
		t.Error(f)
	}
	if largestDeleted.Load() < maxTokens*3/4 {
		t.Errorf("the largest account deleted held %d tokens; the test must delete accounts of close to %d", largestDeleted.Load(), maxTokens)
	}
	t.Logf("largest account deleted: %d tokens", largestDeleted.Load())

	// Counters: the stored activeTokens of every account equals its true count of active tokens.
	page := call(t, "GET", api+"?limit=100", admin, nil).want(t, 200).body["items"].([]any)
	for _, it := range page {
		acct := it.(map[string]any)
		id := acct["id"].(string)
		tokens := call(t, "GET", api+"/"+id+"/tokens", admin, nil).want(t, 200).body["items"].([]any)
		active := 0
		for _, tk := range tokens {
			if tk.(map[string]any)["status"] == "active" {
				active++
			}
		}
		if acct["activeTokens"] != float64(active) {
			t.Errorf("account %s: stored activeTokens %v, %d active tokens", id, acct["activeTokens"], active)
		}
		mu.Lock()
		believed := len(live[id])
		mu.Unlock()
		if believed != active {
			t.Errorf("account %s: %d tokens generated and not revoked, %d active", id, believed, active)
		}
	}
	total := int64(0)
	for name, n := range ops {
		total += n.Load()
		t.Logf("%s: %d", name, n.Load())
	}
	t.Logf("%d operations by %d clients in %v", total, clients, loadDuration(t))
}

func dropToken(list []*loadToken, ts *loadToken) []*loadToken {
	for i, x := range list {
		if x == ts {
			return append(list[:i:i], list[i+1:]...)
		}
	}
	return list
}
