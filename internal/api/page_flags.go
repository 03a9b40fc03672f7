package api

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/alexedwards/scs/v2"
	"github.com/labstack/echo/v4"

	"github.com/flightdeckhq/flightdeck/internal/analysis"
	"github.com/flightdeckhq/flightdeck/internal/auth"
	"github.com/flightdeckhq/flightdeck/internal/engine/plan"
	"github.com/flightdeckhq/flightdeck/internal/flags"
	"github.com/flightdeckhq/flightdeck/internal/store"
	"github.com/flightdeckhq/flightdeck/web/templates"
)

// FlagPages is what the feature flag pages read and change.
type FlagPages interface {
	App(ctx context.Context, slug string) (store.App, error)
	ListEnvironments(ctx context.Context, appID int64) ([]store.Environment, error)
	ListFlags(ctx context.Context, appID int64) ([]store.Flag, error)
	Flag(ctx context.Context, appID int64, key string) (store.Flag, error)
	CreateFlag(ctx context.Context, appID int64, def flags.Flag, actor string) (store.Flag, error)
	UpdateFlag(ctx context.Context, f store.Flag, actor string) (store.Flag, error)
	ListFlagStates(ctx context.Context, appID, envID int64) ([]store.FlagState, error)
	SetFlagState(ctx context.Context, flagID, envID int64, state flags.EnvState, expectedVersion int64, actor string) (store.FlagState, error)
	KillFlag(ctx context.Context, flagID, envID int64, actor string) (store.FlagState, error)
	ListSegments(ctx context.Context, appID int64) ([]store.Segment, error)
	UpsertSegment(ctx context.Context, appID int64, seg flags.Segment, expectedVersion int64, actor string) (store.Segment, error)
	ListFlagEventsBefore(ctx context.Context, flagID, beforeID int64, limit int) ([]store.FlagEvent, error)
	StartFlagRollout(ctx context.Context, n store.NewFlagRollout) (store.FlagRollout, store.FlagState, error)
	CurrentFlagRollout(ctx context.Context, flagID, envID int64) (store.FlagRollout, error)
	CancelFlagRollout(ctx context.Context, id int64, actor string) (store.FlagRollout, error)
	ListFlagRollouts(ctx context.Context, flagID int64, limit int) ([]store.FlagRollout, error)
	FlagRollout(ctx context.Context, id int64) (store.FlagRollout, error)
}

// flagHistoryPageSize is how many changes one page of a flag's history
// lists.
const flagHistoryPageSize = 25

// maxFlagFormText bounds what a textarea of the flag pages may hold; a
// flag's state with thousands of user keys belongs in a segment, which
// has the same bound.
const maxFlagFormText = 256 << 10

type flagPageHandlers struct {
	store    FlagPages
	sessions *scs.SessionManager
}

func registerFlagPages(g *echo.Group, cfg Config) {
	h := &flagPageHandlers{store: cfg.Pages, sessions: cfg.Sessions}
	g.GET("/apps/:app/flags", h.list)
	g.POST("/apps/:app/flags", h.create)
	g.POST("/apps/:app/segments", h.saveSegment)
	g.GET("/apps/:app/flags/:flag", h.show)
	g.POST("/apps/:app/flags/:flag/definition", h.saveDefinition)
	g.POST("/apps/:app/flags/:flag/evaluate", h.evaluate)
	g.POST("/apps/:app/flags/:flag/environments/:env/kill", h.kill)
	g.POST("/apps/:app/flags/:flag/environments/:env/on", h.turnOn)
	g.POST("/apps/:app/flags/:flag/environments/:env/rollout", h.rollout)
	g.POST("/apps/:app/flags/:flag/environments/:env/state", h.saveState)
	g.GET("/apps/:app/flags/:flag/environments/:env/guarded-rollout", h.guardedRolloutPanel)
	g.POST("/apps/:app/flags/:flag/environments/:env/guarded-rollout", h.startGuardedRollout)
	g.POST("/apps/:app/flags/:flag/environments/:env/guarded-rollout/cancel", h.cancelGuardedRollout)
}

// flagPageTarget is what a flag page is about: the app with its environments
// (development first), and the flag and environment when the path names
// them.
type flagPageTarget struct {
	app  store.App
	envs []store.Environment
	flag store.Flag
	env  store.Environment
}

// where is "checkout/production".
func (t flagPageTarget) where() string { return t.app.Slug + "/" + t.env.Name }

// loadApp reads the app named in the path with its environments; a
// missing app is answered with a refusal and ok false.
func (h *flagPageHandlers) loadApp(c echo.Context) (t flagPageTarget, ok bool, err error) {
	ctx := c.Request().Context()
	slug := c.Param("app")
	t.app, err = h.store.App(ctx, slug)
	if errors.Is(err, store.ErrNotFound) {
		return t, false, refusePage(c, http.StatusNotFound, fmt.Sprintf("There is no app %q. Nothing was changed.", truncate(slug, 80)))
	}
	if err != nil {
		return t, false, fmt.Errorf("reading app %s: %w", slug, err)
	}
	t.envs, err = h.store.ListEnvironments(ctx, t.app.ID)
	if err != nil {
		return t, false, fmt.Errorf("listing the environments of %s: %w", slug, err)
	}
	slices.SortStableFunc(t.envs, func(a, b store.Environment) int {
		return cmp.Or(cmp.Compare(flagTierRank(a.Tier), flagTierRank(b.Tier)), strings.Compare(a.Name, b.Name))
	})
	return t, true, nil
}

// flagTierRank orders environments development first, production last.
func flagTierRank(tier string) int {
	if i := slices.Index(tiers, tier); i >= 0 {
		return i
	}
	return len(tiers)
}

// loadFlag reads the app and the flag named in the path.
func (h *flagPageHandlers) loadFlag(c echo.Context) (flagPageTarget, bool, error) {
	t, ok, err := h.loadApp(c)
	if !ok {
		return t, false, err
	}
	key := c.Param("flag")
	t.flag, err = h.store.Flag(c.Request().Context(), t.app.ID, key)
	if errors.Is(err, store.ErrNotFound) {
		return t, false, refusePage(c, http.StatusNotFound, fmt.Sprintf("App %s has no flag %q. Nothing was changed.", t.app.Slug, truncate(key, 80)))
	}
	if err != nil {
		return t, false, fmt.Errorf("reading flag %s of %s: %w", key, t.app.Slug, err)
	}
	return t, true, nil
}

// loadFlagEnv reads the app, flag and environment named in the path of an
// action on the flag in one environment.
func (h *flagPageHandlers) loadFlagEnv(c echo.Context) (flagPageTarget, bool, error) {
	t, ok, err := h.loadFlag(c)
	if !ok {
		return t, false, err
	}
	name := c.Param("env")
	env, found := flagPageEnv(t.envs, name)
	if !found {
		return t, false, refusePage(c, http.StatusNotFound, fmt.Sprintf("App %s has no environment %q. Nothing was changed.", t.app.Slug, truncate(name, 80)))
	}
	t.env = env
	return t, true, nil
}

// flagPageEnv finds an environment by name.
func flagPageEnv(envs []store.Environment, name string) (store.Environment, bool) {
	for _, e := range envs {
		if e.Name == name {
			return e, true
		}
	}
	return store.Environment{}, false
}

// canEditFlagApp reports whether the member may change what every
// environment of the app shares: flag definitions and segments. That needs
// the deployer role on the whole app, not on one environment of it.
func canEditFlagApp(m *auth.Member, app string) bool {
	return m.Can(app, auth.Wildcard, auth.RoleDeployer)
}

// flagAppRoleNote says why a member may not change definitions or
// segments of the app.
func flagAppRoleNote(app string) string {
	return fmt.Sprintf("Creating and editing flag definitions and segments changes every environment of %s at once, so it needs the deployer role on all of them (%s/*); your roles do not grant that.", app, app)
}

// refuseFlagAppWide refuses a change of definitions or segments.
func refuseFlagAppWide(c echo.Context, app, doing string) error {
	return refusePage(c, http.StatusForbidden, fmt.Sprintf(
		"%s changes every environment of %s at once, so it needs the deployer role on all of them (%s/*); your roles do not grant that. Nothing was changed.", doing, app, app))
}

// refuseFlagEnv refuses a change of the flag in one environment.
func refuseFlagEnv(c echo.Context, m *auth.Member, t flagPageTarget, doing string) error {
	return refusePage(c, http.StatusForbidden, fmt.Sprintf(
		"You are a %s on %s; %s needs the deployer role. Nothing was changed.", m.RoleOn(t.app.Slug, t.env.Name), t.where(), doing))
}

// statesByFlag reads every flag's state in every environment of the app:
// by environment id, then flag id.
func (h *flagPageHandlers) statesByFlag(ctx context.Context, t flagPageTarget) (map[int64]map[int64]store.FlagState, error) {
	out := make(map[int64]map[int64]store.FlagState, len(t.envs))
	for _, e := range t.envs {
		states, err := h.store.ListFlagStates(ctx, t.app.ID, e.ID)
		if err != nil {
			return nil, fmt.Errorf("reading the flags of %s/%s: %w", t.app.Slug, e.Name, err)
		}
		byFlag := make(map[int64]store.FlagState, len(states))
		for _, s := range states {
			byFlag[s.Flag.ID] = s
		}
		out[e.ID] = byFlag
	}
	return out, nil
}

// flagState reads one flag's state in one environment; a flag never
// configured there comes back with Configured false.
func (h *flagPageHandlers) flagState(ctx context.Context, t flagPageTarget, env store.Environment) (store.FlagState, error) {
	states, err := h.store.ListFlagStates(ctx, t.app.ID, env.ID)
	if err != nil {
		return store.FlagState{}, fmt.Errorf("reading the flags of %s/%s: %w", t.app.Slug, env.Name, err)
	}
	for _, s := range states {
		if s.Flag.ID == t.flag.ID {
			return s, nil
		}
	}
	return store.FlagState{Flag: t.flag, EnvironmentID: env.ID}, nil
}

// ---------------------------------------------------------------------------
// The flag list

// list renders the flag list of an app.
func (h *flagPageHandlers) list(c echo.Context) error {
	t, ok, err := h.loadApp(c)
	if !ok {
		return err
	}
	return h.renderList(c, t, http.StatusOK, nil)
}

