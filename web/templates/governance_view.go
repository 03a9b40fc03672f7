package templates

// HaltView is the "stop the line" page: whether the line is stopped and
// what the member may do about it.
type HaltView struct {
	Active   bool
	Reason   string
	HaltedBy string
	// Since is when the line was stopped, formatted.
	Since string
	// LastLifted describes the last restart, "" when none.
	LastLifted string
	// CanHalt is set for admins and approvers: they may stop and restart
	// the line.
	CanHalt bool
	// ReasonError marks the reason field of a refused form.
	ReasonError string
	Reason0     string
}

// EnvGovernanceView is the deploy windows, freezes and waiting runs of one
// environment.
type EnvGovernanceView struct {
	App, Env string
	// Summary says in one sentence when the environment deploys.
	Summary string
	// Windows is the windows as the form writes them, one per line.
	Windows string
	Outside string
	// Status says whether runs may go now and why not.
	Status     string
	StatusOpen bool
	Freezes    []FreezeRow
	Waiting    []WaitingRun
	// CanEdit is set for admins of the environment.
	CanEdit bool
	// Errors holds field errors of a refused form, by field: windows,
	// outside, reason, ends_at, override.
	Errors map[string]string
	// FreezeReason and FreezeEnds keep what was typed into a refused freeze form.
	FreezeReason, FreezeEnds string
	// Approvals is the environment's approval policy as its form shows it.
	Approvals ApprovalPolicyForm
}

// ApprovalPolicyForm is an environment's approval policy in form fields.
type ApprovalPolicyForm struct {
	MinApprovers string
	// Timeout is empty for waiting forever.
	Timeout      string
	OnTimeout    string
	InWindowOnly bool
	Summary      string
}

// FreezeRow is one freeze of an environment.
type FreezeRow struct {
	ID                      int64
	Reason, By, From, Until string
	State                   string
	Endable                 bool
}

// WaitingRun is a run that waits for a window or a freeze.
type WaitingRun struct {
	ID      int64
	Version string
	Reason  string
}
