package api

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/flightdeckhq/flightdeck/internal/api/apigen"
	"github.com/flightdeckhq/flightdeck/internal/engine/plan"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

// auditExportRoute is the REST route that exports the audit log; it needs
// the admin scope although it only reads, because the log shows what
// everybody did and from where.
const auditExportRoute = "/api/v1/audit"

// AuditExportStore is what exporting the audit log needs from the store:
// a walk over every entry a filter selects, batch by batch, so that an
// export of any length never sits whole in memory.
type AuditExportStore interface {
	EachAudit(ctx context.Context, f store.AuditFilter, fn func(store.AuditEntry) error) error
}

// auditExportFormats are the formats the audit log exports in, by the name
// a request asks for.
const (
	auditFormatJSONLines = "jsonl"
	auditFormatCSV       = "csv"
)

// auditCSVHeader names the columns of a CSV export, which are also the
// fields of each JSON line.
var auditCSVHeader = []string{"at", "kind", "actor", "action", "app", "environment", "run_id", "detail", "remote_addr", "user_agent"}

// auditFilterInput is an audit log filter as a request spells it.
type auditFilterInput struct {
	App, Environment, Actor, From, To string
	HideEngine                        bool
}

// auditFilterErrors are the problems of an audit filter, keyed by field:
// "app", "environment", "actor", "from" and "to".
type auditFilterErrors map[string]string

// auditTimeLayouts are the ways a time in an audit filter may be written:
// RFC 3339, or without a zone (as a browser's date and time inputs send
// it), which is UTC like the times the audit log shows.
var auditTimeLayouts = []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02"}