// renderList renders the flag list; adjust, when given, puts forms as
// typed into the view.
func (h *flagPageHandlers) renderList(c echo.Context, t flagPageTarget, status int, adjust func(*templates.FlagsView)) error {
	ctx := c.Request().Context()
	m := memberFrom(c)
	v := templates.FlagsView{
		AppSlug: t.app.Slug, AppName: t.app.Name,
		CanEditApp: canEditFlagApp(m, t.app.Slug),
		Create:     templates.FlagDefinitionForm{Type: string(flags.TypeBoolean)},
	}
	if !v.CanEditApp {
		v.AppRoleNote = flagAppRoleNote(t.app.Slug)
	}
	for _, e := range t.envs {
		v.Environments = append(v.Environments, templates.FlagEnvHead{Name: e.Name, Tier: e.Tier})
	}
	all, err := h.store.ListFlags(ctx, t.app.ID)
	if err != nil {
		return fmt.Errorf("listing the flags of %s: %w", t.app.Slug, err)
	}
	states, err := h.statesByFlag(ctx, t)
	if err != nil {
		return err
	}
	for _, f := range all {
		row := templates.FlagRow{Key: f.Key(), Type: string(f.Definition.Type), Description: f.Definition.Description}
		running, err := h.runningRollouts(ctx, f, t.envs)
		if err != nil {
			return err
		}
		for _, e := range t.envs {
			st := states[e.ID][f.ID]
			cell := templates.FlagCell{
				Env: e.Name, On: st.Configured && st.State.Enabled, Configured: st.Configured,
				Summary: flagCellSummary(st, f.Definition, running[e.ID]), Href: templates.FlagPath(t.app.Slug, f.Key(), e.Name),
			}
			if r, ok := running[e.ID]; ok {
				cell.Rolling = true
				cell.Title = fmt.Sprintf("Guarded rollout of %s: step %d of %d, %s%% of users", r.Variant, r.StepIndex+1, len(r.Steps), store.FormatPercent(r.Percent()))
			}
			row.Cells = append(row.Cells, cell)
		}
		v.Rows = append(v.Rows, row)
	}
	segs, err := h.store.ListSegments(ctx, t.app.ID)
	if err != nil {
		return fmt.Errorf("listing the segments of %s: %w", t.app.Slug, err)
	}
	for _, s := range segs {
		v.Segments = append(v.Segments, templates.SegmentRow{
			Key: s.Definition.Key, Name: s.Definition.Name, Summary: store.DescribeSegmentMembers(s.Definition),
			Form: templates.SegmentForm{Key: s.Definition.Key, Version: s.Version, Text: flagPrettyJSON(s.Definition)},
		})
	}
	if adjust != nil {
		adjust(&v)
	}
	p := pageFor(c, t.app.Slug+" · flags", "overview")
	if status >= 400 {
		p.Flash, p.FlashError = "Nothing was changed: the form below says what to fix.", true
	} else {
		p.Flash = takeNotice(h.sessions, c)
	}
	return render(c, status, templates.Flags(p, v))
}

// flagCellSummary says in a few words what a flag serves in an
// environment: "on · 2 rules · 5% true", "off" or "not configured"; with
// a guarded rollout running there, "on · 2 rules · rolling out · 25%".
func flagCellSummary(st store.FlagState, def flags.Flag, running store.FlagRollout) string {
	rolling := running.ID != 0 && running.Running()
	switch {
	case !st.Configured:
		return "not configured"
	case !st.State.Enabled && rolling:
		return "off · rollout stopping"
	case !st.State.Enabled:
		return "off"
	}
	parts := []string{"on"}
	if n := len(st.State.Rules); n > 0 {
		parts = append(parts, store.Plural(n, "rule", "rules"))
	}
	if rolling {
		return strings.Join(append(parts, "rolling out", store.FormatPercent(running.Percent())+"%"), " · ")
	}
	return strings.Join(append(parts, flagShortServe(st.State.DefaultRollout, def.DefaultVariant)), " · ")
}

// recentFlagRollouts is how many of a flag's latest rollouts are read to
// find those that run; an older one that still runs is looked up per
// environment.
const recentFlagRollouts = 20

// runningRollouts finds the guarded rollouts of a flag that run, by
// environment id.
func (h *flagPageHandlers) runningRollouts(ctx context.Context, f store.Flag, envs []store.Environment) (map[int64]store.FlagRollout, error) {
	recent, err := h.store.ListFlagRollouts(ctx, f.ID, recentFlagRollouts)
	if err != nil {
		return nil, fmt.Errorf("listing the rollouts of flag %s: %w", f.Key(), err)
	}
	out := map[int64]store.FlagRollout{}
	for _, r := range recent {
		if r.Running() {
			out[r.EnvironmentID] = r
		}
	}
	if len(recent) < recentFlagRollouts {
		return out, nil
	}
	for _, e := range envs {
		if _, ok := out[e.ID]; ok {
			continue
		}
		r, err := h.store.CurrentFlagRollout(ctx, f.ID, e.ID)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return nil, fmt.Errorf("reading the rollout of flag %s in %s: %w", f.Key(), e.Name, err)
		case r.Running():
			out[e.ID] = r
		}
	}
	return out, nil
}

// flagShortServe is what a default rollout serves, shortest: a two-armed
// rollout is named by its first arm ("5% true"), the one being rolled out.
func flagShortServe(s flags.Serve, defaultVariant string) string {
	if len(s.Rollout) == 2 {
		return store.FormatPercent(s.Rollout[0].Weight) + "% " + s.Rollout[0].Variant
	}
	return store.DescribeServe(s, defaultVariant)
}

// create makes a new flag from the list page's form.
func (h *flagPageHandlers) create(c echo.Context) error {
	t, ok, err := h.loadApp(c)
	if !ok {
		return err
	}
	m := memberFrom(c)
	if !canEditFlagApp(m, t.app.Slug) {
		return refuseFlagAppWide(c, t.app.Slug, "Creating a flag")
	}
	form := readFlagDefinitionForm(c, true)
	def, problems := flagDefinitionFrom(form, flags.Flag{})
	if len(problems) == 0 {
		created, err := h.store.CreateFlag(c.Request().Context(), t.app.ID, def, m.Actor())
		if verr, ok := errors.AsType[*flags.ValidationError](err); ok {
			problems = flagProblemsOf(verr)
		} else if errors.Is(err, store.ErrAlreadyExists) {
			problems = []templates.FlagProblem{{Field: "key", Message: fmt.Sprintf("%s already has a flag %s; choose another key", t.app.Slug, def.Key)}}
		} else if err != nil {
			return fmt.Errorf("creating flag %s of %s: %w", def.Key, t.app.Slug, err)
		} else {
			keepNotice(h.sessions, c, fmt.Sprintf("Flag %s created. It is off in every environment until it is turned on there.", created.Key()))
			return c.Redirect(http.StatusSeeOther, string(templates.FlagPath(t.app.Slug, created.Key(), "")))
		}
	}
	setFlagFormProblems(&form, problems)
	return h.renderList(c, t, http.StatusBadRequest, func(v *templates.FlagsView) { v.Create = form })
}

// saveSegment creates or replaces a segment from its JSON editor.
func (h *flagPageHandlers) saveSegment(c echo.Context) error {
	t, ok, err := h.loadApp(c)
	if !ok {
		return err
	}
	m := memberFrom(c)
	if !canEditFlagApp(m, t.app.Slug) {
		return refuseFlagAppWide(c, t.app.Slug, "Changing a segment")
	}
	form := templates.SegmentForm{Key: strings.TrimSpace(c.FormValue("segment")), Text: c.FormValue("definition"), Open: true}
	version, verOK := flagFormVersion(c.FormValue("version"))
	form.Version = version
	status := http.StatusBadRequest
	var seg flags.Segment
	switch {
	case !verOK:
		form.Error = "The form did not say which version of the segment it was based on; reload the page and try again."
	case form.Key == "" && version != 0, form.Key != "" && version == 0:
		form.Error = "The form mixes up a new segment and an existing one; reload the page and try again."
	default:
		form.Problems = flagDecodeStrict(form.Text, &seg, "segment", "key, name, clauses, included_keys and excluded_keys")
		if len(form.Problems) == 0 && form.Key != "" && seg.Key != form.Key {
			form.Problems = []templates.FlagProblem{{Field: "key", Message: fmt.Sprintf(
				"a segment's key cannot change (rules name it %q); create a new segment instead", form.Key)}}
		}
	}
	if form.Error == "" && len(form.Problems) == 0 {
		saved, err := h.store.UpsertSegment(c.Request().Context(), t.app.ID, seg, version, m.Actor())
		var conflict *store.ConflictError
		switch {
		case errors.As(err, &conflict) && version == 0:
			form.Error = fmt.Sprintf("%s already has a segment %s (version %d); edit it in its own editor above. Nothing was saved.", t.app.Slug, seg.Key, conflict.Actual)
			status = http.StatusConflict
		case errors.As(err, &conflict):
			form.Error = fmt.Sprintf("Someone changed segment %s since you opened the page (version %d → %d), so nothing was saved. Reload the page to see their change; your text is kept below.",
				seg.Key, conflict.Expected, conflict.Actual)
			status = http.StatusConflict
		case err != nil:
			if verr, ok := errors.AsType[*flags.ValidationError](err); ok {
				form.Problems = flagProblemsOf(verr)
				break
			}
			return fmt.Errorf("saving segment %s of %s: %w", seg.Key, t.app.Slug, err)
		default:
			keepNotice(h.sessions, c, fmt.Sprintf("Segment %s saved (version %d); every flag of %s that targets it uses it now.", saved.Definition.Key, saved.Version, t.app.Slug))
			return c.Redirect(http.StatusSeeOther, string(templates.FlagsPath(t.app.Slug))+"#segments")
		}
	}
	return h.renderList(c, t, status, func(v *templates.FlagsView) {
		if form.Key == "" {
			v.NewSegment = form
			return
		}
		for i := range v.Segments {
			if v.Segments[i].Key == form.Key {
				v.Segments[i].Form = form
			}
		}
	})
}

// ---------------------------------------------------------------------------
// The flag page

