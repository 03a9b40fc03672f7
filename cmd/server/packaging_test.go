package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// repoRoot is where the packaging files live, relative to this package.
const repoRoot = "../.."

// serverEnvPattern picks the environment variables out of the help text of
// `serve -h`, where each flag names its variables in parentheses.
var serverEnvPattern = regexp.MustCompile(`\b(?:FLIGHTDECK|DATABASE)_[A-Z0-9_]+\b`)

// parenthesised matches one parenthesised part of the help text.
var parenthesised = regexp.MustCompile(`\([^()]*\)`)

// serverEnv returns every environment variable the server reads, as its
// own help text lists them, so that the packaging can never set a variable
// the server ignores.
func serverEnv(t *testing.T) map[string]bool {
	t.Helper()
	cmd := exec.Command(binary, "serve", "-h")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "serve -h: %s", out)
	names := map[string]bool{}
	for _, group := range parenthesised.FindAllString(string(out), -1) {
		for _, name := range serverEnvPattern.FindAllString(group, -1) {
			names[name] = true
		}
	}
	// The help text must list the variables the packaging relies on;
	// otherwise its format changed and this parser has to follow.
	for _, want := range []string{"DATABASE_URL", "DATABASE_URL_FILE", "FLIGHTDECK_ADMIN_PASSWORD_FILE", "FLIGHTDECK_ADMIN_TOKEN_FILE", "FLIGHTDECK_PUBLIC_URL", "FLIGHTDECK_ADDR"} {
		require.True(t, names[want], "serve -h does not list %s:\n%s", want, out)
	}
	return names
}

// composeFile is the part of docker-compose.yml the checks read.
type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Secrets  map[string]struct {
		File string `yaml:"file"`
	} `yaml:"secrets"`
	Volumes map[string]any `yaml:"volumes"`
}

type composeService struct {
	Image       string         `yaml:"image"`
	Build       any            `yaml:"build"`
	Environment any            `yaml:"environment"`
	Secrets     []any          `yaml:"secrets"`
	Volumes     []string       `yaml:"volumes"`
	Ports       []string       `yaml:"ports"`
	DependsOn   map[string]any `yaml:"depends_on"`
	Healthcheck *struct {
		Test any `yaml:"test"`
	} `yaml:"healthcheck"`
}

// env returns the service's environment, given as a map or as a list of
// NAME=value.
func (s composeService) env(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	switch e := s.Environment.(type) {
	case nil:
	case map[string]any:
		for k, v := range e {
			if v == nil {
				out[k] = ""
				continue
			}
			out[k] = strings.TrimSpace(yamlScalar(v))
		}
	case []any:
		for _, item := range e {
			k, v, _ := strings.Cut(yamlScalar(item), "=")
			out[k] = v
		}
	default:
		t.Fatalf("environment of unexpected form %T", e)
	}
	return out
}

// secretNames returns the names of the secrets the service mounts, in the
// short or the long form.
func (s composeService) secretNames(t *testing.T) []string {
	t.Helper()
	var names []string
	for _, item := range s.Secrets {
		switch v := item.(type) {
		case string:
			names = append(names, v)
		case map[string]any:
			src, ok := v["source"].(string)
			require.True(t, ok, "secret without a source: %v", v)
			names = append(names, src)
		default:
			t.Fatalf("secret of unexpected form %T", item)
		}
	}
	return names
}

func yamlScalar(v any) string {
	switch v := v.(type) {
	case string:
		return v
	default:
		b, _ := yaml.Marshal(v)
		return strings.TrimSpace(string(b))
	}
}

func readCompose(t *testing.T) composeFile {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "docker-compose.yml"))
	require.NoError(t, err)
	var c composeFile
	require.NoError(t, yaml.Unmarshal(b, &c), "docker-compose.yml is not valid YAML")
	return c
}

