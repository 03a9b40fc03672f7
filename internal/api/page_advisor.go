package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/alexedwards/scs/v2"
	"github.com/labstack/echo/v4"

	"github.com/flightdeckhq/flightdeck/internal/auth"
	"github.com/flightdeckhq/flightdeck/internal/engine/plan"
	"github.com/flightdeckhq/flightdeck/internal/store"
	"github.com/flightdeckhq/flightdeck/web/templates"
)

// AdvisorPages is what the strategy advisor reads and changes: the
// environments whose default strategy it can set.
type AdvisorPages interface {
	ListEnvironmentNames(ctx context.Context) ([]store.EnvironmentName, error)
	App(ctx context.Context, slug string) (store.App, error)
	Environment(ctx context.Context, appID int64, name string) (store.Environment, error)
	UpdateEnvironment(ctx context.Context, e store.Environment) (store.Environment, error)
	RecordAudit(ctx context.Context, e store.AuditEvent) (store.AuditEvent, error)
}

// The answers the advisor's questions take.
const (
	downtimeNone    = "none"
	downtimeSeconds = "seconds"
	downtimeMinutes = "minutes"

	budgetTight    = "tight"
	budgetHeadroom = "headroom"
	budgetDouble   = "double"

	orgSmall   = "small"
	orgSeveral = "several"
	orgLarge   = "large"

	answerYes = "yes"
	answerNo  = "no"
)

// advisorAnswers are the answers to the strategy advisor's questions,
// after the seed's decision framework.
type advisorAnswers struct {
	// Downtime is how much downtime users may see: none, seconds or minutes.
	Downtime string
	// Budget is the spare infrastructure while a run is active: tight,
	// headroom (some) or double.
	Budget string
	// SchemaChange is whether the release changes the database schema.
	SchemaChange bool
	// RealLoad is whether the new version must face real production load
	// before any user sees it.
	RealLoad bool
	// Behaviour is whether the release measures user behaviour, such as
	// which version converts better.
	Behaviour bool
	// Org is the organisation's size: small (one team), several teams, or
	// large with rings of customers.
	Org string
	// BatchJob is whether the service is a batch job or worker rather
	// than one serving requests.
	BatchJob bool
}

// advice is the advisor's recommendation: a strategy, the reasons drawn
// from the answers, and runner-up strategies with when each fits better.
type advice struct {
	Strategy     plan.Strategy
	Reasons      []string
	Alternatives []alternative
}

type alternative struct {
	Strategy plan.Strategy
	Why      string
}

