// Package nginx is the driver for a single nginx server in front of an
// app's instances. It renders the desired state into two include files
// (upstreams, weighted splits and sticky cohorts for the http block; the
// routed location and the shadow mirror for a server block), checks them
// with nginx, reloads nginx, and starts and stops the instances of each
// version through configured commands.
//
// Both files begin with a line recording the run and generation they were
// rendered for. The driver keeps the newest generation per directory in
// memory and reads it back from the files after a restart, so a repeated
// delivery is a no-op and a stale one can never move traffic back.
package nginx

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/flightdeckhq/flightdeck/internal/engine/driver"
	"github.com/flightdeckhq/flightdeck/internal/engine/plan"
)

// maxOutput bounds how much of a command's output goes into an error, so a
// chatty command cannot flood a run's events.
const maxOutput = 4 << 10

// Options configure a Driver.
type Options struct {
	// Logger receives the output of commands that succeed and a line per
	// apply. Nil means slog.Default().
	Logger *slog.Logger
}

// Driver applies desired states to nginx. It is safe for concurrent use;
// applies are serialized, because they share one nginx and its reloads.
type Driver struct {
	log *slog.Logger

	mu sync.Mutex
	// applied is the state of the files in each directory as of the last
	// apply that finished every step, by directory.
	applied map[string]state
}

var _ driver.Driver = (*Driver)(nil)

// New returns a driver that knows nothing yet; it learns each directory's
// state from its files on first use.
func New(opts Options) *Driver {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Driver{log: log, applied: map[string]state{}}
}

// Apply makes req.Desired true: it starts or grows the versions that need
// capacity, renders and checks the include files, reloads nginx, then
// shrinks or stops the versions that lost traffic. A delivery of a
// generation already applied, or older than the newest, changes nothing
// and returns nil. A bad configuration, a desired state nginx cannot
// express, or files nginx rejects fail permanently; a failed check or
// reload restores the previous files, so traffic stays as it was.
func (d *Driver) Apply(ctx context.Context, req driver.Request) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	cfg, err := ParseConfig(req.Config)
	if err != nil {
		return driver.Permanent(err)
	}
	if req.App == "" || req.Environment == "" {
		return driver.Permanent(fmt.Errorf("nginx request for run %d names no app or environment (app %q, environment %q)", req.RunID, req.App, req.Environment))
	}
	if err := checkDesired(req.Desired); err != nil {
		return driver.Permanent(err)
	}

	d.mu.Lock()
	defer d.mu.Unlock()

	prev, known, err := d.current(cfg.Dir)
	if err != nil {
		return driver.Permanent(err)
	}
	if known && (prev.App != req.App || prev.Environment != req.Environment) {
		return driver.Permanent(fmt.Errorf("%s holds the nginx files of %s/%s; give %s/%s a directory of its own", cfg.Dir, prev.App, prev.Environment, req.App, req.Environment))
	}
	log := d.log.With("app", req.App, "environment", req.Environment, "run_id", req.RunID, "generation", req.Generation, "dir", cfg.Dir)
	if known && !prev.newer(req.RunID, req.Generation) {
		log.InfoContext(ctx, "nginx: generation already applied or stale; nothing to do", "applied_run_id", prev.RunID, "applied_generation", prev.Generation)
		return nil
	}

	rendered, err := render(cfg, req.App, req.Environment, req.Desired)
	if err != nil {
		return driver.Permanent(fmt.Errorf("rendering nginx files for %s/%s: %w", req.App, req.Environment, err))
	}
	next := state{App: req.App, Environment: req.Environment, RunID: req.RunID, Generation: req.Generation}
	for _, v := range req.Desired.Versions {
		next.Versions = append(next.Versions, versionCount{Version: v.Version, Instances: v.Instances})
	}

	run := commandRunner{cfg: cfg, app: req.App, env: req.Environment, log: log, report: req.Report}
	// Capacity first: versions that grow are started before traffic moves.
	for _, v := range next.Versions {
		if v.Instances > 0 && (!known || v.Instances > prev.instances(v.Version)) {
			if err := run.scale(ctx, cfg.StartCommand, "start_command", v); err != nil {
				return err
			}
		}
	}

	if err := d.install(ctx, cfg, run, next, rendered, log); err != nil {
		return err
	}

	// Then the versions that lost traffic shrink or stop. The files already
	// carry the new generation; if a command fails, the state before it is
	// kept in memory so a retry of this generation runs the commands again.
	if err := shrink(ctx, run, prev, known, next); err != nil {
		retry := prev
		if !known {
			retry = state{App: next.App, Environment: next.Environment, RunID: next.RunID, Generation: next.Generation - 1}
			for _, v := range next.Versions {
				// Versions at zero count as running, so they are stopped.
				retry.Versions = append(retry.Versions, versionCount{Version: v.Version, Instances: max(v.Instances, 1)})
			}
		}
		d.applied[cfg.Dir] = retry
		return err
	}
	d.applied[cfg.Dir] = next
	log.InfoContext(ctx, "nginx: desired state applied", "phase", req.Phase)
	return nil
}