func TestComposeRunsNginxFlightdeckAndPostgres(t *testing.T) {
	t.Parallel()
	c := readCompose(t)
	known := serverEnv(t)
	for _, name := range []string{"nginx", "flightdeck", "postgres"} {
		require.Contains(t, c.Services, name, "docker-compose.yml has no %s service", name)
	}

	fd := c.Services["flightdeck"]
	require.NotNil(t, fd.Build, "the flightdeck service builds the image from the Dockerfile")
	env := fd.env(t)
	require.True(t, env["DATABASE_URL"] != "" || env["DATABASE_URL_FILE"] != "", "flightdeck needs DATABASE_URL or DATABASE_URL_FILE")
	for _, name := range []string{"FLIGHTDECK_ADMIN_PASSWORD_FILE", "FLIGHTDECK_ADMIN_TOKEN_FILE", "FLIGHTDECK_PUBLIC_URL"} {
		require.NotEmpty(t, env[name], "flightdeck sets no %s", name)
	}
	require.NotContains(t, env, "DATABASE_URL", "the connection string holds a password: pass it as a secret file")
	require.NotContains(t, env, "FLIGHTDECK_ADMIN_PASSWORD", "pass the admin password as a secret file")
	require.NotContains(t, env, "FLIGHTDECK_ADMIN_TOKEN", "pass the admin token as a secret file")
	for name := range env {
		if strings.HasPrefix(name, "FLIGHTDECK_") || strings.HasPrefix(name, "DATABASE_") {
			require.True(t, known[name], "flightdeck sets %s, which the server does not read", name)
		}
	}
	require.Equal(t, "off", env["FLIGHTDECK_DEMO"], "production keeps the demo off")

	// Every *_FILE points into /run/secrets at a secret the service mounts.
	mounted := fd.secretNames(t)
	for name, value := range env {
		if !strings.HasSuffix(name, "_FILE") {
			continue
		}
		secret, ok := strings.CutPrefix(value, "/run/secrets/")
		require.True(t, ok, "%s=%s is not a docker secret under /run/secrets", name, value)
		require.Contains(t, mounted, secret, "%s names secret %q, which the flightdeck service does not mount", name, secret)
	}

	// Every secret a service mounts is defined, from a file under secrets/.
	for svcName, svc := range c.Services {
		for _, secret := range svc.secretNames(t) {
			def, ok := c.Secrets[secret]
			require.True(t, ok, "service %s mounts secret %q, which the secrets section does not define", svcName, secret)
			require.True(t, strings.HasPrefix(def.File, "./secrets/"), "secret %q comes from %q: keep secret files under ./secrets", secret, def.File)
		}
	}
	for secret := range c.Secrets {
		used := false
		for _, svc := range c.Services {
			used = used || slices.Contains(svc.secretNames(t), secret)
		}
		require.True(t, used, "secret %q is defined but no service mounts it", secret)
	}

	pg := c.Services["postgres"]
	require.True(t, strings.HasPrefix(pg.Image, "postgres:15"), "postgres runs %q, want Postgres 15", pg.Image)
	require.NotNil(t, pg.Healthcheck, "postgres has no healthcheck")
	require.NotEmpty(t, pg.Healthcheck.Test)
	pgEnv := pg.env(t)
	require.Contains(t, pgEnv, "POSTGRES_PASSWORD_FILE")
	require.NotContains(t, pgEnv, "POSTGRES_PASSWORD", "pass the database password as a secret file")
	namedVolume := false
	for _, v := range pg.Volumes {
		src, dst, _ := strings.Cut(v, ":")
		if _, ok := c.Volumes[src]; ok && strings.HasPrefix(dst, "/var/lib/postgresql/data") {
			namedVolume = true
		}
	}
	require.True(t, namedVolume, "postgres keeps its data on a named volume: %v", pg.Volumes)

	dep, ok := fd.DependsOn["postgres"].(map[string]any)
	require.True(t, ok, "flightdeck must depend on postgres with a condition")
	require.Equal(t, "service_healthy", dep["condition"])

	ng := c.Services["nginx"]
	require.Contains(t, ng.DependsOn, "flightdeck")
	require.Contains(t, ng.Ports, "443:443")
	confMounted := false
	for _, v := range ng.Volumes {
		src, rest, _ := strings.Cut(v, ":")
		if src == "./deploy/nginx/nginx.conf" && strings.HasPrefix(rest, "/etc/nginx/nginx.conf") {
			confMounted = true
		}
	}
	require.True(t, confMounted, "nginx must run deploy/nginx/nginx.conf: %v", ng.Volumes)
	require.FileExists(t, filepath.Join(repoRoot, "deploy", "nginx", "nginx.conf"))
}