// adviseStrategy applies the decision framework to the answers. The rules
// are tried in order and the first that fits decides; the answers that
// matter for it become the reasons.
func adviseStrategy(a advisorAnswers) advice {
	zeroDowntime := "users must see no downtime"
	if a.Downtime == downtimeSeconds {
		zeroDowntime = "users may see a few seconds of disruption at most"
	}
	compatibleSchema := "The release changes the schema and old and new versions serve side by side for a while, so keep the migration backward compatible (expand now, contract in a later release)."
	var ad advice
	switch {
	case a.BatchJob:
		ad.Strategy = plan.Recreate
		ad.Reasons = append(ad.Reasons, "It is a batch job or worker: nothing serves user requests, so there is no traffic to shift or compare; stopping the old version and starting the new one is simplest and costs no extra capacity.")
		if a.SchemaChange {
			ad.Reasons = append(ad.Reasons, "The schema change is easy here: no old worker runs while the migration does.")
		}
		if a.Downtime == downtimeNone {
			ad.Reasons = append(ad.Reasons, "Work waits in its queue while the workers restart; if processing must never pause, use a rolling update instead.")
		}
		ad.Alternatives = []alternative{
			{plan.Rolling, "when processing must not pause: replace the workers a batch at a time."},
			{plan.BlueGreen, "when a new worker version must be proven before it takes any work and there is capacity for two fleets."},
		}
	case a.Behaviour:
		ad.Strategy = plan.ABTest
		ad.Reasons = append(ad.Reasons, "You want to measure user behaviour: an A/B test splits users stickily between the versions, collects conversion per arm and stops once the difference is significant.")
		if a.Budget == budgetTight {
			ad.Reasons = append(ad.Reasons, "It runs both versions at once (about 1.5× capacity): with a tight budget, give the B arm a small share.")
		}
		if a.SchemaChange {
			ad.Reasons = append(ad.Reasons, "Both arms share the database for the whole experiment, so the schema must serve both versions.")
		}
		ad.Alternatives = []alternative{
			{plan.Canary, "when you only need to know the release is safe, not which version converts better."},
			orgAlternative(a, "when each ring of customers should see the change only after the one before it."),
		}
	case a.RealLoad:
		ad.Strategy = plan.Shadow
		ad.Reasons = append(ad.Reasons, "The new version must face real production load before any user sees it: a shadow gets a mirrored copy of the traffic, and its latency and responses are compared but never served.")
		if a.Budget == budgetTight {
			ad.Reasons = append(ad.Reasons, "A shadow needs about twice the capacity while it runs: with a tight budget, keep the comparison short.")
		}
		if a.SchemaChange {
			ad.Reasons = append(ad.Reasons, "Mirrored requests that write would write twice: point the shadow at a copy of the database, or make its writes no-ops.")
		}
		ad.Alternatives = []alternative{
			{plan.Canary, "next, to let a small share of users see it, with analysis at every step."},
			{plan.BlueGreen, "when checking green before the switch (health and synthetic checks) is enough, without mirroring real traffic."},
		}
	case a.Org == orgLarge:
		ad.Strategy = plan.Ring
		ad.Reasons = append(ad.Reasons, "A large organisation with rings of customers: release to employees first, then early adopters, then everyone, with a long bake and a person approving each next ring.")
		if a.SchemaChange {
			ad.Reasons = append(ad.Reasons, "Rings run old and new versions for days: the schema must serve both for the whole release.")
		}
		ad.Alternatives = []alternative{
			{plan.Canary, "for urgent fixes, which cannot wait days for every ring."},
			budgetAlternative(a),
		}
	case a.Downtime == downtimeMinutes:
		ad.Strategy = plan.Recreate
		ad.Reasons = append(ad.Reasons, "Minutes of downtime are acceptable, so the simplest and cheapest strategy does: stop the old version, start the new one and check its health, at no extra capacity.")
		if a.SchemaChange {
			ad.Reasons = append(ad.Reasons, "The schema change is easiest this way: nothing runs the old version while the migration does.")
		}
		ad.Alternatives = []alternative{
			{plan.Rolling, "to avoid the downtime without extra capacity."},
			{plan.Canary, "to expose only a few users to a risky change first."},
		}
	case a.SchemaChange && a.Budget == budgetDouble:
		ad.Strategy = plan.BlueGreen
		ad.Reasons = append(ad.Reasons,
			"A schema change, and "+zeroDowntime+": green starts beside blue and is checked before it gets any traffic, then takes all traffic at once, and flipping back takes seconds because blue stays warm.",
			"Your budget allows twice the capacity while the run is active.",
			"Blue and green share the database during the switch and the warm period: keep the migration backward compatible so a flip back is safe.")
		ad.Alternatives = []alternative{
			{plan.Canary, "for about 5% extra capacity instead of double, if old and new may serve side by side for a while."},
			{plan.Rolling, "when the double capacity is needed elsewhere."},
		}
	case a.Budget == budgetTight:
		ad.Strategy = plan.Rolling
		ad.Reasons = append(ad.Reasons, "A tight budget, and "+zeroDowntime+": rolling replaces a batch of instances at a time within the fleet you have, watching each batch before the next.")
		if a.SchemaChange {
			ad.Reasons = append(ad.Reasons, compatibleSchema)
		}
		ad.Alternatives = []alternative{
			{plan.Canary, "when a few extra instances fit: it compares the new version against stable at every step and rolls back in seconds."},
		}
		if a.Downtime == downtimeSeconds {
			ad.Alternatives = append(ad.Alternatives, alternative{plan.Recreate, "when a short outage is acceptable after all: the simplest and cheapest."})
		}
	default:
		ad.Strategy = plan.Canary
		ad.Reasons = append(ad.Reasons, "A service answering user requests, and "+zeroDowntime+": a canary moves 5% → 25% → 50% → 100% of traffic, comparing the new version against stable at every step, so a bad release reaches few users and rolls back in seconds.")
		if a.Budget == budgetHeadroom {
			ad.Reasons = append(ad.Reasons, "Some headroom is enough: the canary's own instances are the extra capacity, about 5% at its first step.")
		}
		if a.SchemaChange {
			ad.Reasons = append(ad.Reasons, compatibleSchema)
		}
		if a.Org == orgSeveral {
			ad.Reasons = append(ad.Reasons, "With several teams shipping, the analysis at every step is the same objective gate for everyone.")
		}
		if a.Budget == budgetDouble {
			ad.Alternatives = []alternative{budgetAlternative(a), {plan.Rolling, "when there is no room for even a few extra instances."}}
		} else {
			ad.Alternatives = []alternative{budgetAlternative(a), {plan.BlueGreen, "when double capacity is available during a release: one instant switch, with the old version kept warm for a flip back."}}
		}
	}
	ad.Alternatives = slices.DeleteFunc(ad.Alternatives, func(alt alternative) bool { return alt.Strategy == ad.Strategy || alt.Strategy == "" })
	return ad
}

