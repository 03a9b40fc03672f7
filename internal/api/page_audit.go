package api

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/labstack/echo/v4"

	"github.com/flightdeckhq/flightdeck/internal/store"
	"github.com/flightdeckhq/flightdeck/web/templates"
)

// AuditLog is what the audit log page reads, and what its export walks.
type AuditLog interface {
	ListAudit(ctx context.Context, f store.AuditFilter) ([]store.AuditEntry, error)
	AuditExportStore
}

// auditPageSize is how many entries one page of the audit log shows.
const auditPageSize = 50

type auditHandlers struct {
	log AuditLog
}

// registerAuditPages installs the audit log and its export.
func registerAuditPages(pages *echo.Group, cfg Config) {
	h := &auditHandlers{log: cfg.Pages}
	pages.GET("/audit", h.audit)
	pages.GET("/audit/export", h.export)
}

var (
	// auditSlug is the rule app slugs and environment names follow.
	auditSlug = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	// auditUsername is the rule usernames follow; "engine" and "system"
	// are written the same way.
	auditUsername = regexp.MustCompile(`^[a-z0-9][a-z0-9._@-]{0,63}$`)
)

// auditPageFields maps the fields of an audit filter to the names of the
// page's query parameters and form inputs.
var auditPageFields = map[string]string{"app": "app", "environment": "env", "actor": "user", "from": "from", "to": "to"}

// auditView reads the page's filter from the query and checks it; problems
// are in the view's Errors, keyed by the page's field names.
func auditView(c echo.Context) (templates.AuditView, store.AuditFilter) {
	v := templates.AuditView{
		App:         strings.TrimSpace(c.QueryParam("app")),
		Environment: strings.TrimSpace(c.QueryParam("env")),
		User:        strings.TrimSpace(c.QueryParam("user")),
		From:        strings.TrimSpace(c.QueryParam("from")),
		To:          strings.TrimSpace(c.QueryParam("to")),
		WithEngine:  c.QueryParam("engine") == "1",
		Errors:      map[string]string{},
	}
	filter, errs := auditFilterInput{
		App: v.App, Environment: v.Environment, Actor: v.User, From: v.From, To: v.To,
		HideEngine: !v.WithEngine && v.User != "engine",
	}.check()
	for field, message := range errs {
		v.Errors[auditPageFields[field]] = message
	}
	return v, filter
}

// audit renders one page of the audit log, filtered as asked.
func (h *auditHandlers) audit(c echo.Context) error {
	v, filter := auditView(c)
	filter.Limit = auditPageSize + 1
	if raw := c.QueryParam("before"); raw != "" {
		before, ok := parseAuditCursor(raw)
		if !ok {
			v.Errors["before"] = "The link to older entries is damaged; start again from the newest."
		}
		filter.Before = &before
		v.NewestHref = auditHref(v, "")
	}
	if m := memberFrom(c); m != nil && m.IsAdmin {
		v.JSONLinesHref = auditExportHref(v, auditFormatJSONLines)
		v.CSVHref = auditExportHref(v, auditFormatCSV)
	}
	p := pageFor(c, "Audit log", "audit")
	if len(v.Errors) > 0 {
		return render(c, http.StatusBadRequest, templates.Audit(p, v))
	}
	entries, err := h.log.ListAudit(c.Request().Context(), filter)
	if err != nil {
		return fmt.Errorf("reading the audit log: %w", err)
	}
	if len(entries) > auditPageSize {
		entries = entries[:auditPageSize]
		last := entries[len(entries)-1]
		v.OlderHref = auditHref(v, formatAuditCursor(last))
	}
	for _, e := range entries {
		v.Entries = append(v.Entries, auditRow(e))
	}
	return render(c, http.StatusOK, templates.Audit(p, v))
}

// export downloads the audit log with the page's filter, as JSON lines or
// CSV. Only admins export: an export is the whole log, with every address
// and user agent, leaving Flightdeck in a file.
func (h *auditHandlers) export(c echo.Context) error {
	m := memberFrom(c)
	if m == nil || !m.IsAdmin {
		return refusePage(c, http.StatusForbidden, "Exporting the audit log needs an admin; you can read the log on this page. Nothing was exported.")
	}
	v, filter := auditView(c)
	format := c.QueryParam("format")
	if format != auditFormatJSONLines && format != auditFormatCSV {
		return refusePage(c, http.StatusBadRequest, fmt.Sprintf("%q is not an export format: choose JSON lines or CSV. Nothing was exported.", truncate(format, 40)))
	}
	if len(v.Errors) > 0 {
		problems := make([]string, 0, len(v.Errors))
		for _, field := range []string{"app", "env", "user", "from", "to"} {
			if message := v.Errors[field]; message != "" {
				problems = append(problems, message)
			}
		}
		return refusePage(c, http.StatusBadRequest, "The filter cannot be used: "+strings.Join(problems, " ")+" Nothing was exported.")
	}
	return streamAudit(c, h.log, filter, format)
}

// auditExportHref is the address that downloads the log with the view's
// filter in format.
func auditExportHref(v templates.AuditView, format string) string {
	q := auditQuery(v, "")
	q.Set("format", format)
	return "/audit/export?" + q.Encode()
}

// validAuditActor reports whether s can be who did something: a username,
// or token:<name> for an API token.
func validAuditActor(s string) bool {
	if name, ok := strings.CutPrefix(s, "token:"); ok {
		if name == "" || len(name) > 100 {
			return false
		}
		for _, r := range name {
			if unicode.IsControl(r) {
				return false
			}
		}
		return true
	}
	return auditUsername.MatchString(s)
}

