package templates

import (
	"strconv"
	"strings"
	"time"
)

// ApprovalsView is the approvals page: every run waiting for a person's
// approval, the ones the member may decide first.
type ApprovalsView struct {
	Now   time.Time
	Items []ApprovalItem
	// Truncated says more runs are waiting than the page lists.
	Truncated bool
}

// Decidable is the number of items the member may approve or reject.
func (v ApprovalsView) Decidable() int {
	n := 0
	for _, it := range v.Items {
		if it.CanDecide {
			n++
		}
	}
	return n
}

// ApprovalItem is one run waiting at an approval gate, with the evidence a
// release manager decides on.
type ApprovalItem struct {
	RunID int64
	// ChatLink is a signed link that opens this approval, for a chat
	// message; empty when the server makes none.
	ChatLink    string
	App         string
	Environment string
	Tier        string
	FromVersion string
	ToVersion   string
	Strategy    string
	CreatedBy   string
	// PhaseNumber counts from 1.
	PhaseNumber int
	PhaseCount  int
	// PhaseName is the phase that baked and now waits, with the share of
	// users it exposes.
	PhaseName     string
	PhaseExposure float64
	// NextName is the phase an approval starts, "" when approving finishes
	// the run; NextExposure and NextBake describe it.
	NextName     string
	NextExposure float64
	NextBake     time.Duration
	NextApproval bool
	// Baked is how long the waiting phase has served its users, against
	// the bake its plan asked for (Extensions times extended).
	Baked       *time.Duration
	PlannedBake time.Duration
	Extensions  int
	// WaitingSince is when the run began to wait.
	WaitingSince *time.Time
	// Decision is the newest decision on the run, nil when the phase is
	// not analysed.
	Decision *ApprovalDecision
	// CanDecide is whether the member may approve or reject; otherwise
	// ReadOnly says what is missing.
	CanDecide bool
	ReadOnly  string
	// ApproveBlocked, when set, says why this member may reject but not
	// approve (the environment wants someone else than the starter).
	ApproveBlocked string
	// ApprovalsNeeded is how many different people must approve, when more
	// than one; ApprovedBy are those who have.
	ApprovalsNeeded int
	ApprovedBy      []string
	// Comment and CommentError refill a refused form.
	Comment      string
	CommentError string
	// CommentFor is the form the refused comment came from: approve or
	// reject.
	CommentFor string
}

// ApprovalDecision is the analysis a release manager approves on.
type ApprovalDecision struct {
	ID          int64
	At          time.Time
	Verdict     string
	Explanation string
	// PhaseNumber counts from 1; it can differ from the waiting phase
	// right after a change.
	PhaseNumber int
	// Requests are those judged, on the new version and on the baseline;
	// HasRequests is false when the record has no error rate.
	HasRequests       bool
	CandidateRequests int64
	BaselineRequests  int64
	HasBaseline       bool
}

// Where is "app/environment".
func (it ApprovalItem) Where() string { return it.App + "/" + it.Environment }

func (it ApprovalItem) testID(part string) string {
	return "approval-" + part + "-" + strconv.FormatInt(it.RunID, 10)
}

func (it ApprovalItem) actionPath(action string) string {
	return "/approvals/" + strconv.FormatInt(it.RunID, 10) + "/" + action
}

// byline says how the run deploys and who started it.
func (it ApprovalItem) byline() string {
	return liveStateWords(it.Strategy) + " · run " + strconv.FormatInt(it.RunID, 10) + " · started by " + it.CreatedBy
}

// nextSummary says what approving does: how many users the next phase
// exposes, how long it bakes and whether it stops for an approval again.
func (it ApprovalItem) nextSummary() string {
	parts := []string{"exposes " + Share(it.NextExposure) + " of users (now " + Share(it.PhaseExposure) + ")"}
	if it.NextBake > 0 {
		parts = append(parts, "bakes "+liveSpan(it.NextBake))
	}
	if it.NextApproval {
		parts = append(parts, "then waits for an approval again")
	}
	return strings.Join(parts, ", ")
}

// bakeSummary says how long the waiting phase has served its users against
// its planned bake.
func (it ApprovalItem) bakeSummary() string {
	var b strings.Builder
	if it.Baked != nil {
		b.WriteString("baked " + liveSpan(*it.Baked))
	} else {
		b.WriteString("not baked yet")
	}
	if it.PlannedBake > 0 {
		b.WriteString(" (planned " + liveSpan(it.PlannedBake))
		if it.Extensions > 0 {
			b.WriteString(", extended " + strconv.Itoa(it.Extensions) + "×")
		}
		b.WriteString(")")
	} else {
		b.WriteString(" (no bake planned)")
	}
	return b.String()
}

// requestsSummary says how many requests the decision judged.
func (it ApprovalItem) requestsSummary() string {
	d := it.Decision
	s := Count(d.CandidateRequests) + " requests judged on " + it.ToVersion
	if d.HasBaseline {
		s += ", " + Count(d.BaselineRequests) + " on the baseline"
	}
	return s
}

// rejectConfirm is the question asked before rejecting.
func (it ApprovalItem) rejectConfirm() string {
	q := "Reject " + it.PhaseName + " of " + it.Where() + " and roll " + it.ToVersion + " back"
	if it.FromVersion != "" {
		q += " to " + it.FromVersion
	}
	return q + "?"
}

// commentFor is the comment to refill into the form for action.
func (it ApprovalItem) commentFor(action string) string {
	if it.CommentFor == action {
		return it.Comment
	}
	return ""
}

// errorFor is the comment's error to show on the form for action.
func (it ApprovalItem) errorFor(action string) string {
	if it.CommentFor == action {
		return it.CommentError
	}
	return ""
}

// MaxApprovalComment is the longest comment an approval or rejection takes,
// in characters.
const MaxApprovalComment = 2000