// budgetAlternative is blue-green when the budget allows double capacity,
// and rolling otherwise.
func budgetAlternative(a advisorAnswers) alternative {
	if a.Budget == budgetDouble {
		return alternative{plan.BlueGreen, "for an instant, all-at-once switch with the old version kept warm, since your budget allows double capacity."}
	}
	return alternative{plan.Rolling, "when there is no room for extra instances: it replaces a batch at a time within the fleet."}
}

// orgAlternative is ring for a large organisation, and nothing otherwise.
func orgAlternative(a advisorAnswers, why string) alternative {
	if a.Org == orgLarge {
		return alternative{plan.Ring, why}
	}
	return alternative{plan.BlueGreen, "when you want the whole audience on one version at once, with an instant flip back."}
}

// rollbackSpeed says how fast each strategy returns users to the old
// version, from what its rollback does.
var rollbackSpeed = map[plan.Strategy]string{
	plan.Recreate:  "minutes: the old version is started again",
	plan.Rolling:   "minutes: instances are replaced back, batch by batch",
	plan.BlueGreen: "seconds: traffic flips back to blue, still warm",
	plan.Canary:    "seconds: the canary's weight goes to 0",
	plan.Shadow:    "instant: users never saw the shadow; mirroring stops",
	plan.ABTest:    "seconds: the split is removed",
	plan.Ring:      "seconds to minutes: progression stops and the rings are routed back",
}

// advisorQuestion is one question with the answers it takes.
type advisorQuestion struct {
	name, label, help string
	options           []templates.AdvisorOption
	// fallback is preselected on a fresh form.
	fallback string
}

var yesNo = []templates.AdvisorOption{{Value: answerYes, Label: "Yes"}, {Value: answerNo, Label: "No"}}

var advisorQuestions = []advisorQuestion{
	{name: "downtime", label: "How much downtime can users tolerate during a release?", options: []templates.AdvisorOption{
		{Value: downtimeNone, Label: "None"}, {Value: downtimeSeconds, Label: "A few seconds"}, {Value: downtimeMinutes, Label: "Minutes"},
	}, fallback: downtimeNone},
	{name: "budget", label: "How much spare infrastructure can a release use?", options: []templates.AdvisorOption{
		{Value: budgetTight, Label: "Tight: the fleet we have"}, {Value: budgetHeadroom, Label: "Some headroom"}, {Value: budgetDouble, Label: "Double is fine"},
	}, fallback: budgetHeadroom},
	{name: "schema", label: "Does this release change the database schema?", options: yesNo, fallback: answerNo},
	{name: "real_load", label: "Must it face real production load before any user sees it?", options: yesNo, fallback: answerNo},
	{name: "behaviour", label: "Are you measuring user behaviour (which version converts better)?", options: yesNo, fallback: answerNo},
	{name: "org", label: "How large is the organisation shipping it?", options: []templates.AdvisorOption{
		{Value: orgSmall, Label: "A small team"}, {Value: orgSeveral, Label: "Several teams"}, {Value: orgLarge, Label: "A large organisation with rings of customers"},
	}, fallback: orgSmall},
	{name: "batch", label: "Is it a batch job or worker rather than a service answering requests?", options: yesNo, fallback: answerNo},
}