// findNginx returns the nginx binary, or fails in CI and skips elsewhere
// when there is none.
func findNginx(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
		return "/usr/sbin/nginx"
	}
	const how = "nginx is not installed; install it with `apt-get install nginx-light`"
	if os.Getenv("CI") == "true" {
		t.Fatal(how)
	}
	t.Skip(how)
	return ""
}

// writeSelfSignedCert writes a certificate and key for localhost in the
// files nginx.conf reads.
func writeSelfSignedCert(t *testing.T, dir string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	keyDER, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(dir, 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "fullchain.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "privkey.pem"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600))
}

// nginxTest runs `nginx -t` on the configuration text, laid out as the
// container has it (certificates in certs/ beside nginx.conf), and returns
// nginx's verdict.
func nginxTest(t *testing.T, nginx, conf string) (string, error) {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(conf), 0o600))
	writeSelfSignedCert(t, filepath.Join(dir, "certs"))
	cmd := exec.Command(nginx, "-t", "-p", dir, "-c", filepath.Join(dir, "nginx.conf"), "-e", filepath.Join(dir, "error.log"))
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestNginxConfigPassesNginxCheck(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join(repoRoot, "deploy", "nginx", "nginx.conf"))
	require.NoError(t, err)
	conf := string(b)

	// Plain HTTP only redirects; the TLS server proxies.
	require.Contains(t, nginxBlock(t, conf, "location /"), "return 308 https://$host$request_uri;")
	tlsAt := strings.Index(conf, "listen 443 ssl")
	require.GreaterOrEqual(t, tlsAt, 0, "nginx.conf has no TLS server")
	tls := conf[tlsAt:]

	// The live pages' websockets need the upgrade headers passed on.
	ws := nginxBlock(t, tls, "location /ws/")
	require.Contains(t, ws, "proxy_set_header Upgrade $http_upgrade;")
	require.Contains(t, ws, "proxy_set_header Connection $connection_upgrade;")
	require.Contains(t, ws, "proxy_http_version 1.1;")
	require.Contains(t, ws, "proxy_pass $flightdeck;")
	require.Contains(t, conf, "set $flightdeck http://flightdeck:8080;", "nginx proxies to the flightdeck service on its port")
	for _, loc := range []string{"location /ws/", "location /"} {
		block := nginxBlock(t, tls, loc)
		require.Contains(t, block, "proxy_set_header Host $host;", "%s must pass the Host, which the websocket origin check compares", loc)
		require.Contains(t, block, "proxy_set_header X-Forwarded-For", "%s must pass the client address for the audit log", loc)
	}

	nginx := findNginx(t)
	out, err := nginxTest(t, nginx, conf)
	require.NoError(t, err, "nginx -t rejects deploy/nginx/nginx.conf:\n%s", out)
	require.Contains(t, out, "test is successful")

	// The check is real: a configuration nginx cannot load fails it.
	out, err = nginxTest(t, nginx, strings.Replace(conf, "proxy_read_timeout 1h;", "proxy_read_timeout;", 1))
	require.Error(t, err, "nginx -t accepted a broken configuration:\n%s", out)
}

// nginxBlock returns the body of the block that opens with head, such as
// "location /ws/", from the opening brace to its closing one; the
// directives inside it are what the location uses, since nginx does not
// inherit proxy_set_header into a location that sets any.
func nginxBlock(t *testing.T, conf, head string) string {
	t.Helper()
	i := strings.Index(conf, head+" {")
	require.GreaterOrEqual(t, i, 0, "nginx.conf has no %q block", head)
	depth := 0
	for j := i; j < len(conf); j++ {
		switch conf[j] {
		case '{':
			depth++
		case '}':
			depth--
			if depth == 0 {
				return conf[i : j+1]
			}
		}
	}
	t.Fatalf("the %q block is not closed", head)
	return ""
}