// shrink resizes the versions that lost instances and stops the versions
// that no longer run. Without a known previous state every version at zero
// instances is stopped, since it may still run.
func shrink(ctx context.Context, run commandRunner, prev state, known bool, next state) error {
	for _, v := range next.Versions {
		if v.Instances > 0 && known && v.Instances < prev.instances(v.Version) {
			if err := run.scale(ctx, run.cfg.StartCommand, "start_command", v); err != nil {
				return err
			}
		}
	}
	for _, v := range prev.Versions {
		if v.Instances > 0 && next.instances(v.Version) == 0 {
			if err := run.scale(ctx, run.cfg.StopCommand, "stop_command", versionCount{Version: v.Version}); err != nil {
				return err
			}
		}
	}
	if !known {
		for _, v := range next.Versions {
			if v.Instances == 0 {
				if err := run.scale(ctx, run.cfg.StopCommand, "stop_command", v); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// install writes the rendered files. When their bodies equal the files in
// place only the state line changes, which needs neither a check nor a
// reload. Otherwise nginx checks the new files and reloads; on failure the
// previous files are put back.
func (d *Driver) install(ctx context.Context, cfg Config, run commandRunner, next state, rendered files, log *slog.Logger) error {
	httpPath := filepath.Join(cfg.Dir, HTTPFile)
	serverPath := filepath.Join(cfg.Dir, ServerFile)
	oldHTTP, err := readOptional(httpPath)
	if err != nil {
		return err
	}
	oldServer, err := readOptional(serverPath)
	if err != nil {
		return err
	}
	header := next.header()
	newHTTP := append(append([]byte{}, header...), rendered.http...)
	newServer := append(append([]byte{}, header...), rendered.server...)

	_, curHTTP, _, _ := splitHeader(oldHTTP)
	_, curServer, _, _ := splitHeader(oldServer)
	unchanged := oldHTTP != nil && oldServer != nil && bytes.Equal(curHTTP, rendered.http) && bytes.Equal(curServer, rendered.server)

	if err := writeFile(httpPath, newHTTP); err != nil {
		return err
	}
	if err := writeFile(serverPath, newServer); err != nil {
		return errors.Join(err, restore(httpPath, oldHTTP))
	}
	if unchanged {
		log.InfoContext(ctx, "nginx: routing unchanged; recorded the generation without a reload")
		return nil
	}
	putBack := func() error {
		return errors.Join(restore(httpPath, oldHTTP), restore(serverPath, oldServer))
	}
	if out, err := run.command(ctx, cfg.TestCommand, nil); err != nil {
		if rerr := putBack(); rerr != nil {
			return fmt.Errorf("nginx rejected the new files (%s: %w): %s; restoring the previous files failed too: %v", cfg.TestCommand, err, out, rerr)
		}
		if ctx.Err() != nil {
			return fmt.Errorf("checking the nginx files with %q was cut short: %w; the previous files are back in place", cfg.TestCommand, ctx.Err())
		}
		return driver.Permanent(fmt.Errorf("nginx rejected the new files for %s/%s, previous files restored; %s said: %s", next.App, next.Environment, cfg.TestCommand, out))
	}
	if out, err := run.command(ctx, cfg.ReloadCommand, nil); err != nil {
		if rerr := putBack(); rerr != nil {
			return fmt.Errorf("reloading nginx failed (%s: %w): %s; restoring the previous files failed too: %v", cfg.ReloadCommand, err, out, rerr)
		}
		return fmt.Errorf("reloading nginx for %s/%s failed, previous files restored; %s said: %s", next.App, next.Environment, cfg.ReloadCommand, out)
	}
	log.InfoContext(ctx, "nginx: new routing checked and reloaded")
	if cfg.ReloadSettle > 0 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for nginx's workers to take the new routing: %w", ctx.Err())
		case <-time.After(cfg.ReloadSettle):
		}
	}
	return nil
}

// current returns the state of the files in dir: from memory, or else from
// the state line of the files, so a restarted server knows what was
// applied. known is false when no file exists yet or the files are empty.
func (d *Driver) current(dir string) (s state, known bool, err error) {
	if s, ok := d.applied[dir]; ok {
		return s, true, nil
	}
	for _, name := range []string{HTTPFile, ServerFile} {
		path := filepath.Join(dir, name)
		content, err := readOptional(path)
		if err != nil {
			return state{}, false, err
		}
		if len(bytes.TrimSpace(content)) == 0 {
			continue
		}
		fileState, _, ok, err := splitHeader(content)
		if err != nil {
			return state{}, false, fmt.Errorf("%s: %w", path, err)
		}
		if !ok {
			return state{}, false, fmt.Errorf("%s was not written by Flightdeck; move it away or choose another dir, so the driver does not overwrite it", path)
		}
		if !known || fileState.newer(s.RunID, s.Generation) {
			s, known = fileState, true
		}
	}
	return s, known, nil
}

// checkDesired rejects desired states no fleet can take on, before anything
// is started or written.
func checkDesired(desired plan.DesiredState) error {
	seen := map[string]bool{}
	weights := 0
	for i, v := range desired.Versions {
		switch {
		case v.Version == "":
			return fmt.Errorf("versions[%d] has no version", i)
		case seen[v.Version]:
			return fmt.Errorf("version %s is listed twice", v.Version)
		case v.Instances < 0:
			return fmt.Errorf("version %s has %d instances", v.Version, v.Instances)
		case v.Weight < 0 || v.Weight > 100:
			return fmt.Errorf("version %s has weight %d, outside 0 to 100", v.Version, v.Weight)
		case v.Weight > 0 && v.Instances == 0:
			return fmt.Errorf("version %s has weight %d but no instances to serve it", v.Version, v.Weight)
		}
		seen[v.Version] = true
		weights += v.Weight
	}
	if weights != 0 && weights != 100 {
		return fmt.Errorf("weights add up to %d, want 100 (or 0 when nothing serves)", weights)
	}
	return nil
}

// readOptional reads a file, returning nil for one that does not exist.
func readOptional(path string) ([]byte, error) {
	content, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return content, nil
}

// writeFile replaces a file through a rename, so nginx never reads half a
// file.
func writeFile(path string, content []byte) error {
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, content, 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("replacing %s: %w", path, err)
	}
	return nil
}

// restore puts a file's previous content back, or removes it when there was
// none.
func restore(path string, content []byte) error {
	if content == nil {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("removing %s: %w", path, err)
		}
		return nil
	}
	return writeFile(path, content)
}