// readAdvisorAnswers reads the answers from the request. With none given
// it returns the form with its preselected answers and ok false; with
// some, every question must have one of its answers.
func readAdvisorAnswers(c echo.Context) (qs []templates.AdvisorQuestion, a advisorAnswers, errs map[string]string, ok bool) {
	given := false
	for _, q := range advisorQuestions {
		given = given || c.FormValue(q.name) != ""
	}
	errs = map[string]string{}
	values := map[string]string{}
	for _, q := range advisorQuestions {
		v := c.FormValue(q.name)
		tq := templates.AdvisorQuestion{Name: q.name, Label: q.label, Help: q.help, Options: q.options, Value: v}
		if !given {
			tq.Value = q.fallback
		} else if !slices.ContainsFunc(q.options, func(o templates.AdvisorOption) bool { return o.Value == v }) {
			var names []string
			for _, o := range q.options {
				names = append(names, o.Value)
			}
			if v == "" {
				errs[q.name] = "Choose an answer: " + quoteAll(names) + "."
			} else {
				errs[q.name] = fmt.Sprintf("%q is not an answer to this question; choose %s.", v, quoteAll(names))
			}
		}
		values[q.name] = tq.Value
		qs = append(qs, tq)
	}
	a = advisorAnswers{
		Downtime: values["downtime"], Budget: values["budget"], Org: values["org"],
		SchemaChange: values["schema"] == answerYes, RealLoad: values["real_load"] == answerYes,
		Behaviour: values["behaviour"] == answerYes, BatchJob: values["batch"] == answerYes,
	}
	return qs, a, errs, given && len(errs) == 0
}

// adviceView turns advice into what the page shows.
func adviceView(ad advice) *templates.AdvisorAdvice {
	v := &templates.AdvisorAdvice{Info: plan.Describe(ad.Strategy), RollbackSpeed: rollbackSpeed[ad.Strategy], Reasons: ad.Reasons}
	for _, alt := range ad.Alternatives {
		v.Alternatives = append(v.Alternatives, templates.AdvisorAlternative{
			Info: plan.Describe(alt.Strategy), RollbackSpeed: rollbackSpeed[alt.Strategy], Why: alt.Why,
		})
	}
	return v
}

type advisorHandlers struct {
	store    AdvisorPages
	sessions *scs.SessionManager
}

func registerAdvisorPages(g *echo.Group, cfg Config) {
	h := &advisorHandlers{store: cfg.Pages, sessions: cfg.Sessions}
	g.GET("/advisor", h.show)
	g.POST("/advisor", h.makeDefault)
}

// show renders the advisor: the questions, and the advice when answered.
func (h *advisorHandlers) show(c echo.Context) error {
	qs, answers, errs, ok := readAdvisorAnswers(c)
	v := templates.AdvisorView{Questions: qs, Errors: errs}
	status := http.StatusOK
	if len(errs) > 0 {
		v.Error = "Some questions have no valid answer; each is marked below."
		status = http.StatusBadRequest
	}
	if ok {
		v.Advice = adviceView(adviseStrategy(answers))
		envs, err := h.adminEnvironments(c)
		if err != nil {
			return err
		}
		v.Environments = envs
	}
	p := pageFor(c, "Strategy advisor", "advisor")
	p.Flash = takeNotice(h.sessions, c)
	return render(c, status, templates.Advisor(p, v))
}

// adminEnvironments lists the environments the member is an admin of.
func (h *advisorHandlers) adminEnvironments(c echo.Context) ([]templates.AdvisorEnvironment, error) {
	m := memberFrom(c)
	names, err := h.store.ListEnvironmentNames(c.Request().Context())
	if err != nil {
		return nil, fmt.Errorf("listing environments: %w", err)
	}
	var out []templates.AdvisorEnvironment
	for _, n := range names {
		if m.Can(n.AppSlug, n.Environment, auth.RoleAdmin) {
			out = append(out, templates.AdvisorEnvironment{Key: n.AppSlug + "/" + n.Environment, DefaultStrategy: n.DefaultStrategy})
		}
	}
	return out, nil
}