// dockerStage is one FROM of the Dockerfile with its instructions.
type dockerStage struct {
	from         string
	instructions []string
}

func readDockerfile(t *testing.T) []dockerStage {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "Dockerfile"))
	require.NoError(t, err)
	// Join continuation lines, drop comments.
	text := strings.ReplaceAll(string(b), "\\\n", " ")
	var stages []dockerStage
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		word, rest, _ := strings.Cut(line, " ")
		if strings.EqualFold(word, "FROM") {
			stages = append(stages, dockerStage{from: strings.TrimSpace(rest)})
			continue
		}
		require.NotEmpty(t, stages, "Dockerfile has %q before any FROM", line)
		stages[len(stages)-1].instructions = append(stages[len(stages)-1].instructions, line)
	}
	return stages
}

func (s dockerStage) find(keyword string) []string {
	var out []string
	for _, in := range s.instructions {
		word, rest, _ := strings.Cut(in, " ")
		if strings.EqualFold(word, keyword) {
			out = append(out, strings.TrimSpace(rest))
		}
	}
	return out
}

func TestDockerfileBuildsAStaticNonRootImage(t *testing.T) {
	t.Parallel()
	stages := readDockerfile(t)
	require.GreaterOrEqual(t, len(stages), 2, "the Dockerfile is multi-stage: build, then a small runtime image")

	build := stages[0]
	require.True(t, strings.HasPrefix(build.from, "golang:1.26"), "the build stage uses Go 1.26, as go.mod does: %q", build.from)
	builds := strings.Join(build.find("RUN"), "\n")
	require.Contains(t, builds, "CGO_ENABLED=0", "the binary must be static to run on a distroless base")
	require.Contains(t, builds, "-trimpath")
	require.Contains(t, builds, "./cmd/server")

	final := stages[len(stages)-1]
	base := strings.Fields(final.from)[0]
	require.True(t, base == "scratch" || strings.HasPrefix(base, "gcr.io/distroless/static"),
		"the final stage must not be a full distribution, got %q", base)
	users := final.find("USER")
	require.NotEmpty(t, users, "the final stage sets a USER")
	user := users[len(users)-1]
	name, _, _ := strings.Cut(user, ":")
	require.NotContains(t, []string{"root", "0"}, name, "the image must not run as root")
	require.Contains(t, final.find("EXPOSE"), "8080")
	copies := strings.Join(final.find("COPY"), "\n")
	require.Contains(t, copies, "--from=", "the final stage takes only the binary from the build stage")

	known := serverEnv(t)
	for _, env := range final.find("ENV") {
		for _, field := range strings.Fields(env) {
			name, _, ok := strings.Cut(field, "=")
			if ok && (strings.HasPrefix(name, "FLIGHTDECK_") || strings.HasPrefix(name, "DATABASE_")) {
				require.True(t, known[name], "the image sets %s, which the server does not read", name)
			}
		}
	}

	ignore, err := os.ReadFile(filepath.Join(repoRoot, ".dockerignore"))
	require.NoError(t, err)
	require.Contains(t, strings.Fields(string(ignore)), "secrets/", "secret files must stay out of the build context")
}

// k8sObject is the part of a Kubernetes manifest the checks read.
type k8sObject struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Spec yaml.Node `yaml:"spec"`
}

type k8sEnvVar struct {
	Name      string `yaml:"name"`
	Value     string `yaml:"value"`
	ValueFrom *struct {
		SecretKeyRef *struct {
			Name string `yaml:"name"`
			Key  string `yaml:"key"`
		} `yaml:"secretKeyRef"`
	} `yaml:"valueFrom"`
}

type k8sProbe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port any    `yaml:"port"`
	} `yaml:"httpGet"`
}