// auditHref is the audit log's address with the view's filter and, when
// given, the cursor to continue from.
func auditHref(v templates.AuditView, cursor string) string {
	q := auditQuery(v, cursor)
	if len(q) == 0 {
		return "/audit"
	}
	return "/audit?" + q.Encode()
}

// auditQuery is the view's filter and, when given, cursor as query
// parameters.
func auditQuery(v templates.AuditView, cursor string) url.Values {
	q := url.Values{}
	for k, val := range map[string]string{"app": v.App, "env": v.Environment, "user": v.User, "from": v.From, "to": v.To, "before": cursor} {
		if val != "" {
			q.Set(k, val)
		}
	}
	if v.WithEngine {
		q.Set("engine", "1")
	}
	return q
}

// formatAuditCursor writes where a page ended: the kind, id and time (in
// microseconds, the database's precision) of its last entry.
func formatAuditCursor(e store.AuditEntry) string {
	return e.Kind + "-" + strconv.FormatInt(e.ID, 10) + "-" + strconv.FormatInt(e.At.UnixMicro(), 10)
}

// parseAuditCursor reads formatAuditCursor's output.
func parseAuditCursor(raw string) (store.AuditEntry, bool) {
	parts := strings.Split(raw, "-")
	if len(parts) != 3 || (parts[0] != "audit" && parts[0] != "run" && parts[0] != store.AuditKindFlag) {
		return store.AuditEntry{}, false
	}
	id, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil || id <= 0 {
		return store.AuditEntry{}, false
	}
	micros, err := strconv.ParseInt(parts[2], 10, 64)
	if err != nil || micros <= 0 {
		return store.AuditEntry{}, false
	}
	return store.AuditEntry{Kind: parts[0], ID: id, At: time.UnixMicro(micros).UTC()}, true
}

// auditRow turns a log entry into a row, with its action in words.
func auditRow(e store.AuditEntry) templates.AuditRow {
	r := templates.AuditRow{
		Kind: e.Kind, ID: e.ID, At: e.At, Actor: e.Actor, Action: e.Action, App: e.App,
		Environment: e.Environment, RunID: e.RunID, Detail: e.Detail, RemoteAddr: e.RemoteAddr,
		UserAgent: e.UserAgent, Words: auditWords(e.Kind, e.Action),
	}
	return r
}

// auditActionWords says what an action was, by kind of entry; actions not
// listed are spelled out from their name.
var auditActionWords = map[string]string{
	"audit:user.signed_in":                  "signed in",
	"audit:user.signed_out":                 "signed out",
	"audit:user.sign_in_failed":             "failed to sign in",
	"audit:run.approved":                    "approved, on the decision at hand",
	"audit:run.rejected":                    "rejected, on the decision at hand",
	"audit:user.sso_linked":                 "linked a user to single sign-on",
	"audit:run.approve_refused":             "was refused an approval",
	"audit:run.reject_refused":              "was refused a rejection",
	"audit:environment.approval_policy_set": "set the approval policy",
	"audit:schema.change_created":           "started a schema change",
	"audit:schema.phase_reached":            "recorded a schema change phase",
	"audit:schema.version_needs_set":        "declared a version's schema needs",
	"run:run.created":                       "created the run",
	"run:run.queued":                        "queued the run behind another",
	"run:run.started":                       "started the run",
	"run:run.scheduled":                     "scheduled the run",
	"run:run.paused":                        "paused the run",
	"run:run.resumed":                       "resumed the run",
	"run:run.promoted":                      "promoted the run",
	"run:run.approved":                      "approved the next phase",
	"run:run.rejected":                      "rejected the next phase",
	"run:run.rolling_back":                  "began a rollback",
	"run:run.rollback_requested":            "asked to roll back to the earlier version",
	"run:run.rolled_back":                   "finished the rollback",
	"run:run.aborted":                       "aborted the run",
	"run:run.failed":                        "the run failed",
	"run:run.succeeded":                     "the run succeeded",
	"run:run.note":                          "noted",
	"run:phase.started":                     "started a phase",
	"run:phase.applied":                     "applied a phase",
	"run:phase.awaiting_approval":           "asked for an approval",
	"run:analysis.warming_up":               "judged: warming up",
	"run:analysis.continue":                 "judged: healthy",
	"run:analysis.monitor_longer":           "judged: watch longer",
	"run:analysis.rollback":                 "judged: roll back",
	"run:analysis.inconclusive":             "judged: inconclusive",
	"run:driver.applied":                    "the driver applied a change",
	"run:driver.error":                      "the driver failed",
	"run:rollback.step_applied":             "applied a rollback step",
	"flag:flag.created":                     "created a flag",
	"flag:flag.updated":                     "changed a flag's definition",
	"flag:flag.state_changed":               "changed a flag's state",
	"flag:flag.killed":                      "turned a flag off",
	"flag:segment.created":                  "created a segment",
	"flag:segment.updated":                  "changed a segment",
	"flag:flag.rollout_started":             "started a guarded rollout",
	"flag:flag.rollout_advanced":            "moved a guarded rollout on",
	"flag:flag.rollout_completed":           "completed a guarded rollout",
	"flag:flag.rollout_rolled_back":         "rolled a guarded rollout back",
	"flag:flag.rollout_cancelled":           "stopped a guarded rollout",
}

// auditWords names an action for people.
func auditWords(kind, action string) string {
	if w, ok := auditActionWords[kind+":"+action]; ok {
		return w
	}
	return strings.NewReplacer(".", " ", "_", " ").Replace(action)
}