// show renders a flag's page with the environment of ?env= selected (the
// first environment when none is named), and ?before= paging its history.
func (h *flagPageHandlers) show(c echo.Context) error {
	t, ok, err := h.loadFlag(c)
	if !ok {
		return err
	}
	if name := c.QueryParam("env"); name != "" {
		env, found := flagPageEnv(t.envs, name)
		if !found {
			return refusePage(c, http.StatusNotFound, fmt.Sprintf("App %s has no environment %q.", t.app.Slug, truncate(name, 80)))
		}
		t.env = env
	} else if len(t.envs) > 0 {
		t.env = t.envs[0]
	}
	var before int64
	if raw := c.QueryParam("before"); raw != "" {
		before, err = strconv.ParseInt(raw, 10, 64)
		if err != nil || before < 1 {
			return refusePage(c, http.StatusBadRequest, fmt.Sprintf("before must be the number of a change in the flag's history, such as 42, got %q.", truncate(raw, 40)))
		}
	}
	v, err := h.flagView(c, t, before)
	if err != nil {
		return err
	}
	p := pageFor(c, t.flag.Key()+" · "+t.app.Slug, "overview")
	p.Flash = takeNotice(h.sessions, c)
	return render(c, http.StatusOK, templates.Flag(p, v))
}

// renderFlag renders the flag page after a refused change, with adjust
// putting the form as typed into the view, and a flash saying why.
func (h *flagPageHandlers) renderFlag(c echo.Context, t flagPageTarget, status int, flash string, adjust func(*templates.FlagView)) error {
	v, err := h.flagView(c, t, 0)
	if err != nil {
		return err
	}
	if adjust != nil {
		adjust(&v)
	}
	p := pageFor(c, t.flag.Key()+" · "+t.app.Slug, "overview")
	p.Flash, p.FlashError = flash, true
	return render(c, status, templates.Flag(p, v))
}

// flagView reads everything the flag page shows.
func (h *flagPageHandlers) flagView(c echo.Context, t flagPageTarget, before int64) (templates.FlagView, error) {
	v, err := h.flagStateView(c, t)
	if err != nil {
		return v, err
	}
	history, err := h.flagHistory(c.Request().Context(), t, before)
	if err != nil {
		return v, err
	}
	v.History = history
	return v, nil
}

// flagStateView reads what the flag page shows but its history: the
// definition, and the flag in every environment with the selected one's
// editor and guarded rollout.
func (h *flagPageHandlers) flagStateView(c echo.Context, t flagPageTarget) (templates.FlagView, error) {
	ctx := c.Request().Context()
	m := memberFrom(c)
	def := t.flag.Definition
	v := templates.FlagView{
		AppSlug: t.app.Slug, AppName: t.app.Name, Key: def.Key, Type: string(def.Type), Description: def.Description,
		DefinitionVersion: t.flag.Version, CanEditApp: canEditFlagApp(m, t.app.Slug),
		Definition: flagDefinitionFormOf(t.flag), Now: time.Now(),
		Evaluate: templates.FlagEvaluateForm{Env: t.env.Name},
	}
	if !v.CanEditApp {
		v.AppRoleNote = flagAppRoleNote(t.app.Slug)
	}
	for _, name := range slices.Sorted(maps.Keys(def.Variants)) {
		v.Variants = append(v.Variants, templates.FlagVariantRow{
			Name: name, Value: flagCompactJSON(def.Variants[name]),
			Default: name == def.DefaultVariant, Off: name == flagOffVariant(def),
		})
	}
	running, err := h.runningRollouts(ctx, t.flag, t.envs)
	if err != nil {
		return v, err
	}
	for _, e := range t.envs {
		st, err := h.flagState(ctx, t, e)
		if err != nil {
			return v, err
		}
		r, rolling := running[e.ID]
		v.Environments = append(v.Environments, templates.FlagEnvTab{
			Name: e.Name, Tier: e.Tier, On: st.Configured && st.State.Enabled, Configured: st.Configured, Summary: flagCellSummary(st, def, r),
			Selected: e.ID == t.env.ID, Href: templates.FlagPath(t.app.Slug, def.Key, e.Name), Rolling: rolling,
		})
		if e.ID != t.env.ID {
			continue
		}
		v.Env = flagEnvStateOf(m, t, st)
		latest, err := h.store.CurrentFlagRollout(ctx, t.flag.ID, e.ID)
		var found *store.FlagRollout
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return v, fmt.Errorf("reading the rollout of %s in %s: %w", t.flag.Key(), t.where(), err)
		default:
			found = &latest
		}
		v.Env.Guarded = guardedRolloutView(m, t, st, found, v.Now)
	}
	return v, nil
}

// flagOffVariant is what a flag serves while it is off.
func flagOffVariant(def flags.Flag) string {
	return cmp.Or(def.OffVariant, def.DefaultVariant)
}

// flagEnvStateOf describes the flag in the selected environment.
func flagEnvStateOf(m *auth.Member, t flagPageTarget, st store.FlagState) templates.FlagEnvState {
	def := t.flag.Definition
	role := m.RoleOn(t.app.Slug, t.env.Name)
	e := templates.FlagEnvState{
		Name: t.env.Name, Tier: t.env.Tier, Role: role, CanEdit: role.Includes(auth.RoleDeployer),
		Configured: st.Configured, On: st.Configured && st.State.Enabled, Version: st.State.Version,
		UpdatedBy: st.UpdatedBy, UpdatedAt: st.UpdatedAt, OffVariant: flagOffVariant(def),
		Default: store.DescribeServe(st.State.DefaultRollout, def.DefaultVariant),
		Editor:  templates.FlagStateEditor{Text: flagStateText(st.State), Version: st.State.Version},
	}
	for i, r := range st.State.Rules {
		e.Rules = append(e.Rules, templates.FlagRuleLine{
			Number: i + 1, Name: r.Name, Matches: flagRuleMatches(r), Serves: store.DescribeServe(r.Serve, def.DefaultVariant),
		})
	}
	if on, off, ok := flagBooleanVariants(def); ok {
		e.Rollout = &templates.FlagRolloutControl{
			TrueVariant: on, FalseVariant: off, Percent: store.FormatPercent(flagShareOf(st.State.DefaultRollout, on, def.DefaultVariant)),
		}
	}
	return e
}

// flagRuleMatches says whom a rule matches: "in segment beta and email
// ends_with @acme.com", or "everyone".
func flagRuleMatches(r flags.Rule) string {
	var conds []string
	if r.Segment != "" {
		conds = append(conds, "in segment "+r.Segment)
	}
	for _, cl := range r.Clauses {
		conds = append(conds, flagClauseText(cl))
	}
	if len(conds) == 0 {
		return "everyone"
	}
	return strings.Join(conds, " and ")
}

// flagClauseText writes a clause as people read it: "email ends_with
// @acme.com", "plan in [pro, team]".
func flagClauseText(cl flags.Clause) string {
	vals := make([]string, len(cl.Values))
	for i, v := range cl.Values {
		if s, ok := v.(string); ok {
			vals[i] = s
			continue
		}
		b, _ := json.Marshal(v)
		vals[i] = string(b)
	}
	text := strings.Join(vals, ", ")
	if len(vals) != 1 {
		text = "[" + text + "]"
	}
	return cl.Attribute + " " + string(cl.Op) + " " + text
}

// flagBooleanVariants finds the variants of a boolean flag whose values
// are true and false, for the rollout control.
func flagBooleanVariants(def flags.Flag) (on, off string, ok bool) {
	if def.Type != flags.TypeBoolean {
		return "", "", false
	}
	for _, name := range slices.Sorted(maps.Keys(def.Variants)) {
		switch string(bytes.TrimSpace(def.Variants[name])) {
		case "true":
			on = cmp.Or(on, name)
		case "false":
			off = cmp.Or(off, name)
		}
	}
	return on, off, on != "" && off != ""
}

// flagShareOf is the percentage of users a serve gives the variant.
func flagShareOf(s flags.Serve, variant, defaultVariant string) float64 {
	if len(s.Rollout) > 0 {
		for _, wv := range s.Rollout {
			if wv.Variant == variant {
				return wv.Weight
			}
		}
		return 0
	}
	if cmp.Or(s.Variant, defaultVariant) == variant {
		return 100
	}
	return 0
}

// flagEditableState is what the state editor shows: the state without its
// version, which the form carries on its own.
type flagEditableState struct {
	Enabled        bool         `json:"enabled"`
	Rules          []flags.Rule `json:"rules"`
	DefaultRollout flags.Serve  `json:"default_rollout"`
}

// flagStateText is a state pretty-printed for its editor.
func flagStateText(st flags.EnvState) string {
	rules := st.Rules
	if rules == nil {
		rules = []flags.Rule{}
	}
	return flagPrettyJSON(flagEditableState{Enabled: st.Enabled, Rules: rules, DefaultRollout: st.DefaultRollout})
}

// flagPrettyJSON indents a value for a textarea.
func flagPrettyJSON(v any) string {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return ""
	}
	return string(b)
}

// flagCompactJSON writes a variant's value on one line.
func flagCompactJSON(raw json.RawMessage) string {
	var out bytes.Buffer
	if err := json.Compact(&out, raw); err != nil {
		return string(raw)
	}
	return out.String()
}

// flagHistory reads one page of the flag's history, newest first.
func (h *flagPageHandlers) flagHistory(ctx context.Context, t flagPageTarget, before int64) (templates.FlagHistory, error) {
	out := templates.FlagHistory{Newest: before == 0}
	events, err := h.store.ListFlagEventsBefore(ctx, t.flag.ID, before, flagHistoryPageSize+1)
	if err != nil {
		return out, fmt.Errorf("reading the history of flag %s: %w", t.flag.Key(), err)
	}
	if len(events) > flagHistoryPageSize {
		events = events[:flagHistoryPageSize]
		out.Older = events[len(events)-1].ID
	}
	names := make(map[int64]string, len(t.envs))
	for _, e := range t.envs {
		names[e.ID] = e.Name
	}
	variants, err := h.rolloutVariants(ctx, t.flag, events)
	if err != nil {
		return out, err
	}
	for _, ev := range events {
		env := names[ev.EnvironmentID]
		out.Entries = append(out.Entries, templates.FlagHistoryEntry{
			ID: ev.ID, At: ev.At, Actor: ev.Actor, Env: env,
			Kind: strings.ReplaceAll(ev.Type, ".", "-"), Text: flagHistoryText(ev, env, t.flag.Definition, variants),
		})
	}
	return out, nil
}