// commandRunner runs the configured shell commands of one apply.
type commandRunner struct {
	cfg      Config
	app, env string
	log      *slog.Logger
	// report puts a command's output into the run's events.
	report func(summary, detail string)
}

// shellSafe is what may be put into a shell command without quotes.
var shellSafe = regexp.MustCompile(`^[A-Za-z0-9._/:=@+-]+$`)

// shellQuote quotes s for sh, leaving plain words as they are so logged
// commands stay readable.
func shellQuote(s string) string {
	if shellSafe.MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// scale runs a start or stop command for one version, with the version and
// instance count filled in. An empty command does nothing.
func (r commandRunner) scale(ctx context.Context, template, field string, v versionCount) error {
	if template == "" {
		return nil
	}
	command := strings.NewReplacer(
		"{version}", shellQuote(v.Version),
		"{instances}", strconv.Itoa(v.Instances),
		"{app}", shellQuote(r.app),
		"{environment}", shellQuote(r.env),
	).Replace(template)
	env := []string{
		"FLIGHTDECK_VERSION=" + v.Version,
		"FLIGHTDECK_INSTANCES=" + strconv.Itoa(v.Instances),
		"FLIGHTDECK_APP=" + r.app,
		"FLIGHTDECK_ENVIRONMENT=" + r.env,
	}
	out, err := r.command(ctx, command, env)
	if err != nil {
		return fmt.Errorf("%s for version %s (%d instances) failed: %s: %w; output: %s", field, v.Version, v.Instances, command, err, out)
	}
	return nil
}

// command runs one shell command under the configured timeout and returns
// its combined output, trimmed to its last maxOutput bytes. The command
// runs in its own process group, so a timeout also ends what it started.
func (r commandRunner) command(ctx context.Context, command string, env []string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.CommandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", command)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	cmd.WaitDelay = 2 * time.Second
	start := time.Now()
	err := cmd.Run()
	text := strings.TrimSpace(out.String())
	if len(text) > maxOutput {
		text = "…" + text[len(text)-maxOutput:]
	}
	if text == "" {
		text = "(no output)"
	}
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			err = fmt.Errorf("timed out after %s", r.cfg.CommandTimeout)
		}
		return text, err
	}
	r.log.InfoContext(ctx, "nginx: command succeeded", "command", command, "duration", time.Since(start).Round(time.Millisecond), "output", text)
	if r.report != nil {
		r.report(fmt.Sprintf("ran %s (%s)", command, time.Since(start).Round(time.Millisecond)), text)
	}
	return text, nil
}
