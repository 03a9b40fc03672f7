package templates

import (
	"strconv"
	"time"

	"github.com/a-h/templ"
)

// RunView is everything the run page shows about one run, already worded
// for people. The handler of the page and the run's live feed build it the
// same way, so the page and its live fragments never disagree.
type RunView struct {
	ID int64
	// App is the app's slug and AppName its name; Environment is the
	// environment's name and Tier its tier.
	App         string
	AppName     string
	Environment string
	Tier        string
	FromVersion string
	ToVersion   string
	Strategy    string
	// State is the run state (running, rolled_back, ...) and StateLabel
	// the same for people.
	State      string
	StateLabel string
	// Summary says in a sentence where the run is.
	Summary string
	// Reason says why the run is in its state, when something has.
	Reason    string
	CreatedBy string
	Created   RunTime
	Started   *RunTime
	Finished  *RunTime

	Timeline RunTimeline
	Traffic  RunTraffic
	Decision *RunDecision
	Impact   RunImpact
	Actions  RunActions

	Events     []RunEventView
	EventsNote string
	Charts     []RunChart
	ChartData  RunChartData
	// LiveURL is the websocket the page follows the run on.
	LiveURL string
}

// RunTime is a moment shown both exactly and relative to when the page was
// rendered.
type RunTime struct {
	// ISO is the RFC 3339 form, for <time datetime>.
	ISO string
	// Exact is the UTC wall-clock time; Ago is "12 min ago".
	Exact string
	Ago   string
}

// RunTimeline is the plan of a run with each phase's progress.
type RunTimeline struct {
	// Note explains the timeline when it is not the running plan, such as
	// the preview of a queued run's plan.
	Note   string
	Phases []RunPhaseView
}

// RunPhaseView is one phase of the plan.
type RunPhaseView struct {
	Index       int
	Name        string
	Kind        string
	Status      string
	StatusLabel string
	Current     bool
	// Weights are the traffic weights, such as "stable 95% · candidate 5%".
	Weights string
	// Exposed is the share of users the candidate serves in the phase.
	Exposed string
	// Bake says how long the phase holds, with its extension.
	Bake string
	// Gate names what a person must do after the phase: "approval" or
	// "promotion"; empty when nothing.
	Gate string
	// CountdownTo is the end of the current bake while it runs, RFC 3339.
	CountdownTo string
	// Remaining is the bake left as text, shown until the page's script
	// takes over the countdown.
	Remaining string
	// Note says more about the current phase ("waiting for an approver").
	Note     string
	Started  *RunTime
	Finished *RunTime
}

// RunTraffic is who serves users right now.
type RunTraffic struct {
	StableVersion    string
	CandidateVersion string
	StablePercent    int
	CandidatePercent int
	// Instances says how many instances of each version run.
	Instances string
	// Mirror describes mirrored traffic, if any.
	Mirror string
	// Cohorts list sticky routing rules, in order.
	Cohorts []string
	// Note qualifies the split ("being applied", "nothing serves").
	Note string
	// Serving is false when no version serves users.
	Serving bool
}

// RunDecision is the latest verdict of the rollback decision with the
// branch of the 5-minute framework it took.
type RunDecision struct {
	Verdict      string
	VerdictLabel string
	Explanation  string
	At           RunTime
	Phase        string
	// Lit holds the decision tree's nodes and edges on the branch taken;
	// Ended is the node the decision stopped at.
	Lit   map[string]bool
	Ended string
	// WarmupLabel and ExposureLabel put the thresholds into the tree.
	WarmupLabel   string
	ExposureLabel string
	Metrics       []RunMetricRow
	Trend         string
	Errors        []string
}

// RunMetricRow is one metric of a decision, candidate against baseline.
type RunMetricRow struct {
	Name       string
	Candidate  string
	Baseline   string
	Delta      string
	Threshold  string
	Samples    string
	Confidence string
	Outcome    string
	// Tone is ok, warn or bad, for the outcome's colour.
	Tone   string
	Detail string
}

// RunImpact is what the run means for users and the fleet.
type RunImpact struct {
	Exposed        string
	ExposedNote    string
	RollbackTime   string
	RollbackNote   string
	ExtraInfra     string
	ExtraInfraNote string
	Downtime       string
}