type k8sDeployment struct {
	Replicas int `yaml:"replicas"`
	Selector struct {
		MatchLabels map[string]string `yaml:"matchLabels"`
	} `yaml:"selector"`
	Template struct {
		Metadata struct {
			Labels map[string]string `yaml:"labels"`
		} `yaml:"metadata"`
		Spec struct {
			SecurityContext struct {
				RunAsNonRoot *bool `yaml:"runAsNonRoot"`
			} `yaml:"securityContext"`
			Containers []struct {
				Name  string      `yaml:"name"`
				Image string      `yaml:"image"`
				Env   []k8sEnvVar `yaml:"env"`
				Ports []struct {
					Name          string `yaml:"name"`
					ContainerPort int    `yaml:"containerPort"`
				} `yaml:"ports"`
				ReadinessProbe *k8sProbe `yaml:"readinessProbe"`
				LivenessProbe  *k8sProbe `yaml:"livenessProbe"`
				Resources      struct {
					Requests map[string]string `yaml:"requests"`
					Limits   map[string]string `yaml:"limits"`
				} `yaml:"resources"`
				SecurityContext struct {
					RunAsNonRoot             *bool `yaml:"runAsNonRoot"`
					ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
					AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
				} `yaml:"securityContext"`
			} `yaml:"containers"`
		} `yaml:"spec"`
	} `yaml:"template"`
}

type k8sService struct {
	Selector map[string]string `yaml:"selector"`
	Ports    []struct {
		Name       string `yaml:"name"`
		Port       int    `yaml:"port"`
		TargetPort any    `yaml:"targetPort"`
	} `yaml:"ports"`
}

type k8sPDB struct {
	MinAvailable any `yaml:"minAvailable"`
	Selector     struct {
		MatchLabels map[string]string `yaml:"matchLabels"`
	} `yaml:"selector"`
}

type k8sIngress struct {
	Rules []struct {
		HTTP struct {
			Paths []struct {
				Backend struct {
					Service struct {
						Name string         `yaml:"name"`
						Port map[string]any `yaml:"port"`
					} `yaml:"service"`
				} `yaml:"backend"`
			} `yaml:"paths"`
		} `yaml:"http"`
	} `yaml:"rules"`
}

// readManifests parses every document of every YAML file in
// deploy/kubernetes, by kind.
func readManifests(t *testing.T) map[string][]k8sObject {
	t.Helper()
	dir := filepath.Join(repoRoot, "deploy", "kubernetes")
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	require.NoError(t, err)
	require.NotEmpty(t, files, "no manifests in deploy/kubernetes")
	byKind := map[string][]k8sObject{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for {
			var obj k8sObject
			err := dec.Decode(&obj)
			if errors.Is(err, io.EOF) {
				break
			}
			require.NoError(t, err, "%s is not valid YAML", f)
			if obj.Kind == "" {
				continue
			}
			require.NotEmpty(t, obj.APIVersion, "%s: a %s without apiVersion", f, obj.Kind)
			require.NotEmpty(t, obj.Metadata.Name, "%s: a %s without a name", f, obj.Kind)
			byKind[obj.Kind] = append(byKind[obj.Kind], obj)
		}
	}
	return byKind
}