// parseAuditTime reads a time of an audit filter.
func parseAuditTime(s string) (time.Time, bool) {
	for _, layout := range auditTimeLayouts {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

// check validates the filter and turns it into a store filter, naming
// every field that is wrong.
func (in auditFilterInput) check() (store.AuditFilter, auditFilterErrors) {
	errs := auditFilterErrors{}
	if in.App != "" && !auditSlug.MatchString(in.App) {
		errs["app"] = fmt.Sprintf("%q is not an app slug: use lowercase letters, digits and dashes, such as checkout.", truncate(in.App, 80))
	}
	if in.Environment != "" && !auditSlug.MatchString(in.Environment) {
		errs["environment"] = fmt.Sprintf("%q is not an environment name: use lowercase letters, digits and dashes, such as production.", truncate(in.Environment, 80))
	}
	if in.Actor != "" && !validAuditActor(in.Actor) {
		errs["actor"] = fmt.Sprintf("%q is not a username or token: write a username such as rita, or token:name for an API token.", truncate(in.Actor, 80))
	}
	f := store.AuditFilter{App: in.App, Environment: in.Environment, Actor: in.Actor, HideEngine: in.HideEngine}
	for _, t := range []struct {
		field, raw string
		into       *time.Time
	}{{"from", in.From, &f.From}, {"to", in.To, &f.To}} {
		if t.raw == "" {
			continue
		}
		v, ok := parseAuditTime(t.raw)
		if !ok {
			errs[t.field] = fmt.Sprintf("%q is not a time: write RFC 3339 such as 2026-03-01T09:30:00Z, or a UTC date such as 2026-03-01.", truncate(t.raw, 60))
			continue
		}
		*t.into = v
	}
	if errs["from"] == "" && errs["to"] == "" && !f.From.IsZero() && !f.To.IsZero() && !f.From.Before(f.To) {
		errs["to"] = fmt.Sprintf("The range ends (%s) before it starts (%s): to must be later than from.",
			f.To.Format(time.RFC3339), f.From.Format(time.RFC3339))
	}
	return f, errs
}

// ExportAuditLog streams the audit log as JSON lines or CSV, filtered as
// asked. A token limited to some apps or environments exports only one of
// them and must say which.
func (h *restHandlers) ExportAuditLog(c echo.Context, params apigen.ExportAuditLogParams) error {
	format := string(params.Format)
	in := auditFilterInput{
		App: strings.TrimSpace(deref(params.App)), Environment: strings.TrimSpace(deref(params.Environment)),
		Actor: strings.TrimSpace(deref(params.Actor)), From: strings.TrimSpace(deref(params.From)),
		To: strings.TrimSpace(deref(params.To)), HideEngine: params.HideEngine != nil && *params.HideEngine,
	}
	f, errs := in.check()
	var fields []plan.FieldError
	if format != auditFormatJSONLines && format != auditFormatCSV {
		fields = append(fields, plan.FieldError{Field: "format", Message: fmt.Sprintf("%q is not an export format: use jsonl or csv.", truncate(format, 40))})
	}
	for _, k := range []string{"app", "environment", "actor", "from", "to"} {
		if m := errs[k]; m != "" {
			fields = append(fields, plan.FieldError{Field: k, Message: m})
		}
	}
	if len(fields) > 0 {
		return badRequest("The audit log cannot be exported with these parameters; nothing was exported.", fields...)
	}
	if p, ok := PrincipalFrom(c); ok && p.Limited() {
		if (len(p.Apps) > 0 && f.App == "") || (len(p.Environments) > 0 && f.Environment == "") {
			return &apiError{status: http.StatusForbidden, detail: fmt.Sprintf(
				"The token %q is limited to some apps or environments; name one of them in app and environment to export its entries.", p.Name)}
		}
		if err := RequireAccess(c, f.App, f.Environment); err != nil {
			return err
		}
	}
	return streamAudit(c, h.store, f, format)
}

// auditExportFlushEvery is how many entries an export writes between
// flushes to the client.
const auditExportFlushEvery = 500

// streamAudit writes every entry f selects to the response in format, as
// a file to save. Entries are written as they are read; the first batch is
// read before anything is sent, so a database that does not answer gets a
// proper error. A failure later can no longer change the status, so the
// connection is cut rather than a shortened file ending as if complete.
func streamAudit(c echo.Context, log AuditExportStore, f store.AuditFilter, format string) error {
	ctx := c.Request().Context()
	res := c.Response()
	buf := bufio.NewWriterSize(res, 32<<10)
	contentType := "application/jsonl; charset=utf-8"
	var begin func() error
	var write func(store.AuditEntry) error
	flush := buf.Flush
	if format == auditFormatCSV {
		contentType = "text/csv; charset=utf-8"
		w := csv.NewWriter(buf)
		begin = func() error { return w.Write(auditCSVHeader) }
		write = func(e store.AuditEntry) error { return w.Write(auditCSVRecord(e)) }
		flush = func() error {
			if w.Flush(); w.Error() != nil {
				return w.Error()
			}
			return buf.Flush()
		}
	} else {
		enc := json.NewEncoder(buf)
		enc.SetEscapeHTML(false)
		begin = func() error { return nil }
		write = func(e store.AuditEntry) error { return enc.Encode(auditJSONLine(e)) }
	}
	started := false
	start := func() error {
		name := "flightdeck-audit-" + time.Now().UTC().Format("20060102T150405Z") + "." + format
		h := res.Header()
		h.Set(echo.HeaderContentType, contentType)
		h.Set(echo.HeaderContentDisposition, fmt.Sprintf("attachment; filename=%q", name))
		h.Set("Cache-Control", "no-store")
		h.Set(echo.HeaderXContentTypeOptions, "nosniff")
		res.WriteHeader(http.StatusOK)
		started = true
		return begin()
	}
	n := 0
	err := log.EachAudit(ctx, f, func(e store.AuditEntry) error {
		if !started {
			if err := start(); err != nil {
				return err
			}
		}
		if err := write(e); err != nil {
			return err
		}
		n++
		if n%auditExportFlushEvery == 0 {
			if err := flush(); err != nil {
				return err
			}
			res.Flush()
		}
		return nil
	})
	if err == nil && !started {
		err = start()
	}
	if err == nil {
		err = flush()
	}
	switch {
	case err == nil:
		return nil
	case !started:
		return fmt.Errorf("exporting the audit log: %w", err)
	case errors.Is(err, context.Canceled):
		// The client went away; there is nobody to tell.
		return nil
	default:
		slog.ErrorContext(ctx, "audit export failed after it started",
			slog.Int("entries_written", n), slog.String("error", err.Error()))
		panic(http.ErrAbortHandler)
	}
}

// auditJSONEntry is one line of a JSON lines export.
type auditJSONEntry struct {
	At          string `json:"at"`
	Kind        string `json:"kind"`
	Actor       string `json:"actor"`
	Action      string `json:"action"`
	App         string `json:"app"`
	Environment string `json:"environment"`
	RunID       int64  `json:"run_id"`
	Detail      string `json:"detail"`
	RemoteAddr  string `json:"remote_addr"`
	UserAgent   string `json:"user_agent"`
}

func auditJSONLine(e store.AuditEntry) auditJSONEntry {
	return auditJSONEntry{
		At: e.At.UTC().Format(time.RFC3339Nano), Kind: e.Kind, Actor: e.Actor, Action: e.Action, App: e.App,
		Environment: e.Environment, RunID: e.RunID, Detail: e.Detail, RemoteAddr: e.RemoteAddr, UserAgent: e.UserAgent,
	}
}

// auditCSVRecord is one row of a CSV export, each cell guarded against
// being run as a formula by the spreadsheet that opens the file.
func auditCSVRecord(e store.AuditEntry) []string {
	return []string{
		e.At.UTC().Format(time.RFC3339Nano), csvCell(e.Kind), csvCell(e.Actor), csvCell(e.Action), csvCell(e.App),
		csvCell(e.Environment), strconv.FormatInt(e.RunID, 10), csvCell(e.Detail), csvCell(e.RemoteAddr), csvCell(e.UserAgent),
	}
}

// csvCell neutralises text a spreadsheet would take for a formula: a cell
// starting with =, +, -, @, a tab or a carriage return gets a leading
// apostrophe, so that a detail or user agent chosen by whoever acted is
// shown as text and never run (CSV injection).
func csvCell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
