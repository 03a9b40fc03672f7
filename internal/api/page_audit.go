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

// AuditLog is what the audit log page reads.
type AuditLog interface {
	ListAudit(ctx context.Context, f store.AuditFilter) ([]store.AuditEntry, error)
}

// auditPageSize is how many entries one page of the audit log shows.
const auditPageSize = 50

type auditHandlers struct {
	log AuditLog
}

var (
	// auditSlug is the rule app slugs and environment names follow.
	auditSlug = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	// auditUsername is the rule usernames follow; "engine" and "system"
	// are written the same way.
	auditUsername = regexp.MustCompile(`^[a-z0-9][a-z0-9._@-]{0,63}$`)
)

// audit renders one page of the audit log, filtered as asked.
func (h *auditHandlers) audit(c echo.Context) error {
	v := templates.AuditView{
		App:         strings.TrimSpace(c.QueryParam("app")),
		Environment: strings.TrimSpace(c.QueryParam("env")),
		User:        strings.TrimSpace(c.QueryParam("user")),
		WithEngine:  c.QueryParam("engine") == "1",
		Errors:      map[string]string{},
	}
	if v.App != "" && !auditSlug.MatchString(v.App) {
		v.Errors["app"] = fmt.Sprintf("%q is not an app slug: use lowercase letters, digits and dashes, such as checkout.", truncate(v.App, 80))
	}
	if v.Environment != "" && !auditSlug.MatchString(v.Environment) {
		v.Errors["env"] = fmt.Sprintf("%q is not an environment name: use lowercase letters, digits and dashes, such as production.", truncate(v.Environment, 80))
	}
	if v.User != "" && !validAuditActor(v.User) {
		v.Errors["user"] = fmt.Sprintf("%q is not a username or token: write a username such as rita, or token:name for an API token.", truncate(v.User, 80))
	}
	filter := store.AuditFilter{
		App: v.App, Environment: v.Environment, Actor: v.User,
		HideEngine: !v.WithEngine && v.User != "engine", Limit: auditPageSize + 1,
	}
	if raw := c.QueryParam("before"); raw != "" {
		before, ok := parseAuditCursor(raw)
		if !ok {
			v.Errors["before"] = "The link to older entries is damaged; start again from the newest."
		}
		filter.Before = &before
		v.NewestHref = auditHref(v, "")
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
	q := url.Values{}
	for k, val := range map[string]string{"app": v.App, "env": v.Environment, "user": v.User, "before": cursor} {
		if val != "" {
			q.Set(k, val)
		}
	}
	if v.WithEngine {
		q.Set("engine", "1")
	}
	if len(q) == 0 {
		return "/audit"
	}
	return "/audit?" + q.Encode()
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
		Words: auditWords(e.Kind, e.Action),
	}
	return r
}

// auditActionWords says what an action was, by kind of entry; actions not
// listed are spelled out from their name.
var auditActionWords = map[string]string{
	"audit:user.signed_in":          "signed in",
	"audit:user.signed_out":         "signed out",
	"audit:user.sign_in_failed":     "failed to sign in",
	"audit:run.approved":            "approved, on the decision at hand",
	"audit:run.rejected":            "rejected, on the decision at hand",
	"run:run.created":               "created the run",
	"run:run.queued":                "queued the run behind another",
	"run:run.started":               "started the run",
	"run:run.scheduled":             "scheduled the run",
	"run:run.paused":                "paused the run",
	"run:run.resumed":               "resumed the run",
	"run:run.promoted":              "promoted the run",
	"run:run.approved":              "approved the next phase",
	"run:run.rejected":              "rejected the next phase",
	"run:run.rolling_back":          "began a rollback",
	"run:run.rollback_requested":    "asked to roll back to the earlier version",
	"run:run.rolled_back":           "finished the rollback",
	"run:run.aborted":               "aborted the run",
	"run:run.failed":                "the run failed",
	"run:run.succeeded":             "the run succeeded",
	"run:run.note":                  "noted",
	"run:phase.started":             "started a phase",
	"run:phase.applied":             "applied a phase",
	"run:phase.awaiting_approval":   "asked for an approval",
	"run:analysis.warming_up":       "judged: warming up",
	"run:analysis.continue":         "judged: healthy",
	"run:analysis.monitor_longer":   "judged: watch longer",
	"run:analysis.rollback":         "judged: roll back",
	"run:analysis.inconclusive":     "judged: inconclusive",
	"run:driver.applied":            "the driver applied a change",
	"run:driver.error":              "the driver failed",
	"run:rollback.step_applied":     "applied a rollback step",
	"flag:flag.created":             "created a flag",
	"flag:flag.updated":             "changed a flag's definition",
	"flag:flag.state_changed":       "changed a flag's state",
	"flag:flag.killed":              "turned a flag off",
	"flag:segment.created":          "created a segment",
	"flag:segment.updated":          "changed a segment",
	"flag:flag.rollout_started":     "started a guarded rollout",
	"flag:flag.rollout_advanced":    "moved a guarded rollout on",
	"flag:flag.rollout_completed":   "completed a guarded rollout",
	"flag:flag.rollout_rolled_back": "rolled a guarded rollout back",
	"flag:flag.rollout_cancelled":   "stopped a guarded rollout",
}

// auditWords names an action for people.
func auditWords(kind, action string) string {
	if w, ok := auditActionWords[kind+":"+action]; ok {
		return w
	}
	return strings.NewReplacer(".", " ", "_", " ").Replace(action)
}