func TestKubernetesManifestsRunTwoReplicas(t *testing.T) {
	t.Parallel()
	objs := readManifests(t)
	known := serverEnv(t)

	require.Len(t, objs["Deployment"], 1)
	var dep k8sDeployment
	require.NoError(t, objs["Deployment"][0].Spec.Decode(&dep))
	require.Equal(t, 2, dep.Replicas)
	podLabels := dep.Template.Metadata.Labels
	for k, v := range dep.Selector.MatchLabels {
		require.Equal(t, v, podLabels[k], "the Deployment's selector must match its pods")
	}
	require.NotNil(t, dep.Template.Spec.SecurityContext.RunAsNonRoot)
	require.True(t, *dep.Template.Spec.SecurityContext.RunAsNonRoot)
	require.Len(t, dep.Template.Spec.Containers, 1)
	c := dep.Template.Spec.Containers[0]

	require.NotNil(t, c.ReadinessProbe)
	require.NotNil(t, c.ReadinessProbe.HTTPGet)
	require.Equal(t, "/readyz", c.ReadinessProbe.HTTPGet.Path)
	require.NotNil(t, c.LivenessProbe)
	require.NotNil(t, c.LivenessProbe.HTTPGet)
	require.Equal(t, "/healthz", c.LivenessProbe.HTTPGet.Path)
	require.Len(t, c.Ports, 1)
	require.Equal(t, 8080, c.Ports[0].ContainerPort, "the container listens where FLIGHTDECK_ADDR says")
	for _, p := range []*k8sProbe{c.ReadinessProbe, c.LivenessProbe} {
		require.Contains(t, []any{c.Ports[0].Name, c.Ports[0].ContainerPort}, p.HTTPGet.Port, "probes go to the container's port")
	}

	env := map[string]k8sEnvVar{}
	for _, e := range c.Env {
		env[e.Name] = e
		if strings.HasPrefix(e.Name, "FLIGHTDECK_") || strings.HasPrefix(e.Name, "DATABASE_") {
			require.True(t, known[e.Name], "the Deployment sets %s, which the server does not read", e.Name)
		}
	}
	for _, name := range []string{"DATABASE_URL", "FLIGHTDECK_ADMIN_PASSWORD"} {
		e, ok := env[name]
		require.True(t, ok, "the Deployment sets no %s", name)
		require.Empty(t, e.Value, "%s is a secret: take it from a Secret", name)
		require.True(t, e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil, "%s comes from a Secret through secretKeyRef", name)
		require.NotEmpty(t, e.ValueFrom.SecretKeyRef.Name)
		require.NotEmpty(t, e.ValueFrom.SecretKeyRef.Key)
	}
	require.Contains(t, env, "FLIGHTDECK_PUBLIC_URL")
	require.Equal(t, "off", env["FLIGHTDECK_DEMO"].Value)

	require.NotEmpty(t, c.Resources.Requests["cpu"])
	require.NotEmpty(t, c.Resources.Requests["memory"])
	require.NotEmpty(t, c.Resources.Limits["memory"])
	sc := c.SecurityContext
	require.True(t, sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem, "readOnlyRootFilesystem")
	require.True(t, sc.RunAsNonRoot != nil && *sc.RunAsNonRoot, "runAsNonRoot")
	require.True(t, sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation, "allowPrivilegeEscalation: false")

	require.Len(t, objs["PodDisruptionBudget"], 1)
	var pdb k8sPDB
	require.NoError(t, objs["PodDisruptionBudget"][0].Spec.Decode(&pdb))
	require.Equal(t, 1, pdb.MinAvailable)
	require.Equal(t, dep.Selector.MatchLabels, pdb.Selector.MatchLabels, "the budget covers the Deployment's pods")

	require.Len(t, objs["Service"], 1)
	svcName := objs["Service"][0].Metadata.Name
	var svc k8sService
	require.NoError(t, objs["Service"][0].Spec.Decode(&svc))
	require.NotEmpty(t, svc.Selector)
	for k, v := range svc.Selector {
		require.Equal(t, v, podLabels[k], "the Service selects the Deployment's pods")
	}
	require.Len(t, svc.Ports, 1)
	require.Contains(t, []any{c.Ports[0].Name, c.Ports[0].ContainerPort}, svc.Ports[0].TargetPort)

	for _, obj := range objs["Ingress"] {
		var ing k8sIngress
		require.NoError(t, obj.Spec.Decode(&ing))
		require.NotEmpty(t, ing.Rules)
		for _, r := range ing.Rules {
			for _, p := range r.HTTP.Paths {
				require.Equal(t, svcName, p.Backend.Service.Name, "the Ingress sends traffic to the Service")
				if name, ok := p.Backend.Service.Port["name"]; ok {
					require.Equal(t, svc.Ports[0].Name, name)
				}
			}
		}
	}
}
