package nginx

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"regexp"
	"strconv"
	"strings"

	"github.com/flightdeckhq/flightdeck/internal/engine/plan"
)

// stateMarker starts the first line of both include files. The JSON after
// it records which run and generation the files were rendered for, so a
// restarted server never lets a stale worker move traffic back.
const stateMarker = "# flightdeck-state "

// maxServerWeight bounds the weight= of one upstream server. Exact weights
// are used below it; above it (very uneven fleets) weights are rounded,
// which moves shares by well under a percent.
const maxServerWeight = 10_000

var (
	// headerName is the syntax of a header a cohort rule matches on.
	headerName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]*$`)
	// variableName is the syntax of a cookie or hash key that becomes part
	// of an nginx variable name.
	variableName = regexp.MustCompile(`^[A-Za-z0-9_]+$`)
	// unsafeName matches what may not appear in an nginx identifier.
	unsafeName = regexp.MustCompile(`[^A-Za-z0-9_]+`)
)

// state is what the include files were rendered for: the run and
// generation, and the instances of every version, so the next apply knows
// which versions to start, resize or stop.
type state struct {
	App         string         `json:"app"`
	Environment string         `json:"environment"`
	RunID       int64          `json:"run_id"`
	Generation  int64          `json:"generation"`
	Versions    []versionCount `json:"versions"`
}

// versionCount is one version's instance count in a state.
type versionCount struct {
	Version   string `json:"version"`
	Instances int    `json:"instances"`
}

// instances returns how many instances of version the state runs.
func (s state) instances(version string) int {
	for _, v := range s.Versions {
		if v.Version == version {
			return v.Instances
		}
	}
	return 0
}

// newer reports whether (runID, generation) comes after the state's. Run
// ids grow, and an environment has one active run at a time, so a lower
// run id is a late delivery from a run that is over.
func (s state) newer(runID, generation int64) bool {
	if runID != s.RunID {
		return runID > s.RunID
	}
	return generation > s.Generation
}

// header renders the state line that starts both files.
func (s state) header() []byte {
	raw, err := json.Marshal(s)
	if err != nil {
		// A struct of strings and numbers always marshals.
		panic(fmt.Sprintf("nginx: marshalling state: %v", err))
	}
	return append(append([]byte(stateMarker), raw...), '\n')
}

// splitHeader separates a file's state line from its body. A file without
// one yields ok false.
func splitHeader(content []byte) (s state, body []byte, ok bool, err error) {
	line, rest, _ := bytes.Cut(content, []byte("\n"))
	if !bytes.HasPrefix(line, []byte(stateMarker)) {
		return state{}, content, false, nil
	}
	if err := json.Unmarshal(line[len(stateMarker):], &s); err != nil {
		return state{}, nil, false, fmt.Errorf("reading the flightdeck-state line: %w", err)
	}
	return s, rest, true, nil
}

// files are the two include files' bodies, without the state line.
type files struct {
	http   []byte
	server []byte
}

// names derives the nginx identifiers of one app's environment: readable,
// and unique through a hash of the exact app and environment, because
// upstream and variable names are global within nginx.
func names(app, env string) string {
	h := fnv.New32a()
	h.Write([]byte(app + "/" + env))
	return fmt.Sprintf("fd_%s_%s_%08x", unsafeName.ReplaceAllString(app, "_"), unsafeName.ReplaceAllString(env, "_"), h.Sum32())
}

// render turns a desired state into the include files' bodies. The output
// depends only on its input, so the same desired state always renders the
// same bytes. Every error is one no retry can fix.
func render(cfg Config, app, env string, desired plan.DesiredState) (files, error) {
	id := names(app, env)
	var http, server bytes.Buffer
	fmt.Fprintf(&http, "# Written by Flightdeck for %s/%s; changes here are overwritten on the next step.\n", app, env)
	fmt.Fprintf(&server, "# Written by Flightdeck for %s/%s; changes here are overwritten on the next step.\n", app, env)

	upstreams := map[string]string{}
	servers := map[string][]string{}
	for i, v := range desired.Versions {
		if v.Instances <= 0 {
			continue
		}
		addrs, err := addresses(cfg, v.Version, v.Instances)
		if err != nil {
			return files{}, err
		}
		name := fmt.Sprintf("%s_v%d", id, i)
		upstreams[v.Version] = name
		servers[v.Version] = addrs
		fmt.Fprintf(&http, "\n# version %s (%s): instances %d, weight %d\n", v.Version, v.Role, v.Instances, v.Weight)
		fmt.Fprintf(&http, "upstream %s {\n    zone %s 64k;\n", name, name)
		for _, a := range addrs {
			fmt.Fprintf(&http, "    server %s;\n", a)
		}
		http.WriteString("}\n")
	}

	mix, err := writeMix(&http, id, desired.Versions, servers)
	if err != nil {
		return files{}, err
	}

	route := ""
	if mix != "" {
		route = mix
	}
	if len(desired.Cohorts) > 0 {
		r, err := writeCohorts(&http, cfg, id, desired.Cohorts, upstreams, mix)
		if err != nil {
			return files{}, err
		}
		route = r
	}

	var mirrorTo, mirrorVar string
	if m := desired.Mirror; m != nil {
		to, err := checkMirror(m, desired, upstreams)
		if err != nil {
			return files{}, err
		}
		mirrorTo = to
		if m.Percent < 100 {
			mirrorVar = "$" + id + "_mirror"
			fmt.Fprintf(&http, "\n# mirror %d%% of requests from %s to %s\nsplit_clients \"$request_id\" %s {\n    %d%% 1;\n    * \"\";\n}\n", m.Percent, m.From, m.To, mirrorVar, m.Percent)
		}
	}

	fmt.Fprintf(&server, "\nlocation %s {\n", cfg.Location)
	if route == "" {
		server.WriteString("    # No version runs: users get 503 until one does.\n    default_type text/plain;\n    return 503 \"no version is serving traffic\\n\";\n}\n")
		return files{http: http.Bytes(), server: server.Bytes()}, nil
	}
	mirrorURI := "/_flightdeck_mirror_" + id
	if mirrorTo != "" {
		fmt.Fprintf(&server, "    mirror %s;\n    mirror_request_body on;\n", mirrorURI)
	}
	fmt.Fprintf(&server, "    proxy_pass http://%s;\n", route)
	writeProxyHeaders(&server)
	server.WriteString("}\n")
	if mirrorTo != "" {
		fmt.Fprintf(&server, "\n# Copies of requests for the shadow; nginx discards its responses.\nlocation = %s {\n    internal;\n", mirrorURI)
		if mirrorVar != "" {
			fmt.Fprintf(&server, "    if (%s = \"\") {\n        return 204;\n    }\n", mirrorVar)
		}
		fmt.Fprintf(&server, "    proxy_pass http://%s$request_uri;\n", mirrorTo)
		writeProxyHeaders(&server)
		server.WriteString("}\n")
	}
	return files{http: http.Bytes(), server: server.Bytes()}, nil
}

// writeProxyHeaders sets the headers an app behind a proxy expects.
func writeProxyHeaders(b *bytes.Buffer) {
	b.WriteString("    proxy_set_header Host $host;\n")
	b.WriteString("    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n")
	b.WriteString("    proxy_set_header X-Forwarded-Proto $scheme;\n")
}

// writeMix renders the weighted upstream holding every serving version's
// servers, each weighted so its version gets exactly its share: nginx's
// smooth weighted round robin, kept in a shared zone so all workers follow
// one sequence, sends exactly weight/total of every cycle of requests to a
// server. It returns the upstream's name, or "" when no version serves.
func writeMix(b *bytes.Buffer, id string, versions []plan.VersionState, servers map[string][]string) (string, error) {
	lcm := 1
	var serving []plan.VersionState
	for _, v := range versions {
		if v.Weight <= 0 {
			continue
		}
		n := len(servers[v.Version])
		if n == 0 {
			return "", fmt.Errorf("version %s has traffic weight %d but no instances to serve it", v.Version, v.Weight)
		}
		serving = append(serving, v)
		// lcm is the least common multiple of the serving versions' server
		// counts, or 0 once exact weights would grow past maxServerWeight.
		if lcm > 0 {
			lcm = lcm / gcd(lcm, n) * n
			if lcm > maxServerWeight {
				lcm = 0
			}
		}
	}
	for _, v := range serving {
		if lcm*v.Weight > maxServerWeight {
			lcm = 0
		}
	}
	if len(serving) == 0 {
		return "", nil
	}
	type weighted struct {
		addr   string
		weight int
	}
	var list []weighted
	common := 0
	for _, v := range versions {
		if v.Weight <= 0 {
			continue
		}
		n := len(servers[v.Version])
		w := 0
		if lcm > 0 {
			w = v.Weight * (lcm / n)
		} else {
			w = max(1, (v.Weight*100+n/2)/n)
		}
		for _, a := range servers[v.Version] {
			list = append(list, weighted{a, w})
		}
		common = gcd(common, w)
	}
	name := id + "_mix"
	b.WriteString("\n# weighted split:")
	for _, v := range serving {
		fmt.Fprintf(b, " %s %d%%", v.Version, v.Weight)
	}
	fmt.Fprintf(b, "\nupstream %s {\n    zone %s 64k;\n", name, name)
	for _, s := range list {
		fmt.Fprintf(b, "    server %s weight=%d max_fails=0;\n", s.addr, s.weight/common)
	}
	b.WriteString("}\n")
	return name, nil
}

// writeCohorts renders the sticky routing rules as a chain of maps: rule i
// sets $<id>_m<i> to "1" for the users it matches, and $<id>_r<i> is rule
// i's version for them and the next rule's route for everyone else. The
// first match wins; users no rule matches follow the weighted split. It
// returns the variable holding the route.
func writeCohorts(b *bytes.Buffer, cfg Config, id string, cohorts []plan.CohortRule, upstreams map[string]string, mix string) (string, error) {
	var routes []string
	for i, c := range cohorts {
		target, ok := upstreams[c.Version]
		if !ok {
			return "", fmt.Errorf("cohort %q routes users to version %s, which runs no instances", c.Name, c.Version)
		}
		match := fmt.Sprintf("$%s_m%d", id, i)
		fmt.Fprintf(b, "\n# cohort %s → %s (%s)\n", c.Name, c.Version, c.Match.Kind)
		switch c.Match.Kind {
		case plan.MatchAll:
			routes = append(routes, target)
			return chainRoutes(b, id, routes), nil
		case plan.MatchHeader:
			if !headerName.MatchString(c.Match.Key) {
				return "", fmt.Errorf("cohort %q matches header %q, which is not a header name nginx can read", c.Name, c.Match.Key)
			}
			if err := writeValueMap(b, "$http_"+strings.ToLower(strings.ReplaceAll(c.Match.Key, "-", "_")), match, c); err != nil {
				return "", err
			}
		case plan.MatchCookie:
			if !variableName.MatchString(c.Match.Key) {
				return "", fmt.Errorf("cohort %q matches cookie %q; the nginx driver reads cookies named with letters, digits and '_' only", c.Name, c.Match.Key)
			}
			if err := writeValueMap(b, "$cookie_"+c.Match.Key, match, c); err != nil {
				return "", err
			}
		case plan.MatchHash:
			key, err := hashKey(b, cfg, id, i, c)
			if err != nil {
				return "", err
			}
			switch {
			case c.Match.Percent <= 0:
				fmt.Fprintf(b, "map $host %s {\n    default \"\";\n}\n", match)
			case c.Match.Percent >= 100:
				fmt.Fprintf(b, "map \"%s\" %s {\n    \"\" \"\";\n    default 1;\n}\n", key, match)
			default:
				hashed := fmt.Sprintf("$%s_h%d", id, i)
				fmt.Fprintf(b, "split_clients \"%s\" %s {\n    %d%% 1;\n    * \"\";\n}\n", key, hashed, c.Match.Percent)
				fmt.Fprintf(b, "map \"%s\" %s {\n    \"\" \"\";\n    default %s;\n}\n", key, match, hashed)
			}
		default:
			return "", fmt.Errorf("cohort %q has match kind %q; the nginx driver routes hash, header, cookie and all rules", c.Name, c.Match.Kind)
		}
		routes = append(routes, target)
	}
	if mix == "" {
		return "", errors.New("cohort rules leave some users unmatched and no version has traffic weight for them")
	}
	routes = append(routes, mix)
	return chainRoutes(b, id, routes), nil
}

// chainRoutes renders the maps that pick, for each request, the upstream of
// the first matching rule. routes[i] is rule i's upstream; the last entry is
// where users matched by no earlier rule go, either an "all" rule's version
// or the weighted split.
func chainRoutes(b *bytes.Buffer, id string, routes []string) string {
	last := len(routes) - 1
	if last == 0 {
		return routes[0]
	}
	b.WriteString("\n# first matching cohort wins\n")
	for i := 0; i < last; i++ {
		next := routes[last]
		if i+1 < last {
			next = fmt.Sprintf("$%s_r%d", id, i+1)
		}
		fmt.Fprintf(b, "map $%s_m%d $%s_r%d {\n    1 %s;\n    default %s;\n}\n", id, i, id, i, routes[i], next)
	}
	return fmt.Sprintf("$%s_r0", id)
}

// writeValueMap renders the map that matches a header or cookie rule's
// values. Every value is prefixed with a backslash so that none is read as
// a regular expression or a map keyword.
func writeValueMap(b *bytes.Buffer, source, match string, c plan.CohortRule) error {
	if len(c.Match.Values) == 0 {
		return fmt.Errorf("cohort %q matches %s %q but lists no values", c.Name, c.Match.Kind, c.Match.Key)
	}
	fmt.Fprintf(b, "map %s %s {\n", source, match)
	for _, v := range c.Match.Values {
		if v == "" || strings.ContainsAny(v, "\"'\\$") || strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return fmt.Errorf("cohort %q matches %s value %q; the nginx driver accepts values without quotes, backslashes, '$' or control characters", c.Name, c.Match.Kind, v)
		}
		fmt.Fprintf(b, "    \"\\\\%s\" 1;\n", v)
	}
	b.WriteString("    default \"\";\n}\n")
	return nil
}

// hashKey returns the nginx expression holding the user id a hash rule
// hashes: the variables configured in hash_keys, or else the cookie named
// like the key, falling back to the header X-<key>.
func hashKey(b *bytes.Buffer, cfg Config, id string, i int, c plan.CohortRule) (string, error) {
	key := c.Match.Key
	if expr, ok := cfg.HashKeys[key]; ok {
		return expr, nil
	}
	if !variableName.MatchString(key) {
		return "", fmt.Errorf("cohort %q hashes key %q; name it in hash_keys, or use a key of letters, digits and '_' read from the cookie of that name or the header X-<key>", c.Name, key)
	}
	v := fmt.Sprintf("$%s_k%d", id, i)
	fmt.Fprintf(b, "map $cookie_%s %s {\n    \"\" $http_x_%s;\n    default $cookie_%s;\n}\n", key, v, strings.ToLower(key), key)
	return v, nil
}

// checkMirror checks that nginx can mirror as asked and returns the
// upstream receiving the copies. nginx mirrors every request of the
// location, so the copied version must be the one serving all of them.
func checkMirror(m *plan.Mirror, desired plan.DesiredState, upstreams map[string]string) (string, error) {
	if m.Percent < 1 || m.Percent > 100 {
		return "", fmt.Errorf("mirror percent must be 1 to 100, got %d", m.Percent)
	}
	to, ok := upstreams[m.To]
	if !ok {
		return "", fmt.Errorf("mirror copies traffic to version %s, which runs no instances", m.To)
	}
	if len(desired.Cohorts) > 0 {
		return "", errors.New("the nginx driver mirrors only without cohort rules, because it copies every request of the location")
	}
	for _, v := range desired.Versions {
		if v.Version == m.From && v.Weight == 100 {
			return to, nil
		}
	}
	return "", fmt.Errorf("the nginx driver mirrors only from a version serving all traffic, and %s does not", m.From)
}

// addresses returns the upstream servers of a version with the given number
// of instances: the first instances entries of its servers list, or the
// server template filled in once per instance (with {index}) or once.
func addresses(cfg Config, version string, instances int) ([]string, error) {
	if list, ok := cfg.Servers[version]; ok {
		return list[:min(instances, len(list))], nil
	}
	if cfg.ServerTemplate == "" {
		return nil, fmt.Errorf("no servers are configured for version %s: add it to servers or set server_template", version)
	}
	if !safeVersion.MatchString(version) {
		return nil, fmt.Errorf("version %q cannot be put into server_template; use letters, digits, '.', '_' and '-' or list it in servers", version)
	}
	fill := func(index int) (string, error) {
		addr := strings.NewReplacer("{version}", version, "{index}", strconv.Itoa(index)).Replace(cfg.ServerTemplate)
		if !hostPort.MatchString(addr) {
			return "", fmt.Errorf("server_template gives %q for version %s, which is not host:port", addr, version)
		}
		return addr, nil
	}
	if !strings.Contains(cfg.ServerTemplate, "{index}") {
		addr, err := fill(1)
		if err != nil {
			return nil, err
		}
		return []string{addr}, nil
	}
	out := make([]string, instances)
	for i := range out {
		addr, err := fill(i + 1)
		if err != nil {
			return nil, err
		}
		out[i] = addr
	}
	return out, nil
}

// gcd is the greatest common divisor, with gcd(0, n) = n.
func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