// makeDefault makes a strategy the default of an environment the member
// is an admin of.
func (h *advisorHandlers) makeDefault(c echo.Context) error {
	ctx := c.Request().Context()
	m := memberFrom(c)
	// The answers only come along to show the advice again; the change
	// rests on the strategy and the environment alone.
	qs, answers, _, answered := readAdvisorAnswers(c)
	errs := map[string]string{}
	strategy := plan.Strategy(c.FormValue("strategy"))
	key := strings.TrimSpace(c.FormValue("environment"))
	appSlug, envName, _ := strings.Cut(key, "/")
	if !strategy.Valid() {
		errs["strategy"] = fmt.Sprintf("%q is not a strategy; strategies are %s.", string(strategy), strategyNames())
	}
	if key == "" {
		errs["environment"] = "Choose the environment whose default strategy to set."
	}
	fail := func(status int, message string) error {
		v := templates.AdvisorView{Questions: qs, Errors: errs, Environment: key, Error: message}
		if answered {
			v.Advice = adviceView(adviseStrategy(answers))
			envs, err := h.adminEnvironments(c)
			if err != nil {
				return err
			}
			v.Environments = envs
		}
		return render(c, status, templates.Advisor(pageFor(c, "Strategy advisor", "advisor"), v))
	}
	if len(errs) > 0 {
		return fail(http.StatusBadRequest, "The default strategy was not changed: "+strings.Join(sortedValues(errs), " "))
	}
	app, err := h.store.App(ctx, appSlug)
	var env store.Environment
	if err == nil {
		env, err = h.store.Environment(ctx, app.ID, envName)
	}
	if errors.Is(err, store.ErrNotFound) {
		errs["environment"] = fmt.Sprintf("There is no environment %q; choose one from the list.", key)
		return fail(http.StatusBadRequest, "The default strategy was not changed: "+errs["environment"])
	}
	if err != nil {
		return fmt.Errorf("reading environment %s: %w", key, err)
	}
	if !m.Can(app.Slug, env.Name, auth.RoleAdmin) {
		return refusePage(c, http.StatusForbidden, fmt.Sprintf(
			"You are a %s on %s; changing its default strategy needs the admin role. Nothing was changed.", m.RoleOn(app.Slug, env.Name), key))
	}
	for attempt := 1; ; attempt++ {
		if env.DefaultStrategy == string(strategy) {
			keepNotice(h.sessions, c, fmt.Sprintf("%s was already the default strategy of %s.", plan.Describe(strategy).Title, key))
			return c.Redirect(http.StatusSeeOther, envPagePath(app.Slug, env.Name))
		}
		old := env.DefaultStrategy
		next := env
		next.DefaultStrategy = string(strategy)
		_, err := h.store.UpdateEnvironment(ctx, next)
		if _, conflict := errors.AsType[*store.ConflictError](err); conflict && attempt < maxSettingsAttempts {
			if env, err = h.store.Environment(ctx, app.ID, env.Name); err != nil {
				return fmt.Errorf("reading environment %s again: %w", key, err)
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("setting the default strategy of %s: %w", key, err)
		}
		if _, err := h.store.RecordAudit(ctx, auditFrom(c, store.AuditEvent{
			Actor: m.Actor(), Action: "environment.settings_changed", App: app.Slug, Environment: env.Name,
			Detail: fmt.Sprintf("default_strategy: %s → %s (from the strategy advisor)", old, strategy),
		})); err != nil {
			return fmt.Errorf("recording the default strategy change of %s: %w", key, err)
		}
		keepNotice(h.sessions, c, fmt.Sprintf("%s is now the default strategy of %s (was %s).", plan.Describe(strategy).Title, key, plan.Describe(plan.Strategy(old)).Title))
		return c.Redirect(http.StatusSeeOther, envPagePath(app.Slug, env.Name))
	}
}

// sortedValues returns the map's values ordered by key.
func sortedValues(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = m[k]
	}
	return out
}