// rolloutVariants names the variant each guarded rollout the events are
// about releases, for events whose payload does not say, by rollout id.
func (h *flagPageHandlers) rolloutVariants(ctx context.Context, f store.Flag, events []store.FlagEvent) (map[int64]string, error) {
	var missing []int64
	for _, ev := range events {
		if !strings.HasPrefix(ev.Type, "flag.rollout_") {
			continue
		}
		if p, err := ev.DecodePayload(); err == nil && p.Rollout != 0 && p.Variant == "" {
			missing = append(missing, p.Rollout)
		}
	}
	if len(missing) == 0 {
		return nil, nil
	}
	recent, err := h.store.ListFlagRollouts(ctx, f.ID, recentFlagRollouts)
	if err != nil {
		return nil, fmt.Errorf("listing the rollouts of flag %s: %w", f.Key(), err)
	}
	out := make(map[int64]string, len(recent))
	for _, r := range recent {
		out[r.ID] = r.Variant
	}
	for _, id := range missing {
		if _, ok := out[id]; ok {
			continue
		}
		r, err := h.store.FlagRollout(ctx, id)
		switch {
		case errors.Is(err, store.ErrNotFound):
			out[id] = ""
		case err != nil:
			return nil, fmt.Errorf("reading rollout %d of flag %s: %w", id, f.Key(), err)
		default:
			out[id] = r.Variant
		}
	}
	return out, nil
}

// flagHistoryText says what a change of the flag did: "killed in
// production", "state changed in staging: on, 2 rules, default 5% true /
// 95% false", "rollout moved true from 5% to 25% in production".
// variants names the variant of rollouts whose events do not, by id.
func flagHistoryText(ev store.FlagEvent, env string, def flags.Flag, variants map[int64]string) string {
	p, err := ev.DecodePayload()
	if err != nil {
		return strings.ReplaceAll(ev.Type, "_", " ")
	}
	switch ev.Type {
	case store.FlagEventCreated:
		if p.Definition != nil {
			return "created: " + store.DescribeFlagDefinition(*p.Definition)
		}
		return "created"
	case store.FlagEventUpdated:
		if p.Definition != nil {
			return "definition changed: " + store.DescribeFlagDefinition(*p.Definition)
		}
		return "definition changed"
	case store.FlagEventStateChanged:
		if p.State != nil {
			return "state changed in " + env + ": " + store.DescribeFlagState(*p.State, def.DefaultVariant)
		}
		return "state changed in " + env
	case store.FlagEventKilled:
		if p.WasEnabled != nil && !*p.WasEnabled {
			return "killed in " + env + " (it was already off)"
		}
		return "killed in " + env
	}
	if text, ok := store.DescribeFlagRolloutEvent(ev.Type, p, env, variants[p.Rollout]); ok {
		return text
	}
	return strings.ReplaceAll(ev.Type, "_", " ")
}

// ---------------------------------------------------------------------------
// Changes of the flag in one environment

// kill turns the flag off in the environment: the kill switch. It never
// asks for a version, so an on-call engineer never has to retry it.
func (h *flagPageHandlers) kill(c echo.Context) error {
	t, ok, err := h.loadFlagEnv(c)
	if !ok {
		return err
	}
	m := memberFrom(c)
	if !m.Can(t.app.Slug, t.env.Name, auth.RoleDeployer) {
		return refuseFlagEnv(c, m, t, fmt.Sprintf("turning %s off there", t.flag.Key()))
	}
	if _, err := h.store.KillFlag(c.Request().Context(), t.flag.ID, t.env.ID, m.Actor()); err != nil {
		return fmt.Errorf("turning %s off in %s: %w", t.flag.Key(), t.where(), err)
	}
	keepNotice(h.sessions, c, fmt.Sprintf("%s is off in %s: every user there gets %s.", t.flag.Key(), t.where(), flagOffVariant(t.flag.Definition)))
	return c.Redirect(http.StatusSeeOther, string(templates.FlagPath(t.app.Slug, t.flag.Key(), t.env.Name)))
}

// turnOn turns the flag on in the environment, keeping its rules, provided
// its state is still the version the page showed.
func (h *flagPageHandlers) turnOn(c echo.Context) error {
	t, ok, err := h.loadFlagEnv(c)
	if !ok {
		return err
	}
	m := memberFrom(c)
	if !m.Can(t.app.Slug, t.env.Name, auth.RoleDeployer) {
		return refuseFlagEnv(c, m, t, fmt.Sprintf("turning %s on there", t.flag.Key()))
	}
	version, verOK := flagFormVersion(c.FormValue("version"))
	if !verOK {
		return refusePage(c, http.StatusBadRequest, "The form did not say which version of the state it was based on; reload the page and try again. Nothing was changed.")
	}
	ctx := c.Request().Context()
	cur, err := h.flagState(ctx, t, t.env)
	if err != nil {
		return err
	}
	if cur.State.Version != version {
		return refusePage(c, http.StatusConflict, flagConflictMessage(t, version, cur.State.Version, "turned nothing on"))
	}
	next := cur.State
	next.Enabled = true
	saved, err := h.store.SetFlagState(ctx, t.flag.ID, t.env.ID, next, version, m.Actor())
	if conflict, ok := errors.AsType[*store.ConflictError](err); ok {
		return refusePage(c, http.StatusConflict, flagConflictMessage(t, conflict.Expected, conflict.Actual, "turned nothing on"))
	}
	if verr, ok := errors.AsType[*flags.ValidationError](err); ok {
		return refusePage(c, http.StatusConflict, fmt.Sprintf("%s cannot be turned on in %s as it is configured there: %s. Fix its state in the editor first. Nothing was changed.",
			t.flag.Key(), t.where(), verr.Error()))
	}
	if err != nil {
		return fmt.Errorf("turning %s on in %s: %w", t.flag.Key(), t.where(), err)
	}
	keepNotice(h.sessions, c, fmt.Sprintf("%s is on in %s: %s.", t.flag.Key(), t.where(), store.DescribeFlagState(saved.State, t.flag.Definition.DefaultVariant)))
	return c.Redirect(http.StatusSeeOther, string(templates.FlagPath(t.app.Slug, t.flag.Key(), t.env.Name)))
}

// flagConflictMessage says that someone else changed the state first.
func flagConflictMessage(t flagPageTarget, expected, actual int64, outcome string) string {
	return fmt.Sprintf("Someone changed the state of %s in %s since you opened the page (version %d → %d), so this %s. Reload the page to see their change, then decide again.",
		t.flag.Key(), t.env.Name, expected, actual, outcome)
}

// rollout sets the default rollout of a boolean flag to a percentage of
// its true variant: the quick control for the common case.
func (h *flagPageHandlers) rollout(c echo.Context) error {
	t, ok, err := h.loadFlagEnv(c)
	if !ok {
		return err
	}
	m := memberFrom(c)
	if !m.Can(t.app.Slug, t.env.Name, auth.RoleDeployer) {
		return refuseFlagEnv(c, m, t, fmt.Sprintf("changing the rollout of %s", t.flag.Key()))
	}
	on, off, isBool := flagBooleanVariants(t.flag.Definition)
	if !isBool {
		return refusePage(c, http.StatusBadRequest, fmt.Sprintf("%s is not a boolean flag with a true and a false variant, so it has no percentage control; edit its state as JSON instead. Nothing was changed.", t.flag.Key()))
	}
	raw := strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(c.FormValue("percent")), "%"))
	version, verOK := flagFormVersion(c.FormValue("version"))
	refuse := func(status int, message string) error {
		return h.renderFlag(c, t, status, "Nothing was changed: the rollout control says why.", func(v *templates.FlagView) {
			if v.Env.Rollout != nil {
				v.Env.Rollout.Percent, v.Env.Rollout.Error = raw, message
			}
		})
	}
	if !verOK {
		return refuse(http.StatusBadRequest, "The form did not say which version of the state it was based on; reload the page and try again.")
	}
	basis, okPct := flagPercentBasisPoints(raw)
	if !okPct {
		return refuse(http.StatusBadRequest, fmt.Sprintf("Write a percentage between 0 and 100 with at most two decimals, such as 5 or 12.5; %q is not one.", truncate(raw, 40)))
	}
	ctx := c.Request().Context()
	cur, err := h.flagState(ctx, t, t.env)
	if err != nil {
		return err
	}
	if cur.State.Version != version {
		return refuse(http.StatusConflict, flagConflictMessage(t, version, cur.State.Version, "rollout was not saved"))
	}
	next := cur.State
	next.DefaultRollout = flags.Serve{Rollout: []flags.WeightedVariant{
		{Variant: on, Weight: float64(basis) / 100},
		{Variant: off, Weight: float64(10000-basis) / 100},
	}}
	_, err = h.store.SetFlagState(ctx, t.flag.ID, t.env.ID, next, version, m.Actor())
	if conflict, ok := errors.AsType[*store.ConflictError](err); ok {
		return refuse(http.StatusConflict, flagConflictMessage(t, conflict.Expected, conflict.Actual, "rollout was not saved"))
	}
	if verr, ok := errors.AsType[*flags.ValidationError](err); ok {
		return refuse(http.StatusBadRequest, "The state would not be valid: "+verr.Error()+".")
	}
	if err != nil {
		return fmt.Errorf("setting the rollout of %s in %s: %w", t.flag.Key(), t.where(), err)
	}
	notice := fmt.Sprintf("%s in %s now serves %s%% %s by default.", t.flag.Key(), t.where(), store.FormatPercent(float64(basis)/100), on)
	if !next.Enabled {
		notice += " It is off there: the rollout takes effect when it is turned on."
	}
	keepNotice(h.sessions, c, notice)
	return c.Redirect(http.StatusSeeOther, string(templates.FlagPath(t.app.Slug, t.flag.Key(), t.env.Name))+"#state")
}

// flagPercentBasisPoints reads a percentage with at most two decimals as
// basis points.
func flagPercentBasisPoints(raw string) (int64, bool) {
	pct, err := strconv.ParseFloat(raw, 64)
	if err != nil || math.IsNaN(pct) || pct < 0 || pct > 100 {
		return 0, false
	}
	x := pct * 100
	r := math.Round(x)
	if math.Abs(x-r) > 1e-6 {
		return 0, false
	}
	return int64(r), true
}

