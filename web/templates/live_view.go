package templates

import (
	"strconv"
	"time"
)

// LiveView is the incident view: every run in flight across every app,
// worst first.
type LiveView struct {
	Now  time.Time
	Rows []LiveRow
	// Truncated says more runs are in flight than the view lists.
	Truncated bool
	// CSRF is the form token for the action forms when the page is served
	// whole; frames pushed over the websocket leave it empty, because htmx
	// sends the token in a header.
	CSRF string
}

// Live severities, worst first. They colour a row's bar and order the rows.
const (
	LiveBad   = "bad"   // rolling back, or judged for rollback
	LiveWarn  = "warn"  // degraded but held, or no evidence
	LiveWait  = "wait"  // waiting for a person: an approval or a resume
	LiveOK    = "ok"    // healthy so far
	LiveQueue = "queue" // waiting in line for its environment
)

// LiveRow is one run in flight.
type LiveRow struct {
	RunID       int64
	App         string
	Environment string
	Tier        string
	FromVersion string
	ToVersion   string
	Strategy    string
	State       string
	// Severity is one of the Live severities.
	Severity string
	// Status says in a few words why the row sits where it does.
	Status string
	// PhaseNumber counts from 1; 0 before the plan is built.
	PhaseNumber int
	PhaseCount  int
	PhaseName   string
	// Exposure is the share of users the new version serves in the phase.
	Exposure float64
	// ErrorRate holds the latest decision's error rates, when it had them.
	ErrorRate *LiveErrorRate
	Verdict   string
	// Explanation is the latest decision's sentence, or the reason of a
	// run that is rolling back, paused or queued.
	Explanation string
	// Since is when the run entered its phase (or was queued).
	Since *time.Time
	// CanAbort and CanRollback are the buttons the member may press on
	// this run in its state.
	CanAbort    bool
	CanRollback bool
}

// LiveErrorRate is the candidate's error rate against the baseline's.
type LiveErrorRate struct {
	Candidate float64
	Baseline  float64
	// HasBaseline is false when the candidate is judged on its own.
	HasBaseline bool
	Degraded    bool
}

// Where is "app/environment".
func (r LiveRow) Where() string { return r.App + "/" + r.Environment }

// abortConfirm is the question asked before aborting the run.
func (r LiveRow) abortConfirm() string {
	q := "Abort run " + strconv.FormatInt(r.RunID, 10) + " (" + r.ToVersion + ") on " + r.Where() + "?"
	if r.FromVersion != "" && r.State != "pending" {
		q += " Traffic returns to " + r.FromVersion + "."
	}
	return q
}

// rollbackConfirm is the question asked before rolling the run back.
func (r LiveRow) rollbackConfirm() string {
	if r.FromVersion == "" {
		return "Roll back " + r.Where() + "? This is its first deploy: " + r.ToVersion + " stops and nothing serves."
	}
	return "Roll back " + r.Where() + " to " + r.FromVersion + "?"
}

// returning says where a rollback takes the users.
func (r LiveRow) returning() string {
	if r.FromVersion == "" {
		return "stopping " + r.ToVersion
	}
	return "returning users to " + r.FromVersion
}

// Count is the number of rows of a severity.
func (v LiveView) Count(severity string) int {
	n := 0
	for _, r := range v.Rows {
		if r.Severity == severity {
			n++
		}
	}
	return n
}

func (r LiveRow) testID(part string) string {
	return "live-" + part + "-" + strconv.FormatInt(r.RunID, 10)
}

func liveRunHref(id int64) string { return "/runs/" + strconv.FormatInt(id, 10) }

func liveActionPath(id int64, action string) string {
	return "/live/runs/" + strconv.FormatInt(id, 10) + "/" + action
}
