package templates

import (
	"strconv"
	"time"
)

// AuditView is the audit log page: the filter as typed, what is wrong
// with it, and one page of entries, newest first.
type AuditView struct {
	App         string
	Environment string
	User        string
	// From and To bound the time range, as typed: RFC 3339, or a UTC
	// date and time.
	From string
	To   string
	// WithEngine shows the engine's own steps (phases applied, analyses)
	// beside what people and tokens did.
	WithEngine bool
	// Errors holds a message per filter field ("app", "env", "user",
	// "from", "to", "before") that could not be used.
	Errors  map[string]string
	Entries []AuditRow
	// OlderHref continues the listing after its last entry; empty on the
	// last page. NewestHref returns to the first page when paging.
	OlderHref  string
	NewestHref string
	// JSONLinesHref and CSVHref download the log with this filter; empty
	// for members who may not export it (everyone but admins).
	JSONLinesHref string
	CSVHref       string
}

// Filtered reports whether any filter is set.
func (v AuditView) Filtered() bool {
	return v.App != "" || v.Environment != "" || v.User != "" || v.From != "" || v.To != ""
}

// AuditRow is one entry of the audit log.
type AuditRow struct {
	// Kind is "audit" for changes outside runs, "run" for run events,
	// "flag" for flag and segment changes.
	Kind        string
	ID          int64
	At          time.Time
	Actor       string
	Action      string
	Words       string
	App         string
	Environment string
	RunID       int64
	Detail      string
	RemoteAddr  string
	UserAgent   string
}

func (r AuditRow) testID() string {
	return "audit-entry-" + r.Kind + "-" + strconv.FormatInt(r.ID, 10)
}

// where is "app/environment", or what of it is known.
func (r AuditRow) where() string {
	switch {
	case r.App != "" && r.Environment != "":
		return r.App + "/" + r.Environment
	case r.App != "":
		return r.App
	case r.Environment != "":
		return "*/" + r.Environment
	}
	return ""
}