// saveState replaces the flag's state in the environment with the JSON of
// the state editor, provided the state is still the version the page
// showed.
func (h *flagPageHandlers) saveState(c echo.Context) error {
	t, ok, err := h.loadFlagEnv(c)
	if !ok {
		return err
	}
	m := memberFrom(c)
	if !m.Can(t.app.Slug, t.env.Name, auth.RoleDeployer) {
		return refuseFlagEnv(c, m, t, fmt.Sprintf("changing the state of %s", t.flag.Key()))
	}
	editor := templates.FlagStateEditor{Text: c.FormValue("state")}
	version, verOK := flagFormVersion(c.FormValue("version"))
	editor.Version = version
	refuse := func(status int, flash string) error {
		return h.renderFlag(c, t, status, flash, func(v *templates.FlagView) {
			v.Env.Editor = editor
		})
	}
	if !verOK {
		editor.Error = "The form did not say which version of the state it was based on; reload the page and try again."
		return refuse(http.StatusBadRequest, "Nothing was saved: the state editor says why.")
	}
	var state flags.EnvState
	editor.Problems = flagDecodeStrict(editor.Text, &state, "state", "enabled, rules and default_rollout")
	if len(editor.Problems) > 0 {
		return refuse(http.StatusBadRequest, "Nothing was saved: the state editor lists what to fix.")
	}
	_, err = h.store.SetFlagState(c.Request().Context(), t.flag.ID, t.env.ID, state, version, m.Actor())
	if conflict, ok := errors.AsType[*store.ConflictError](err); ok {
		editor.Error = fmt.Sprintf("Someone changed the state of %s in %s since you opened the page (version %d → %d), so nothing was saved. Reload the page to see their change; your text is kept below.",
			t.flag.Key(), t.env.Name, conflict.Expected, conflict.Actual)
		return refuse(http.StatusConflict, "Nothing was saved: someone else changed this state first.")
	}
	if verr, ok := errors.AsType[*flags.ValidationError](err); ok {
		editor.Problems = flagProblemsOf(verr)
		return refuse(http.StatusBadRequest, "Nothing was saved: the state editor lists what to fix.")
	}
	if err != nil {
		return fmt.Errorf("saving the state of %s in %s: %w", t.flag.Key(), t.where(), err)
	}
	keepNotice(h.sessions, c, fmt.Sprintf("Saved the state of %s in %s.", t.flag.Key(), t.where()))
	return c.Redirect(http.StatusSeeOther, string(templates.FlagPath(t.app.Slug, t.flag.Key(), t.env.Name))+"#state")
}

// ---------------------------------------------------------------------------
// The guarded rollout of the flag in one environment

// defaultRolloutSteps is the steps field as first offered.
var defaultRolloutSteps = func() string {
	parts := make([]string, len(store.DefaultFlagRolloutSteps))
	for i, p := range store.DefaultFlagRolloutSteps {
		parts[i] = store.FormatPercent(p)
	}
	return strings.Join(parts, ", ")
}()

// defaultRolloutBake is the bake per step first offered.
const defaultRolloutBake = "10m"

// maxRolloutFormText bounds the text fields of the start form.
const maxRolloutFormText = 1000

// guardedRolloutView describes the guarded rollout panel of the selected
// environment; latest is the running rollout or else the latest one, nil
// when the flag never had one there.
func guardedRolloutView(m *auth.Member, t flagPageTarget, st store.FlagState, latest *store.FlagRollout, now time.Time) templates.FlagGuardedRollout {
	def := t.flag.Definition
	role := m.RoleOn(t.app.Slug, t.env.Name)
	g := templates.FlagGuardedRollout{
		AppSlug: t.app.Slug, FlagKey: def.Key, Env: t.env.Name,
		CanEdit:     role.Includes(auth.RoleDeployer),
		Variants:    slices.Sorted(maps.Keys(def.Variants)),
		MetricsPath: flagRolloutMetricsPath(t),
		Form:        defaultRolloutForm(def),
		Now:         now,
	}
	if !g.CanEdit {
		g.RoleNote = fmt.Sprintf("You are a %s on %s; starting or cancelling a guarded rollout needs the %s role.", role, t.where(), auth.RoleDeployer)
	}
	if latest == nil {
		g.Seen = "none." + strconv.FormatInt(st.State.Version, 10)
		return g
	}
	r := *latest
	g.Seen = fmt.Sprintf("%d.%d.%s.%d", r.ID, r.StepIndex, r.State, st.State.Version)
	if r.Running() {
		g.Running = runningRolloutView(t, st, r, now)
	} else {
		g.Last = endedRolloutView(t, r)
	}
	return g
}

// flagRolloutMetricsPath is where applications push a rollout's metrics
// by variant through the API.
func flagRolloutMetricsPath(t flagPageTarget) string {
	return "/api/v1/apps/" + url.PathEscape(t.app.Slug) + "/flags/" + url.PathEscape(t.flag.Key()) +
		"/environments/" + url.PathEscape(t.env.Name) + "/rollout/metrics"
}

// defaultRolloutForm is the start form as first offered: a boolean flag
// releases its true variant over its false one.
func defaultRolloutForm(def flags.Flag) templates.FlagRolloutForm {
	f := templates.FlagRolloutForm{Steps: defaultRolloutSteps, StepBake: defaultRolloutBake}
	if on, off, ok := flagBooleanVariants(def); ok {
		f.Variant, f.ControlVariant = on, off
	} else {
		f.ControlVariant = def.DefaultVariant
	}
	return f
}

// rolloutPercent writes a step's share: "25%".
func rolloutPercent(p float64) string { return store.FormatPercent(p) + "%" }

// rolloutSteps writes a rollout's steps: "5% → 25% → 50% → 100%".
func rolloutSteps(steps []float64) string {
	parts := make([]string, len(steps))
	for i, p := range steps {
		parts[i] = rolloutPercent(p)
	}
	return strings.Join(parts, " → ")
}

// runningRolloutView describes a running rollout at now.
func runningRolloutView(t flagPageTarget, st store.FlagState, r store.FlagRollout, now time.Time) *templates.FlagRolloutRunning {
	out := &templates.FlagRolloutRunning{
		ID: r.ID, Variant: r.Variant, ControlVariant: r.ControlVariant, Percent: rolloutPercent(r.Percent()),
		StepNumber: r.StepIndex + 1, StepCount: len(r.Steps), StepBake: plan.Duration(r.StepBake).String(),
		NextCheck: r.NextCheckAt, StartedBy: r.StartedBy, StartedAt: r.CreatedAt,
		FlagOff: !st.State.Enabled,
		CancelConfirm: fmt.Sprintf("Cancel the guarded rollout of %s in %s? It stops at %s: %s keeps serving %s to that share of users until someone changes it.",
			t.flag.Key(), t.where(), rolloutPercent(r.Percent()), t.flag.Key(), r.Variant),
	}
	for i, p := range r.Steps {
		status := "next"
		switch {
		case i < r.StepIndex:
			status = "done"
		case i == r.StepIndex:
			status = "current"
		}
		out.Steps = append(out.Steps, templates.FlagRolloutStep{Number: i + 1, Percent: rolloutPercent(p), Status: status})
	}
	baked := min(max(now.Sub(r.StepStartedAt), 0), r.StepBake)
	out.Baked = templates.RunDuration(baked)
	if r.StepBake > 0 {
		out.BakedPercent = int(100 * baked / r.StepBake)
	}
	out.BakeOver = baked >= r.StepBake
	out.Decision = rolloutDecisionView(r)
	return out
}

// rolloutDecisionView words the decision of a rollout's latest check; nil
// before the first.
func rolloutDecisionView(r store.FlagRollout) *templates.FlagRolloutDecision {
	if len(r.LastDecision) == 0 || string(r.LastDecision) == "null" {
		return nil
	}
	var d analysis.Decision
	if err := json.Unmarshal(r.LastDecision, &d); err != nil {
		return &templates.FlagRolloutDecision{Verdict: "unknown", VerdictLabel: "Unreadable",
			Explanation: "The latest decision of this rollout could not be read: " + err.Error() + "."}
	}
	out := &templates.FlagRolloutDecision{
		Verdict: string(d.Verdict), VerdictLabel: runVerdictLabel(string(d.Verdict)), Explanation: d.Explanation, At: d.WindowTo,
	}
	if !d.WindowFrom.IsZero() && d.WindowFrom.Before(r.StepStartedAt) && r.StepIndex > 0 {
		out.Earlier = fmt.Sprintf("This check judged the %s step and moved the rollout on; the %s step's own checks follow.",
			rolloutPercent(r.Steps[r.StepIndex-1]), rolloutPercent(r.Percent()))
	}
	for _, m := range d.Metrics {
		out.Metrics = append(out.Metrics, runMetricRow(m))
	}
	return out
}

// endedRolloutView describes a rollout that has ended.
func endedRolloutView(t flagPageTarget, r store.FlagRollout) *templates.FlagRolloutEnded {
	out := &templates.FlagRolloutEnded{
		State: string(r.State), Outcome: r.Outcome, FinishedAt: r.FinishedAt,
		Summary: fmt.Sprintf("%s over %s, %s, %s per step, started by %s", r.Variant, r.ControlVariant,
			rolloutSteps(r.Steps), plan.Duration(r.StepBake), r.StartedBy),
	}
	switch r.State {
	case store.FlagRolloutCompleted:
		out.Label, out.Badge = "completed", "state-succeeded"
	case store.FlagRolloutRolledBack:
		out.Label, out.Badge = "rolled back", "state-rolled_back"
		out.Outcome = fmt.Sprintf("Rolled back at %s: the decision found %s worse than %s, so %s was turned off in %s and every user there got %s.",
			rolloutPercent(r.Percent()), r.Variant, r.ControlVariant, t.flag.Key(), t.env.Name, flagOffVariant(t.flag.Definition))
		out.Explanation = r.Outcome
	case store.FlagRolloutCancelled:
		out.Label, out.Badge = "cancelled", "state-paused"
	default:
		out.Label, out.Badge = strings.ReplaceAll(string(r.State), "_", " "), "state-pending"
	}
	return out
}

// readRolloutForm reads the start form as typed.
func readRolloutForm(c echo.Context) templates.FlagRolloutForm {
	return templates.FlagRolloutForm{
		Variant:        strings.TrimSpace(c.FormValue("variant")),
		ControlVariant: strings.TrimSpace(c.FormValue("control_variant")),
		Steps:          strings.TrimSpace(c.FormValue("steps")),
		StepBake:       strings.TrimSpace(c.FormValue("step_bake")),
	}
}