// RunActions are the actions the viewer may take on the run in its state.
type RunActions struct {
	RunID int64
	// CSRF is the form token; empty in fragments shared over the live
	// feed, whose forms are sent by htmx with the token in a header.
	CSRF string
	// Role is the viewer's role on the run's environment.
	Role    string
	Buttons []RunAction
	// Comment shows the comment field, kept with approvals and rejections.
	Comment bool
	// Note says why there are no (more) buttons, when it matters.
	Note string
}

// RunAction is one button of the actions panel.
type RunAction struct {
	Name  string
	Label string
	Hint  string
	// Class styles the button: primary, danger or plain.
	Class string
	// Confirm, when set, is asked before the action is sent.
	Confirm string
}

// RunEventView is one entry of the run's event log.
type RunEventView struct {
	ID    int64
	At    RunTime
	Type  string
	Actor string
	Text  string
	// Tone is ok, warn, bad or empty.
	Tone string
}

// RunChart is one live chart of candidate against baseline.
type RunChart struct {
	Key   string
	Title string
	// Unit is percent, ms or count; values are sent raw (ratios for
	// percent) and scaled by the page's script.
	Unit string
	// Threshold is the line a candidate must stay under, raw; empty when
	// there is none.
	Threshold string
	// WarmupStart and WarmupEnd bound the shaded warm-up, in Unix
	// seconds; 0 when there is none.
	WarmupStart int64
	WarmupEnd   int64
	Points      int
	Note        string
}

// RunChartData is the initial data of the charts, embedded in the page as
// JSON: per chart key and cohort, [unix seconds, value] pairs.
type RunChartData struct {
	Series map[string]map[string][][2]float64 `json:"series"`
}

// runOOB marks a fragment for an out-of-band swap by its id.
func runOOB(oob bool) templ.Attributes {
	if oob {
		return templ.Attributes{"hx-swap-oob": "true"}
	}
	return templ.Attributes{}
}

// runActionURL is where an action of the run is posted.
func runActionURL(id int64, action string) string {
	return "/runs/" + strconv.FormatInt(id, 10) + "/actions/" + action
}

// runUnix writes Unix seconds for a data attribute.
func runUnix(s int64) string {
	if s == 0 {
		return ""
	}
	return strconv.FormatInt(s, 10)
}

// runWidth is a CSS width for a percentage.
func runWidth(percent int) string {
	return "width: " + strconv.Itoa(percent) + "%"
}

// runTimeOf returns when a moment rendered relative to now, for helpers
// that only have a time.
func runTimeOf(t time.Time, now time.Time) RunTime {
	return RunTime{ISO: t.UTC().Format(time.RFC3339), Exact: t.UTC().Format("2006-01-02 15:04:05 UTC"), Ago: RunAgo(t, now)}
}

// NewRunTime returns the moment t as seen at now.
func NewRunTime(t, now time.Time) RunTime { return runTimeOf(t, now) }

// RunAgo says how long before now t was, as people say it.
func RunAgo(t, now time.Time) string {
	d := now.Sub(t)
	if d < 0 {
		return "in " + RunDuration(-d)
	}
	if d < 10*time.Second {
		return "just now"
	}
	return RunDuration(d) + " ago"
}

// RunDuration writes a duration the way the page counts down: "4m 12s",
// "2h 5m", "3d 4h".
func RunDuration(d time.Duration) string {
	d = d.Round(time.Second)
	if d < 0 {
		d = -d
	}
	days := d / (24 * time.Hour)
	d -= days * 24 * time.Hour
	hours := d / time.Hour
	d -= hours * time.Hour
	minutes := d / time.Minute
	d -= minutes * time.Minute
	seconds := d / time.Second
	switch {
	case days > 0:
		return strconv.Itoa(int(days)) + "d " + strconv.Itoa(int(hours)) + "h"
	case hours > 0:
		return strconv.Itoa(int(hours)) + "h " + strconv.Itoa(int(minutes)) + "m"
	case minutes > 0:
		return strconv.Itoa(int(minutes)) + "m " + strconv.Itoa(int(seconds)) + "s"
	}
	return strconv.Itoa(int(seconds)) + "s"
}
