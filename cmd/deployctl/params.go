package main

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
)

// stringList is a flag that may be given many times.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ", ") }

func (l *stringList) Set(v string) error {
	*l = append(*l, v)
	return nil
}

// parseParams turns --param key=value flags into a run's params. A value
// that is valid JSON is taken as JSON, so steps=[5,50,100] is a list of
// numbers; anything else is a string, so step_bake=2m needs no quotes.
// Numbers keep their exact text rather than passing through float64.
func parseParams(raw []string) (map[string]any, error) {
	params := make(map[string]any, len(raw))
	for _, kv := range raw {
		key, value, ok := strings.Cut(kv, "=")
		key = strings.TrimSpace(key)
		if !ok || key == "" {
			return nil, fmt.Errorf("--param %q: want key=value, such as step_bake=2m", kv)
		}
		if _, dup := params[key]; dup {
			return nil, fmt.Errorf("--param %s is given twice", key)
		}
		params[key] = paramValue(value)
	}
	return params, nil
}

// paramValue reads one --param value as JSON when it is valid JSON.
func paramValue(value string) any {
	if !json.Valid([]byte(value)) {
		return value
	}
	dec := json.NewDecoder(bytes.NewReader([]byte(value)))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return value
	}
	return v
}

// maxIdempotencyKey is the longest key the API takes.
const maxIdempotencyKey = 255

// idempotencyKey returns the key of this invocation's POST requests. An
// explicit key wins. In CI the key is derived from the CI job and the
// request's parts, so that a retry loop around deployctl in the job, or a
// second deployctl after the first lost its connection, finds the run the
// first one started instead of starting another; a re-run of the job (a new
// attempt or job id) deploys afresh. Outside CI there is no identity to derive it
// from, so each invocation gets a random key, which still makes
// deployctl's own retries safe.
func idempotencyKey(explicit string, getenv func(string) string, parts ...string) (string, error) {
	if explicit != "" {
		if len(explicit) > maxIdempotencyKey {
			return "", fmt.Errorf("--idempotency-key is %d characters long; the most is %d", len(explicit), maxIdempotencyKey)
		}
		return explicit, nil
	}
	job := ciJob(getenv)
	if job == "" {
		var b [16]byte
		if _, err := rand.Read(b[:]); err != nil {
			return "", fmt.Errorf("making an idempotency key: %w", err)
		}
		return "deployctl-" + hex.EncodeToString(b[:]), nil
	}
	h := sha256.New()
	// Each part is length-prefixed, so that no two different lists of
	// parts hash alike.
	for _, p := range append([]string{"deployctl/1", job}, parts...) {
		fmt.Fprintf(h, "%d:%s;", len(p), p)
	}
	return "deployctl-" + hex.EncodeToString(h.Sum(nil)), nil
}

// ciJob identifies the CI job deployctl runs in, or is "" outside CI.
// GitHub Actions names a job by the workflow run, its attempt and the job's
// id; GitLab gives every job, and every retry of one, its own id.
func ciJob(getenv func(string) string) string {
	if id := getenv("GITHUB_RUN_ID"); id != "" {
		return "github:" + id + ":" + getenv("GITHUB_RUN_ATTEMPT") + ":" + getenv("GITHUB_JOB")
	}
	if id := getenv("CI_JOB_ID"); id != "" {
		return "gitlab:" + id
	}
	return ""
}