// rolloutFromForm reads a new rollout from the start form; the problems
// it finds are those of the form's text. The store checks the rest.
func rolloutFromForm(f templates.FlagRolloutForm) (store.NewFlagRollout, []templates.FlagProblem) {
	n := store.NewFlagRollout{Variant: f.Variant, ControlVariant: f.ControlVariant}
	var problems []templates.FlagProblem
	add := func(field, format string, args ...any) {
		problems = append(problems, templates.FlagProblem{Field: field, Message: fmt.Sprintf(format, args...)})
	}
	switch {
	case len(f.Steps) > maxRolloutFormText:
		add("steps", "is %d characters long; write at most %d percentages such as 5, 25, 50, 100", len(f.Steps), store.MaxFlagRolloutSteps)
	default:
		parts := strings.FieldsFunc(f.Steps, func(r rune) bool { return r == ',' || r == ';' || r == '→' || unicode.IsSpace(r) })
		for i, part := range parts {
			p, err := strconv.ParseFloat(strings.TrimSuffix(part, "%"), 64)
			if err != nil || math.IsInf(p, 0) {
				add("steps["+strconv.Itoa(i)+"]", "%q is not a percentage; write numbers such as 5, 25, 50, 100", truncate(part, 20))
				continue
			}
			n.Steps = append(n.Steps, p)
		}
	}
	switch {
	case f.StepBake == "":
		add("step_bake", "is empty; write how long each step bakes before it may move on, such as %s", defaultRolloutBake)
	case len(f.StepBake) > maxRolloutFormText:
		add("step_bake", "is %d characters long; write a duration such as %s", len(f.StepBake), defaultRolloutBake)
	default:
		d, err := plan.ParseDuration(f.StepBake)
		if err != nil {
			add("step_bake", "%q %v", truncate(f.StepBake, 40), err)
		}
		n.StepBake = time.Duration(d)
	}
	return n, problems
}

// setRolloutFormProblems puts problems next to the fields of the start
// form they concern; those of no field are listed above it.
func setRolloutFormProblems(f *templates.FlagRolloutForm, problems []templates.FlagProblem) {
	f.Errors = map[string][]string{}
	for _, pr := range problems {
		switch field := pr.Field; {
		case field == "variant", field == "control_variant", field == "steps", field == "step_bake":
			f.Errors[field] = append(f.Errors[field], pr.Message)
		case strings.HasPrefix(field, "steps["):
			i, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(field, "steps["), "]"))
			if err != nil {
				f.Errors["steps"] = append(f.Errors["steps"], pr.Message)
				continue
			}
			f.Errors["steps"] = append(f.Errors["steps"], fmt.Sprintf("step %d: %s", i+1, pr.Message))
		default:
			f.Problems = append(f.Problems, pr)
		}
	}
	if len(f.Problems) > 0 {
		f.Error = "The flag's state would not be valid with this rollout; every problem is listed below with the field it concerns."
	}
}

// guardedRolloutPanel answers the panel's refresh while a rollout runs:
// the panel, and the parts of the page the rollout changes when they
// changed since the page showed them (?seen=). Without htmx it is the
// flag page.
func (h *flagPageHandlers) guardedRolloutPanel(c echo.Context) error {
	t, ok, err := h.loadFlagEnv(c)
	if !ok {
		return err
	}
	if c.Request().Header.Get("HX-Request") != "true" {
		return c.Redirect(http.StatusSeeOther, string(templates.FlagPath(t.app.Slug, t.flag.Key(), t.env.Name))+"#guarded-rollout")
	}
	v, err := h.flagStateView(c, t)
	if err != nil {
		return err
	}
	p := pageFor(c, t.flag.Key()+" · "+t.app.Slug, "overview")
	return render(c, http.StatusOK, templates.FlagGuardedRolloutRefresh(p, v, c.QueryParam("seen") != v.Env.Guarded.Seen))
}

// startGuardedRollout starts a guarded rollout of the flag in the
// environment from the panel's form.
func (h *flagPageHandlers) startGuardedRollout(c echo.Context) error {
	t, ok, err := h.loadFlagEnv(c)
	if !ok {
		return err
	}
	m := memberFrom(c)
	if !m.Can(t.app.Slug, t.env.Name, auth.RoleDeployer) {
		return refuseFlagEnv(c, m, t, fmt.Sprintf("starting a guarded rollout of %s", t.flag.Key()))
	}
	form := readRolloutForm(c)
	n, problems := rolloutFromForm(form)
	if len(problems) == 0 {
		n.FlagID, n.EnvironmentID, n.Actor = t.flag.ID, t.env.ID, m.Actor()
		ctx := c.Request().Context()
		r, _, err := h.store.StartFlagRollout(ctx, n)
		if errors.Is(err, store.ErrRolloutRunning) {
			message := fmt.Sprintf("A guarded rollout of %s is running in %s already; it was not replaced. Cancel it before starting another. Nothing was changed.", t.flag.Key(), t.where())
			if cur, cerr := h.store.CurrentFlagRollout(ctx, t.flag.ID, t.env.ID); cerr == nil && cur.Running() {
				message = fmt.Sprintf("A guarded rollout of %s is running in %s already (%s at %s, started by %s); it was not replaced. Cancel it before starting another. Nothing was changed.",
					t.flag.Key(), t.where(), cur.Variant, rolloutPercent(cur.Percent()), cur.StartedBy)
			}
			return h.renderFlag(c, t, http.StatusConflict, "Nothing was started: a guarded rollout runs there already.", func(v *templates.FlagView) {
				v.Env.Guarded.Error = message
			})
		}
		if verr, ok := errors.AsType[*flags.ValidationError](err); ok {
			problems = flagProblemsOf(verr)
		} else if err != nil {
			return fmt.Errorf("starting a guarded rollout of %s in %s: %w", t.flag.Key(), t.where(), err)
		} else {
			notice := fmt.Sprintf("Guarded rollout of %s started in %s: %s serves %s of the users no rule matches.", t.flag.Key(), t.where(), r.Variant, rolloutPercent(r.Percent()))
			if len(r.Steps) > 1 {
				notice += fmt.Sprintf(" It moves to %s after %s of healthy metrics.", rolloutPercent(r.Steps[1]), plan.Duration(r.StepBake))
			}
			keepNotice(h.sessions, c, notice)
			return c.Redirect(http.StatusSeeOther, string(templates.FlagPath(t.app.Slug, t.flag.Key(), t.env.Name))+"#guarded-rollout")
		}
	}
	setRolloutFormProblems(&form, problems)
	return h.renderFlag(c, t, http.StatusBadRequest, "Nothing was started: the guarded rollout form says what to fix.", func(v *templates.FlagView) {
		v.Env.Guarded.Form = form
	})
}

// cancelGuardedRollout stops the running rollout the page showed where it
// is: the flag keeps serving the current step's share.
func (h *flagPageHandlers) cancelGuardedRollout(c echo.Context) error {
	t, ok, err := h.loadFlagEnv(c)
	if !ok {
		return err
	}
	m := memberFrom(c)
	if !m.Can(t.app.Slug, t.env.Name, auth.RoleDeployer) {
		return refuseFlagEnv(c, m, t, fmt.Sprintf("cancelling the guarded rollout of %s", t.flag.Key()))
	}
	id, err := strconv.ParseInt(strings.TrimSpace(c.FormValue("rollout")), 10, 64)
	if err != nil || id < 1 {
		return refusePage(c, http.StatusBadRequest, "The form did not say which rollout to cancel; reload the page and try again. Nothing was changed.")
	}
	ctx := c.Request().Context()
	refuse := func(message string) error {
		return h.renderFlag(c, t, http.StatusConflict, "Nothing was cancelled: the guarded rollout panel says why.", func(v *templates.FlagView) {
			v.Env.Guarded.Error = message
		})
	}
	cur, err := h.store.CurrentFlagRollout(ctx, t.flag.ID, t.env.ID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return refuse(fmt.Sprintf("%s never had a guarded rollout in %s, so there is nothing to cancel. Nothing was changed.", t.flag.Key(), t.where()))
	case err != nil:
		return fmt.Errorf("reading the rollout of %s in %s: %w", t.flag.Key(), t.where(), err)
	case cur.ID != id && cur.Running():
		return refuse(fmt.Sprintf("The rollout this page showed has ended, and another one runs now (%s at %s, started by %s); look at it before cancelling. Nothing was changed.",
			cur.Variant, rolloutPercent(cur.Percent()), cur.StartedBy))
	case cur.ID != id || !cur.Running():
		return refuse("The guarded rollout this page showed has ended already, so there is nothing to cancel. Nothing was changed.")
	}
	r, err := h.store.CancelFlagRollout(ctx, id, m.Actor())
	if errors.Is(err, store.ErrTerminal) {
		return refuse("The guarded rollout ended while you were cancelling it, so there is nothing to cancel. Nothing was changed.")
	}
	if err != nil {
		return fmt.Errorf("cancelling the rollout of %s in %s: %w", t.flag.Key(), t.where(), err)
	}
	keepNotice(h.sessions, c, fmt.Sprintf("Cancelled the guarded rollout of %s in %s at %s: %s keeps serving %s to that share of users until someone changes it.",
		t.flag.Key(), t.where(), rolloutPercent(r.Percent()), t.flag.Key(), r.Variant))
	return c.Redirect(http.StatusSeeOther, string(templates.FlagPath(t.app.Slug, t.flag.Key(), t.env.Name))+"#guarded-rollout")
}

// ---------------------------------------------------------------------------
// The definition

