package e2e

import (
	"context"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"
)

// tally counts responses by the version that answered (X-Version) and by
// status code.
type tally struct {
	Versions map[string]int
	Codes    map[int]int
	// Failed counts requests that got no HTTP answer at all.
	Failed int
}

// total is the number of answered requests.
func (c tally) total() int {
	n := 0
	for _, v := range c.Versions {
		n += v
	}
	return n
}

// share is the part of answered requests served by version.
func (c tally) share(version string) float64 {
	if c.total() == 0 {
		return 0
	}
	return float64(c.Versions[version]) / float64(c.total())
}

// String shows the counts for failure messages.
func (c tally) String() string {
	return fmt.Sprintf("versions %v, status codes %v, no answer %d", c.Versions, c.Codes, c.Failed)
}

// users sends user traffic through nginx: every request carries a user id
// (cookie user_id) and a new connection, so a reload of nginx takes effect
// for the next request, and every answer is counted by the version in its
// X-Version header.
type users struct {
	url    string
	client *http.Client

	mu      sync.Mutex
	current tally
}

// newUsers returns a load generator for the app behind url.
func newUsers(url string) *users {
	return &users{
		url: url,
		client: &http.Client{
			Timeout:   5 * time.Second,
			Transport: &http.Transport{DisableKeepAlives: true},
		},
		current: tally{Versions: map[string]int{}, Codes: map[int]int{}},
	}
}

// request sends one request as the user and returns the version that
// answered and the status, or an error when nothing answered.
func (u *users) request(ctx context.Context, user string) (string, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.url+"/shop", nil)
	if err != nil {
		return "", 0, err
	}
	req.AddCookie(&http.Cookie{Name: "user_id", Value: user})
	resp, err := u.client.Do(req)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.Header.Get("X-Version"), resp.StatusCode, nil
}

// record counts one answer.
func (u *users) record(version string, code int, err error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if err != nil {
		u.current.Failed++
		return
	}
	u.current.Versions[version]++
	u.current.Codes[code]++
}

// start sends steady traffic from random users, about rate requests a
// second, until the test ends.
func (u *users) start(t *testing.T, rate int) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	wg.Go(func() {
		tick := time.NewTicker(time.Second / time.Duration(rate))
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			version, code, err := u.request(ctx, fmt.Sprintf("u%d", rand.IntN(10_000)))
			if ctx.Err() != nil {
				return
			}
			u.record(version, code, err)
		}
	})
}

// reset starts a new count and returns the one that ended.
func (u *users) reset() tally {
	u.mu.Lock()
	defer u.mu.Unlock()
	ended := u.current
	u.current = tally{Versions: map[string]int{}, Codes: map[int]int{}}
	return ended
}

// measure counts the answers of the next d.
func (u *users) measure(d time.Duration) tally {
	u.reset()
	time.Sleep(d)
	return u.reset()
}

// stickiness sends rounds requests for each of the users and returns the
// versions each user was answered by.
func (u *users) stickiness(ctx context.Context, ids []string, rounds int) (map[string]map[string]int, error) {
	seen := map[string]map[string]int{}
	for range rounds {
		for _, id := range ids {
			version, _, err := u.request(ctx, id)
			if err != nil {
				return nil, fmt.Errorf("request of user %s: %w", id, err)
			}
			if seen[id] == nil {
				seen[id] = map[string]int{}
			}
			seen[id][version]++
		}
	}
	return seen, nil
}

// versionsOf lists the versions in a user's answers, for messages.
func versionsOf(m map[string]int) []string {
	return slices.Sorted(maps.Keys(m))
}