// saveDefinition replaces the flag's definition, provided it is still the
// version the page showed.
func (h *flagPageHandlers) saveDefinition(c echo.Context) error {
	t, ok, err := h.loadFlag(c)
	if !ok {
		return err
	}
	if len(t.envs) > 0 {
		t.env = t.envs[0]
	}
	m := memberFrom(c)
	if !canEditFlagApp(m, t.app.Slug) {
		return refuseFlagAppWide(c, t.app.Slug, "Changing a flag's definition")
	}
	form := readFlagDefinitionForm(c, false)
	form.Key = t.flag.Key()
	version, verOK := flagFormVersion(c.FormValue("version"))
	form.Version = version
	status := http.StatusBadRequest
	if !verOK || version == 0 {
		form.Error = "The form did not say which version of the definition it was based on; reload the page and try again."
	} else {
		def, problems := flagDefinitionFrom(form, t.flag.Definition)
		if len(problems) == 0 {
			updated := t.flag
			updated.Definition, updated.Version = def, version
			_, err := h.store.UpdateFlag(c.Request().Context(), updated, m.Actor())
			if conflict, ok := errors.AsType[*store.ConflictError](err); ok {
				form.Error = fmt.Sprintf("Someone changed the definition of %s since you opened the page (version %d → %d), so nothing was saved. Reload the page to see their change; your form is kept below.",
					t.flag.Key(), conflict.Expected, conflict.Actual)
				status = http.StatusConflict
			} else if verr, ok := errors.AsType[*flags.ValidationError](err); ok {
				problems = flagProblemsOf(verr)
			} else if err != nil {
				return fmt.Errorf("saving the definition of %s: %w", t.flag.Key(), err)
			} else {
				keepNotice(h.sessions, c, fmt.Sprintf("Saved the definition of %s; it applies to every environment.", t.flag.Key()))
				return c.Redirect(http.StatusSeeOther, string(templates.FlagPath(t.app.Slug, t.flag.Key(), ""))+"#definition")
			}
		}
		setFlagFormProblems(&form, problems)
	}
	return h.renderFlag(c, t, status, "Nothing was saved: the definition form says why.", func(v *templates.FlagView) {
		v.Definition = form
	})
}

// readFlagDefinitionForm reads a definition form as typed.
func readFlagDefinitionForm(c echo.Context, creating bool) templates.FlagDefinitionForm {
	f := templates.FlagDefinitionForm{
		Type:           strings.TrimSpace(c.FormValue("type")),
		Variants:       c.FormValue("variants"),
		DefaultVariant: strings.TrimSpace(c.FormValue("default_variant")),
		OffVariant:     strings.TrimSpace(c.FormValue("off_variant")),
		Description:    strings.TrimSpace(c.FormValue("description")),
	}
	if creating {
		f.Key = strings.TrimSpace(c.FormValue("key"))
	}
	return f
}

// flagDefinitionFormOf fills the definition form with a stored flag.
func flagDefinitionFormOf(f store.Flag) templates.FlagDefinitionForm {
	def := f.Definition
	var lines []string
	for _, name := range slices.Sorted(maps.Keys(def.Variants)) {
		lines = append(lines, name+" = "+flagCompactJSON(def.Variants[name]))
	}
	return templates.FlagDefinitionForm{
		Key: def.Key, Type: string(def.Type), Variants: strings.Join(lines, "\n"),
		DefaultVariant: def.DefaultVariant, OffVariant: def.OffVariant, Description: def.Description,
		Version: f.Version,
	}
}

// flagDefinitionFrom builds a definition from its form; base carries what
// the form does not edit (the salt). Problems the form alone shows are
// returned; the rest are flags.Validate's, reported by the store.
func flagDefinitionFrom(f templates.FlagDefinitionForm, base flags.Flag) (flags.Flag, []templates.FlagProblem) {
	def := flags.Flag{
		Key: f.Key, Type: flags.Type(f.Type), DefaultVariant: f.DefaultVariant, OffVariant: f.OffVariant,
		Description: f.Description, Salt: base.Salt,
	}
	if len(f.Variants) > maxFlagFormText {
		return def, []templates.FlagProblem{{Field: "variants", Message: fmt.Sprintf("is %d bytes long; at most %d are allowed", len(f.Variants), maxFlagFormText)}}
	}
	variants, problems := parseFlagVariants(f.Variants, def.Type)
	if len(problems) > 0 {
		return def, problems
	}
	if len(variants) == 0 && def.Type == flags.TypeBoolean {
		variants = map[string]json.RawMessage{"true": json.RawMessage("true"), "false": json.RawMessage("false")}
		def.DefaultVariant = cmp.Or(def.DefaultVariant, "false")
	}
	def.Variants = variants
	return def, nil
}

// parseFlagVariants reads the variants textarea: one "name = value" per
// line, values in JSON, a string flag's values also as bare text.
func parseFlagVariants(text string, typ flags.Type) (map[string]json.RawMessage, []templates.FlagProblem) {
	out := map[string]json.RawMessage{}
	var problems []templates.FlagProblem
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		name, value, found := strings.Cut(line, "=")
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		switch {
		case !found || name == "":
			problems = append(problems, templates.FlagProblem{Field: "variants", Message: fmt.Sprintf(
				"line %d: write name = value, such as blue = \"#0000ff\"; got %q", i+1, truncate(line, 60))})
			continue
		case value == "":
			problems = append(problems, templates.FlagProblem{Field: "variants", Message: fmt.Sprintf("line %d: variant %s has no value", i+1, name)})
			continue
		}
		if _, dup := out[name]; dup {
			problems = append(problems, templates.FlagProblem{Field: fmt.Sprintf("variants[%q]", name), Message: fmt.Sprintf(
				"line %d: the variant name %q is used twice; variant names must be unique", i+1, name)})
			continue
		}
		if typ == flags.TypeString && !strings.HasPrefix(value, `"`) {
			quoted, _ := json.Marshal(value)
			value = string(quoted)
		}
		out[name] = json.RawMessage(value)
	}
	return out, problems
}

// setFlagFormProblems puts problems into a definition form, each under the
// field it concerns and all in the list with their paths.
func setFlagFormProblems(f *templates.FlagDefinitionForm, problems []templates.FlagProblem) {
	f.Problems = problems
	f.Errors = map[string][]string{}
	for _, pr := range problems {
		field := pr.Field
		if i := strings.IndexAny(field, ".["); i > 0 {
			field = field[:i]
		}
		switch field {
		case "key", "type", "variants", "default_variant", "off_variant", "description":
			f.Errors[field] = append(f.Errors[field], pr.Message)
		}
	}
	if len(problems) > 0 && f.Error == "" {
		f.Error = "Nothing was saved; every problem is listed below with the field it concerns."
	}
}

// flagProblemsOf lists a validation error's problems.
func flagProblemsOf(verr *flags.ValidationError) []templates.FlagProblem {
	out := make([]templates.FlagProblem, len(verr.Errors))
	for i, fe := range verr.Errors {
		out[i] = templates.FlagProblem{Field: fe.Field, Message: fe.Message}
	}
	return out
}

// flagFormVersion reads a version a form was based on: 0 or more.
func flagFormVersion(raw string) (int64, bool) {
	v, err := strconv.ParseInt(strings.TrimSpace(raw), 10, 64)
	return v, err == nil && v >= 0
}

// flagDecodeStrict decodes the JSON object of an editor into v, refusing
// fields it does not know (a misspelt "rule" would otherwise vanish). The
// problems name the field "what"; fields lists what it may hold.
func flagDecodeStrict(text string, v any, what, fields string) []templates.FlagProblem {
	problem := func(format string, args ...any) []templates.FlagProblem {
		return []templates.FlagProblem{{Field: what, Message: fmt.Sprintf(format, args...)}}
	}
	trimmed := strings.TrimSpace(text)
	switch {
	case trimmed == "":
		return problem("is empty; write the %s as a JSON object with %s", what, fields)
	case len(text) > maxFlagFormText:
		return problem("is %d bytes long; at most %d are allowed", len(text), maxFlagFormText)
	case !strings.HasPrefix(trimmed, "{"):
		return problem("must be a JSON object with %s", fields)
	}
	dec := json.NewDecoder(strings.NewReader(trimmed))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if _, end := dec.Token(); end != io.EOF {
			return problem("has more after its JSON object; write exactly one object")
		}
		return nil
	}
	var syntax *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		line, col := flagTextPosition(trimmed, syntax.Offset)
		return problem("is not valid JSON at line %d, column %d: %s", line, col, strings.TrimPrefix(syntax.Error(), "json: "))
	case errors.Is(err, io.ErrUnexpectedEOF):
		return problem("is not valid JSON: it ends before the object is complete")
	case errors.As(err, &typeErr):
		field := what
		if typeErr.Field != "" {
			field = typeErr.Field
		}
		return []templates.FlagProblem{{Field: field, Message: fmt.Sprintf("a JSON %s cannot go here; %s expects %s", typeErr.Value, field, flagGoTypeWords(typeErr.Type.Kind().String()))}}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return problem("has the unknown field %s; the %s holds %s", strings.TrimPrefix(err.Error(), "json: unknown field "), what, fields)
	}
	return problem("cannot be read: %s", strings.TrimPrefix(err.Error(), "json: "))
}

// flagGoTypeWords names what a Go kind holds in JSON terms.
func flagGoTypeWords(kind string) string {
	switch kind {
	case "string":
		return "text"
	case "bool":
		return "true or false"
	case "slice", "array":
		return "a list"
	case "struct", "map":
		return "an object"
	case "float64", "float32", "int", "int64", "int32":
		return "a number"
	}
	return "another kind of value"
}

// flagTextPosition turns a byte offset into a line and column.
func flagTextPosition(text string, offset int64) (line, col int) {
	line, col = 1, 1
	for i, r := range text {
		if int64(i) >= offset {
			break
		}
		if r == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return line, col
}

// ---------------------------------------------------------------------------
// What would user X get

// evaluate answers what a user would get, evaluated against the stored
// state of the chosen environment. htmx requests get the result panel,
// others the whole page with it.
func (h *flagPageHandlers) evaluate(c echo.Context) error {
	t, ok, err := h.loadFlag(c)
	if !ok {
		return err
	}
	form := templates.FlagEvaluateForm{
		Env:          strings.TrimSpace(c.FormValue("env")),
		TargetingKey: strings.TrimSpace(c.FormValue("targeting_key")),
		Attributes:   c.FormValue("attributes"),
	}
	env, found := flagPageEnv(t.envs, form.Env)
	if found {
		t.env = env
	} else if len(t.envs) > 0 {
		t.env = t.envs[0]
	}
	status := http.StatusOK
	switch evalCtx, problem := parseFlagEvalContext(form.Attributes); {
	case !found:
		form.Error = fmt.Sprintf("App %s has no environment %q; choose one of the list.", t.app.Slug, truncate(form.Env, 80))
		status = http.StatusBadRequest
	case problem != "":
		form.Error = problem
		status = http.StatusBadRequest
	default:
		if form.TargetingKey != "" {
			evalCtx[flags.TargetingKeyAttribute] = form.TargetingKey
		}
		result, err := h.evaluateStored(c.Request().Context(), t, evalCtx)
		if err != nil {
			return err
		}
		form.Result = result
		if result == nil {
			form.Error = fmt.Sprintf("The stored configuration of %s in %s does not compile, so SDKs get an error for it; fix its state in the editor.", t.flag.Key(), t.where())
		}
	}
	if c.Request().Header.Get("HX-Request") == "true" {
		if status >= 400 {
			c.Response().Header().Set("HX-Retarget", "#flag-eval-result")
			c.Response().Header().Set("HX-Reswap", "outerHTML")
		}
		return render(c, status, templates.FlagEvalPanel(form))
	}
	v, err := h.flagView(c, t, 0)
	if err != nil {
		return err
	}
	v.Evaluate = form
	p := pageFor(c, t.flag.Key()+" · "+t.app.Slug, "overview")
	return render(c, status, templates.Flag(p, v))
}

// parseFlagEvalContext reads the evaluator's attributes: a JSON object,
// or one "name = value" per line with values read as JSON when they are.
func parseFlagEvalContext(text string) (flags.EvalContext, string) {
	trimmed := strings.TrimSpace(text)
	if len(trimmed) > maxFlagFormText {
		return nil, fmt.Sprintf("The attributes are %d bytes long; at most %d are allowed.", len(trimmed), maxFlagFormText)
	}
	if trimmed == "" {
		return flags.EvalContext{}, ""
	}
	if strings.ContainsAny(trimmed[:1], "{[\"") || (json.Valid([]byte(trimmed)) && !strings.Contains(trimmed, "=")) {
		evalCtx, err := flags.ParseContext([]byte(trimmed))
		if evalErr, ok := errors.AsType[*flags.EvalError](err); ok {
			return nil, "The attributes are not usable: " + evalErr.Message + ". Write a JSON object such as {\"email\": \"rita@acme.com\"}, or one name = value per line."
		}
		if err != nil {
			return nil, "The attributes are not usable: " + err.Error() + "."
		}
		return evalCtx, ""
	}
	evalCtx := flags.EvalContext{}
	for i, line := range strings.Split(trimmed, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		name, value, found := strings.Cut(line, "=")
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		if !found || name == "" {
			return nil, fmt.Sprintf("Line %d of the attributes is not name = value: %q. Write one attribute per line, such as email = rita@acme.com, or a JSON object.", i+1, truncate(line, 60))
		}
		var parsed any
		if err := json.Unmarshal([]byte(value), &parsed); err != nil {
			parsed = value
		}
		evalCtx[name] = parsed
	}
	if v, ok := evalCtx[flags.TargetingKeyAttribute]; ok {
		if _, isText := v.(string); !isText {
			return nil, "targetingKey must be text; put it in quotes or use the targeting key field."
		}
	}
	return evalCtx, ""
}

// evaluateStored evaluates the flag for a context against its state as
// stored now (not a cache), and explains the answer. A stored state that
// does not compile gives nil.
func (h *flagPageHandlers) evaluateStored(ctx context.Context, t flagPageTarget, evalCtx flags.EvalContext) (*templates.FlagEvalResult, error) {
	st, err := h.flagState(ctx, t, t.env)
	if err != nil {
		return nil, err
	}
	segs, err := h.store.ListSegments(ctx, t.app.ID)
	if err != nil {
		return nil, fmt.Errorf("listing the segments of %s: %w", t.app.Slug, err)
	}
	defs := make([]flags.Segment, len(segs))
	for i, s := range segs {
		defs[i] = s.Definition
	}
	compiled, err := flags.Compile(t.flag.Definition, st.State, defs)
	if err != nil {
		return nil, nil
	}
	res := compiled.Evaluate(evalCtx)
	key, _ := evalCtx[flags.TargetingKeyAttribute].(string)
	return &templates.FlagEvalResult{
		Env: t.env.Name, Variant: res.Variant, Value: string(res.Value), Reason: string(res.Reason),
		Rule: res.RuleName, ErrorCode: string(res.ErrorCode),
		Explanation: explainFlagResult(res, t, st, key),
	}, nil
}

// explainFlagResult says in a sentence why the user gets what they get.
func explainFlagResult(res flags.Result, t flagPageTarget, st store.FlagState, targetingKey string) string {
	def := t.flag.Definition
	switch res.Reason {
	case flags.ReasonDisabled:
		if !st.Configured {
			return fmt.Sprintf("%s has never been configured in %s, so it is off there: everyone gets the off variant %s.", def.Key, t.env.Name, res.Variant)
		}
		return fmt.Sprintf("The kill switch is off in %s: everyone gets the off variant %s.", t.env.Name, res.Variant)
	case flags.ReasonTargetingMatch:
		return fmt.Sprintf("TARGETING_MATCH by rule %s: the first rule that matches this user serves %s.", res.RuleName, res.Variant)
	case flags.ReasonStatic:
		return fmt.Sprintf("STATIC: there are no rules in %s and the default serves %s to everyone.", t.env.Name, res.Variant)
	case flags.ReasonDefault:
		return fmt.Sprintf("DEFAULT: no rule matched this user, and the default serves %s.", res.Variant)
	case flags.ReasonSplit:
		serve, by := st.State.DefaultRollout, "the default rollout"
		if res.RuleName != "" {
			by = "rule " + res.RuleName
			for _, r := range st.State.Rules {
				if r.Name == res.RuleName {
					serve = r.Serve
				}
			}
		}
		bucket := flags.Bucket(def.Key, def.Salt, targetingKey)
		share := store.FormatPercent(float64(bucket) / 100)
		var from int64
		for _, wv := range serve.Rollout {
			bp := int64(math.Round(wv.Weight * 100))
			if bp == 0 {
				continue
			}
			if int64(bucket) < from+bp {
				return fmt.Sprintf("SPLIT by %s: this user's bucket is %s of 100, in the %s–%s%% arm, which serves %s to %s%% of users.",
					by, share, store.FormatPercent(float64(from)/100), store.FormatPercent(float64(from+bp)/100), wv.Variant, store.FormatPercent(wv.Weight))
			}
			from += bp
		}
		return fmt.Sprintf("SPLIT by %s: this user's bucket is %s of 100, which gets %s.", by, share, res.Variant)
	case flags.ReasonError:
		return fmt.Sprintf("%s: %s.", res.ErrorCode, res.ErrorMessage)
	}
	return string(res.Reason)
}

// ---------------------------------------------------------------------------
// The environment's timeline

// flagsBeforeParam reads the environment page's ?flags_before=, where its
// timeline of flag changes continues; ok is false when it is malformed.
func flagsBeforeParam(c echo.Context) (int64, bool) {
	raw := c.QueryParam("flags_before")
	if raw == "" {
		return 0, true
	}
	v, err := strconv.ParseInt(raw, 10, 64)
	return v, err == nil && v >= 1
}

// timeline fills one page of the environment's timeline: its runs
// (continuing below run before) and its flag changes (continuing below
// ?flags_before=), interleaved newest first by when they happened.
func (h *environmentHandlers) timeline(ctx context.Context, c echo.Context, app store.App, env store.Environment, before int64, v *templates.EnvironmentView) error {
	flagsBefore, _ := flagsBeforeParam(c)
	runs, err := h.store.ListRuns(ctx, store.RunFilter{EnvironmentID: env.ID, BeforeID: before, Limit: historyPageSize + 1})
	if err != nil {
		return fmt.Errorf("listing runs of %s/%s: %w", app.Slug, env.Name, err)
	}
	changes, err := h.store.ListEnvironmentFlagEvents(ctx, env.ID, flagsBefore, historyPageSize+1)
	if err != nil {
		return fmt.Errorf("listing flag changes of %s/%s: %w", app.Slug, env.Name, err)
	}
	i, j := 0, 0
	for len(v.Timeline) < historyPageSize && (i < len(runs) || j < len(changes)) {
		if j >= len(changes) || (i < len(runs) && !runs[i].CreatedAt.Before(changes[j].At)) {
			v.Timeline = append(v.Timeline, templates.EnvTimelineEntry{Run: &runs[i]})
			i++
			continue
		}
		v.Timeline = append(v.Timeline, templates.EnvTimelineEntry{Flag: envFlagChangeOf(changes[j])})
		j++
	}
	v.History = runs[:i]
	v.Newest = before == 0 && flagsBefore == 0
	v.HasOlder = i < len(runs) || j < len(changes)
	if v.HasOlder {
		v.Older, v.OlderFlags = before, flagsBefore
		if i > 0 {
			v.Older = runs[i-1].ID
		}
		if j > 0 {
			v.OlderFlags = changes[j-1].ID
		}
	}
	return nil
}

// envFlagChangeOf describes a flag change for the environment's timeline.
func envFlagChangeOf(e store.EnvironmentFlagEvent) *templates.EnvFlagChange {
	ch := &templates.EnvFlagChange{ID: e.ID, At: e.At, Actor: e.Actor, FlagKey: e.FlagKey, Kind: e.Type}
	p, err := e.DecodePayload()
	switch {
	case err != nil:
		ch.Text = strings.ReplaceAll(e.Type, "_", " ")
	case e.Type == store.FlagEventKilled:
		ch.Text = "turned off by its kill switch"
		if p.WasEnabled != nil && !*p.WasEnabled {
			ch.Text = "kill switch confirmed; it was already off"
		}
	case e.Type == store.FlagEventStateChanged && p.State != nil:
		ch.On = p.State.Enabled
		ch.Text = "state changed: " + store.DescribeFlagState(*p.State, e.FlagDefaultVariant)
	case strings.HasPrefix(e.Type, "flag.rollout_"):
		text, _ := store.DescribeFlagRolloutEvent(e.Type, p, "", "")
		ch.Text = cmp.Or(text, strings.ReplaceAll(strings.TrimPrefix(e.Type, "flag."), "_", " "))
		switch e.Type {
		case store.FlagEventRolloutStarted, store.FlagEventRolloutAdvanced, store.FlagEventRolloutCompleted:
			ch.On = true
		case store.FlagEventRolloutCancelled:
			ch.On = !strings.HasPrefix(p.Outcome, "Stopped: ")
		}
	default:
		ch.Text = strings.ReplaceAll(strings.TrimPrefix(e.Type, "flag."), "_", " ")
	}
	return ch
}
