// Package pgcluster runs a private PostgreSQL cluster for Flightdeck from the
// PostgreSQL server programs installed on the machine.
//
// When the Flightdeck server is started without DATABASE_URL it keeps its data
// in a cluster of its own under the data directory, so that a single binary
// plus the distribution's PostgreSQL package is a complete installation. Tests
// use the same package to start one throwaway cluster per test process.
//
// The postmaster is started detached with pg_ctl, so it outlives a Flightdeck
// process that is killed; Start therefore expects to find leftovers of earlier
// runs and recovers from them without manual cleanup (see Start).
package pgcluster

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Database is the database Start creates for Flightdeck, so callers can
// connect with ConnString(Database) as soon as Start returns.
const Database = "flightdeck"

const (
	// superuser is the cluster's bootstrap role, named after Flightdeck so
	// that no system user name leaks into connection strings.
	superuser = "flightdeck"
	// defaultSocketPort numbers the Unix socket when TCP is off. Nothing
	// listens on TCP then, so it cannot collide with another server.
	defaultSocketPort = 5432
	// maxSocketPath is the longest socket path a sockaddr_un holds
	// (108 bytes including the terminating NUL).
	maxSocketPath = 107
	// startTimeout is how long pg_ctl waits for the server to accept
	// connections, crash recovery included.
	startTimeout = "60"
	// maxConnections leaves room for many tests sharing one cluster in
	// parallel.
	maxConnections = 200
	// logTailLines is how much of postgres.log a start failure quotes.
	logTailLines = 20
	// logRotateSize is the size beyond which postgres.log is moved aside to
	// postgres.log.1 before a fresh start, so it cannot grow without bound.
	logRotateSize = 64 << 20
	// sharedMemoryWait bounds how long a start waits for the backends of a
	// killed postmaster to exit and release its shared memory.
	sharedMemoryWait = 20 * time.Second
)

// Config describes the cluster Start runs.
type Config struct {
	// DataDir is the Flightdeck data directory; it is required. The cluster
	// lives in DataDir/pg, next to postgres.log and the socket directory
	// DataDir/run. Missing parent directories are created.
	DataDir string
	// Port, when positive, makes the server also listen on 127.0.0.1:Port for
	// clients that cannot use a Unix socket. Zero keeps the server on its
	// private Unix socket only, with no TCP listener at all, because trust
	// authentication is only safe where no other user can connect.
	Port int
	// BinDir, when set, is the only directory searched for initdb, pg_ctl and
	// postgres, for machines with several PostgreSQL installations.
	// Otherwise PATH and then /usr/lib/postgresql/*/bin are searched.
	BinDir string
	// Logger receives what Start and Stop do to the cluster; nil means
	// slog.Default().
	Logger *slog.Logger
	// Ephemeral turns off fsync (and initdb's final sync) for clusters whose
	// contents do not matter after a machine crash, such as test clusters;
	// it makes them start and run much faster. Never set it for real data.
	Ephemeral bool
}

// Cluster is a running private PostgreSQL server. It is safe for concurrent
// use.
type Cluster struct {
	logger     *slog.Logger
	bins       binaries
	version    string // major version of the server programs
	dataDir    string // absolute Config.DataDir
	pgdata     string // the PostgreSQL data directory, dataDir/pg
	logFile    string
	socketDir  string
	tmpSocket  bool // socketDir is under os.TempDir() because dataDir/run was too long
	socketPort int
	tcpPort    int
	ephemeral  bool
	acct       *account // the user PostgreSQL runs as
	switchUser bool     // acct differs from the current user (Flightdeck is root)

	mu      sync.Mutex
	stopped bool
}

// Start brings up the cluster in cfg.DataDir and returns once the Database
// database accepts connections.
//
// On first use it runs initdb. It then starts the server with pg_ctl, which
// detaches the postmaster so it survives the Flightdeck process. Because of
// that, Start recovers from earlier runs on its own:
//
//   - A postmaster still running on the data directory (Flightdeck was killed
//     without Stop) is reused when it answers on the expected socket with the
//     expected settings; reuse avoids a needless restart. Otherwise it is
//     stopped and a fresh one started.
//   - A postmaster.pid left by a killed postmaster is handled by PostgreSQL
//     itself, which also runs crash recovery. If its pid now belongs to an
//     unrelated live process, which makes PostgreSQL refuse to start, the
//     stale lock files are removed and the start retried once.
//   - An initdb interrupted halfway is discarded and run again.
//
// When Flightdeck runs as root, PostgreSQL is run as the postgres system user,
// which must be able to reach the data directory.
func Start(ctx context.Context, cfg Config) (*Cluster, error) {
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	if cfg.DataDir == "" {
		return nil, errors.New("starting PostgreSQL: Config.DataDir is required")
	}
	if cfg.Port < 0 || cfg.Port > 65535 {
		return nil, fmt.Errorf("starting PostgreSQL: port %d is out of range", cfg.Port)
	}
	dataDir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("resolving data directory %s: %w", cfg.DataDir, err)
	}
	if err := checkShellSafe("data directory", dataDir); err != nil {
		return nil, err
	}

	c := &Cluster{
		logger:     logger,
		dataDir:    dataDir,
		pgdata:     filepath.Join(dataDir, "pg"),
		logFile:    filepath.Join(dataDir, "postgres.log"),
		socketPort: defaultSocketPort,
		tcpPort:    cfg.Port,
		ephemeral:  cfg.Ephemeral,
	}
	if cfg.Port > 0 {
		c.socketPort = cfg.Port
	}

	dataVersion, err := readDataVersion(c.pgdata)
	if err != nil {
		return nil, err
	}
	c.bins, err = findBinaries(cfg.BinDir, searchDirs(os.Getenv("PATH"), debianBinGlob, dataVersion))
	if err != nil {
		return nil, err
	}
	if err := checkShellSafe("PostgreSQL program directory", c.bins.dir); err != nil {
		return nil, err
	}
	if c.version, err = serverVersion(ctx, c.bins); err != nil {
		return nil, err
	}
	if dataVersion != "" && dataVersion != c.version {
		return nil, fmt.Errorf("the cluster in %s was created by PostgreSQL %s, but the server programs in %s are "+
			"PostgreSQL %s: install PostgreSQL %s and point Flightdeck at it with its bin directory, "+
			"or upgrade the cluster with pg_upgrade", c.pgdata, dataVersion, c.bins.dir, c.version, dataVersion)
	}

	if c.acct, c.switchUser, err = lookupServerAccount(); err != nil {
		return nil, err
	}
	// Others need to enter the data directory when PostgreSQL runs as
	// another user; listing it stays private either way.
	dirMode := os.FileMode(0o700)
	if c.switchUser {
		dirMode = 0o711
	}
	if err := mkdirAll(dataDir, dirMode); err != nil {
		return nil, fmt.Errorf("creating data directory: %w", err)
	}
	if c.switchUser {
		if err := checkTraverse(dataDir, c.acct); err != nil {
			return nil, err
		}
	}

	unlock, err := lockDataDir(ctx, dataDir, logger)
	if err != nil {
		return nil, err
	}
	defer unlock()

	if err := c.prepareSocketDir(); err != nil {
		return nil, err
	}
	if err := c.prepareLogFile(); err != nil {
		return nil, err
	}
	if dataVersion == "" {
		if err := c.initdb(ctx); err != nil {
			return nil, err
		}
	} else if err := c.checkDataOwner(); err != nil {
		return nil, err
	}

	started, err := c.bringUp(ctx)
	if err != nil {
		return nil, err
	}
	if err := c.ensureDatabase(ctx); err != nil {
		if started {
			if stopErr := c.stopServer(context.WithoutCancel(ctx)); stopErr != nil {
				logger.Warn("stopping PostgreSQL after a failed start", "error", stopErr)
			}
		}
		return nil, err
	}
	return c, nil
}

// ConnString returns a keyword/value connection string for database that
// reaches the server over its private Unix socket as the flightdeck role. The
// socket is used even when TCP is enabled, because it is always there and
// needs no network stack.
func (c *Cluster) ConnString(database string) string {
	return fmt.Sprintf("host=%s port=%d user=%s dbname=%s sslmode=disable",
		connQuote(c.socketDir), c.socketPort, connQuote(superuser), connQuote(database))
}

// Stop shuts the server down cleanly with a fast shutdown (open sessions are
// cancelled, data is checkpointed), falling back to an immediate shutdown if
// that fails, so that Flightdeck never exits leaving a server behind. The
// fallback runs even when ctx is already done, bounded by its own timeout.
// Calling Stop again after it succeeded does nothing, so it can be both
// deferred and called explicitly.
func (c *Cluster) Stop(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return nil
	}
	if err := c.stopServer(ctx); err != nil {
		return err
	}
	c.stopped = true
	if c.tmpSocket {
		// Only succeeds when empty, which it is once the server is gone.
		_ = os.Remove(c.socketDir)
	}
	return nil
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago, for
// tests that exercise Config.Port. Another process may take it before it is
// used, so it suits tests rather than production.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// mkdirAll is os.MkdirAll that gives the directories it creates exactly mode,
// whatever the umask, since PostgreSQL's user depends on the search bit.
func mkdirAll(dir string, mode os.FileMode) error {
	var created []string
	for _, d := range ancestors(dir) {
		if _, err := os.Lstat(d); errors.Is(err, os.ErrNotExist) {
			created = append(created, d)
		}
	}
	if err := os.MkdirAll(dir, mode); err != nil {
		return err
	}
	for _, d := range created {
		if err := os.Chmod(d, mode); err != nil {
			return err
		}
	}
	return nil
}

// readDataVersion returns the major version recorded in PG_VERSION of an
// initialised data directory, or "" if it has not been initialised.
func readDataVersion(pgdata string) (string, error) {
	b, err := os.ReadFile(filepath.Join(pgdata, "PG_VERSION"))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("reading the version of the cluster in %s: %w", pgdata, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// checkShellSafe rejects paths that pg_ctl cannot pass on: it starts the
// postmaster through /bin/sh with the data directory, log file and program
// path in double quotes, where these characters would be interpreted.
func checkShellSafe(what, path string) error {
	if strings.ContainsAny(path, "\"$`\\") || strings.ContainsFunc(path, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return fmt.Errorf("the %s %q contains a character pg_ctl cannot handle (a quote, $, `, \\ or control character): "+
			"choose another path", what, path)
	}
	return nil
}

// lockDataDir serialises Start between Flightdeck processes sharing a data
// directory, so that two of them never run initdb or pg_ctl start at once.
// The lock is released when the returned function is called or the process
// exits.
func lockDataDir(ctx context.Context, dataDir string, logger *slog.Logger) (func(), error) {
	path := filepath.Join(dataDir, "pgcluster.lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening lock file: %w", err)
	}
	fd := int(f.Fd())
	waiting := false
	for {
		err := syscall.Flock(fd, syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() {
				_ = syscall.Flock(fd, syscall.LOCK_UN)
				_ = f.Close()
			}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			_ = f.Close()
			return nil, fmt.Errorf("locking %s: %w", path, err)
		}
		if !waiting {
			logger.Info("waiting for another Flightdeck process to finish starting PostgreSQL", "lock_file", path)
			waiting = true
		}
		select {
		case <-ctx.Done():
			_ = f.Close()
			return nil, fmt.Errorf("waiting for lock %s: %w", path, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// chooseSocketDir returns dataDir/run when the socket path inside it fits a
// sockaddr_un and is usable in a connection string (no comma, which would
// split it into several hosts). Otherwise it returns a directory under the
// temporary directory named after a hash of dataDir, so that it is stable
// across restarts and distinct per data directory.
func chooseSocketDir(dataDir string, port int) (dir string, tmp bool, err error) {
	socket := fmt.Sprintf(".s.PGSQL.%d", port)
	usable := func(dir string) bool {
		return len(filepath.Join(dir, socket)) <= maxSocketPath && !strings.ContainsAny(dir, ",\"")
	}
	if dir := filepath.Join(dataDir, "run"); usable(dir) {
		return dir, false, nil
	}
	sum := sha256.Sum256([]byte(dataDir))
	name := "flightdeck-pg-" + hex.EncodeToString(sum[:8])
	for _, base := range []string{os.TempDir(), "/tmp"} {
		if dir := filepath.Join(base, name); usable(dir) {
			return dir, true, nil
		}
	}
	return "", false, fmt.Errorf("no socket directory for %s: the socket path would exceed %d bytes", dataDir, maxSocketPath)
}

// prepareSocketDir creates the socket directory, private to the PostgreSQL
// user. Trust authentication relies on this: whoever can open the socket
// can log in.
func (c *Cluster) prepareSocketDir() error {
	dir, tmp, err := chooseSocketDir(c.dataDir, c.socketPort)
	if err != nil {
		return err
	}
	c.socketDir, c.tmpSocket = dir, tmp
	if tmp {
		// The temporary directory is shared, so refuse a directory that
		// someone else prepared in advance.
		if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("creating socket directory: %w", err)
		}
		fi, err := os.Lstat(dir)
		if err != nil {
			return fmt.Errorf("checking socket directory: %w", err)
		}
		if !fi.IsDir() {
			return fmt.Errorf("socket directory %s is not a directory", dir)
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != c.acct.uid && int(st.Uid) != os.Geteuid() {
			return fmt.Errorf("socket directory %s belongs to uid %d, not to the %s: remove it", dir, st.Uid, c.acct.describe())
		}
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating socket directory: %w", err)
	}
	if c.switchUser {
		if err := os.Lchown(dir, int(c.acct.uid), int(c.acct.gid)); err != nil {
			return fmt.Errorf("handing socket directory to the %s: %w", c.acct.describe(), err)
		}
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("restricting socket directory: %w", err)
	}
	return nil
}

// prepareLogFile makes sure postgres.log exists and belongs to the
// PostgreSQL user, since pg_ctl opens it as that user.
func (c *Cluster) prepareLogFile() error {
	f, err := os.OpenFile(c.logFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("creating PostgreSQL log file: %w", err)
	}
	_ = f.Close()
	if c.switchUser {
		if err := os.Lchown(c.logFile, int(c.acct.uid), int(c.acct.gid)); err != nil {
			return fmt.Errorf("handing PostgreSQL log file to the %s: %w", c.acct.describe(), err)
		}
	}
	return nil
}

// rotateLog moves an oversized postgres.log aside. It is only called before
// starting a server, never while one writes to the file.
func (c *Cluster) rotateLog() {
	fi, err := os.Stat(c.logFile)
	if err != nil || fi.Size() < logRotateSize {
		return
	}
	if err := os.Rename(c.logFile, c.logFile+".1"); err != nil {
		c.logger.Warn("rotating PostgreSQL log file", "log_file", c.logFile, "error", err)
		return
	}
	if err := c.prepareLogFile(); err != nil {
		c.logger.Warn("recreating PostgreSQL log file", "log_file", c.logFile, "error", err)
	}
}

// initdb creates the cluster. It runs initdb in a sibling directory and
// renames that into place on success, so that an interrupted initdb never
// leaves a half-made cluster where Start would take it for a real one.
func (c *Cluster) initdb(ctx context.Context) error {
	entries, err := os.ReadDir(c.pgdata)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return fmt.Errorf("reading %s: %w", c.pgdata, err)
	case len(entries) > 0:
		return fmt.Errorf("%s is not empty but holds no PostgreSQL cluster (it has no PG_VERSION): "+
			"move it away so that Flightdeck can create its cluster there", c.pgdata)
	default:
		if err := os.Remove(c.pgdata); err != nil {
			return fmt.Errorf("removing empty %s: %w", c.pgdata, err)
		}
	}

	tmp := c.pgdata + ".initdb"
	if _, err := os.Lstat(tmp); err == nil {
		c.logger.Info("discarding the cluster of an interrupted initdb", "dir", tmp)
		if err := os.RemoveAll(tmp); err != nil {
			return fmt.Errorf("removing the cluster of an interrupted initdb: %w", err)
		}
	}
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return fmt.Errorf("creating cluster directory: %w", err)
	}
	if c.switchUser {
		if err := os.Lchown(tmp, int(c.acct.uid), int(c.acct.gid)); err != nil {
			return fmt.Errorf("handing cluster directory to the %s: %w", c.acct.describe(), err)
		}
	}

	args := []string{
		"--pgdata=" + tmp,
		"--username=" + superuser,
		// Trust is safe only because the socket directory is private and
		// TCP, when enabled, listens on 127.0.0.1 alone.
		"--auth=trust",
		"--encoding=UTF8",
		"--no-locale",
	}
	if c.ephemeral {
		args = append(args, "--no-sync")
	}
	c.logger.Info("creating PostgreSQL cluster", "data_dir", c.pgdata, "version", c.version, "bin_dir", c.bins.dir)
	start := time.Now()
	out, err := c.command(ctx, c.bins.initdb, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("running initdb: %w\n%s", err, strings.TrimSpace(string(out)))
	}
	if err := os.Rename(tmp, c.pgdata); err != nil {
		return fmt.Errorf("moving the new cluster into place: %w", err)
	}
	if !c.ephemeral {
		if err := syncDir(c.dataDir); err != nil {
			return fmt.Errorf("syncing data directory: %w", err)
		}
	}
	c.logger.Info("created PostgreSQL cluster", "data_dir", c.pgdata, "duration", time.Since(start).Round(time.Millisecond))
	return nil
}

// syncDir makes a rename inside dir durable.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// checkDataOwner fails early, with a remedy, when an existing cluster belongs
// to someone other than the user PostgreSQL runs as; PostgreSQL would refuse
// to start with a less helpful message.
func (c *Cluster) checkDataOwner() error {
	fi, err := os.Stat(c.pgdata)
	if err != nil {
		return fmt.Errorf("checking cluster directory: %w", err)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != c.acct.uid {
		return fmt.Errorf("the cluster in %s belongs to uid %d, but PostgreSQL runs as the %s: "+
			"give it to that user with chown -R, or use another data directory", c.pgdata, st.Uid, c.acct.describe())
	}
	return nil
}

// bringUp makes sure a server runs on the cluster, reusing one left running by
// an earlier process when it is usable. It reports whether it started one.
func (c *Cluster) bringUp(ctx context.Context) (started bool, err error) {
	state, pid := inspectServer(c.pgdata)
	switch state {
	case serverRunning:
		reason := c.checkReusable(ctx)
		if reason == nil {
			c.logger.Info("reusing the PostgreSQL server left running by an earlier Flightdeck process",
				"pid", pid, "data_dir", c.pgdata, "socket_dir", c.socketDir)
			return false, nil
		}
		c.logger.Info("restarting the PostgreSQL server left running by an earlier Flightdeck process",
			"pid", pid, "data_dir", c.pgdata, "reason", reason.Error())
		if err := c.stopServer(ctx); err != nil {
			return false, fmt.Errorf("stopping the PostgreSQL server left running (pid %d): %w", pid, err)
		}
	case serverStale:
		c.logger.Info("found the lock file of a PostgreSQL server that is no longer running; PostgreSQL will recover",
			"pid", pid, "data_dir", c.pgdata)
	case serverForeign:
		c.logger.Info("found a PostgreSQL lock file naming a process that is not this cluster's server",
			"pid", pid, "zombie", processGone(pid), "data_dir", c.pgdata)
	}
	c.rotateLog()
	return true, c.startServer(ctx)
}

// checkReusable returns nil when the server found running answers on the
// expected socket, serves this data directory and runs with the settings
// Start would give it; otherwise it says what differs.
func (c *Cluster) checkReusable(ctx context.Context) error {
	// A server still starting up (for example in crash recovery after its
	// starter gave up waiting) is waited for as long as pg_ctl would have.
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	var conn *pgx.Conn
	for {
		var err error
		conn, err = pgx.Connect(ctx, c.ConnString("postgres"))
		if err == nil {
			break
		}
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "57P03" { // cannot_connect_now
			return fmt.Errorf("connecting over %s: %w", c.socketDir, err)
		}
		c.logger.Info("waiting for the PostgreSQL server left running to finish starting", "data_dir", c.pgdata)
		select {
		case <-ctx.Done():
			return fmt.Errorf("connecting over %s: %w", c.socketDir, err)
		case <-time.After(500 * time.Millisecond):
		}
	}
	defer conn.Close(ctx)
	var dataDirectory, listen, port, fsync, maxConns string
	err := conn.QueryRow(ctx, `SELECT current_setting('data_directory'), current_setting('listen_addresses'),
		current_setting('port'), current_setting('fsync'), current_setting('max_connections')`).
		Scan(&dataDirectory, &listen, &port, &fsync, &maxConns)
	if err != nil {
		return fmt.Errorf("reading server settings: %w", err)
	}
	if !sameDir(dataDirectory, c.pgdata) {
		return fmt.Errorf("the server on the socket serves %s", dataDirectory)
	}
	wantFsync := "on"
	if c.ephemeral {
		wantFsync = "off"
	}
	for _, s := range []struct{ name, got, want string }{
		{"listen_addresses", listen, c.listenAddresses()},
		{"port", port, strconv.Itoa(c.socketPort)},
		{"fsync", fsync, wantFsync},
		{"max_connections", maxConns, strconv.Itoa(maxConnections)},
	} {
		if s.got != s.want {
			return fmt.Errorf("%s is %q, want %q", s.name, s.got, s.want)
		}
	}
	return nil
}

// sameDir reports whether two paths name the same directory.
func sameDir(a, b string) bool {
	fa, err := os.Stat(a)
	if err != nil {
		return false
	}
	fb, err := os.Stat(b)
	if err != nil {
		return false
	}
	return os.SameFile(fa, fb)
}

// listenAddresses is the TCP listen setting: loopback only, or nothing.
func (c *Cluster) listenAddresses() string {
	if c.tcpPort > 0 {
		return "127.0.0.1"
	}
	return ""
}

// serverOptions are the postmaster settings passed with pg_ctl -o. They live
// on the command line rather than in the cluster's configuration files so
// that a moved data directory or a changed port is picked up on the next
// start. pg_ctl hands them to /bin/sh, hence the quoting.
func (c *Cluster) serverOptions() string {
	opts := []string{
		"-c", `unix_socket_directories="` + c.socketDir + `"`,
		"-c", "unix_socket_permissions=0700",
		"-c", "port=" + strconv.Itoa(c.socketPort),
		"-c", "listen_addresses=" + c.listenAddresses(),
		"-c", "max_connections=" + strconv.Itoa(maxConnections),
	}
	if c.ephemeral {
		opts = append(opts, "-c", "fsync=off")
	}
	quoted := make([]string, len(opts))
	for i, o := range opts {
		quoted[i] = shellQuote(o)
	}
	return strings.Join(quoted, " ")
}

// startServer runs pg_ctl start and handles the failures a killed
// postmaster can leave behind: backends that are still exiting and holding
// its shared memory (waited for, up to sharedMemoryWait), and lock files
// naming a pid that now belongs to an unrelated process (removed once those
// backends are gone, then the start is retried once).
func (c *Cluster) startServer(ctx context.Context) error {
	deadline := time.Now().Add(sharedMemoryWait)
	removedStale := false
	for {
		logOffset := fileSize(c.logFile)
		out, err := c.pgCtl(ctx, "start", "-w", "-t", startTimeout,
			"-D", c.pgdata, "-l", c.logFile, "-o", c.serverOptions())
		if err == nil {
			pid, _ := readPostmasterPID(c.pgdata)
			c.logger.Info("started PostgreSQL", "pid", pid, "version", c.version, "data_dir", c.pgdata,
				"socket_dir", c.socketDir, "tcp_port", c.tcpPort, "ephemeral", c.ephemeral)
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("starting PostgreSQL: %w", ctx.Err())
		}
		newLog := readFrom(c.logFile, logOffset)
		stale := c.foreignLockFiles()
		orphans := serverProcessesIn(c.pgdata)
		retry := false
		switch {
		case len(orphans) > 0 && (len(stale) > 0 || strings.Contains(newLog, "pre-existing shared memory block")):
			// Removing a lock file while backends of the old server live
			// would disable PostgreSQL's protection against two servers
			// writing the same data, so wait for them instead.
			if time.Now().Before(deadline) {
				c.logger.Info("waiting for the processes of a killed PostgreSQL server to exit",
					"data_dir", c.pgdata, "pids", orphans)
				retry = true
			}
		case len(stale) > 0 && !removedStale:
			removedStale = true
			retry = c.removeLockFiles(stale)
		}
		if !retry {
			return fmt.Errorf("starting PostgreSQL with pg_ctl: %w\n%s\nlast lines of %s:\n%s",
				err, strings.TrimSpace(out), c.logFile, logTail(c.logFile, logTailLines))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("starting PostgreSQL: %w", ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// lockFile is a PostgreSQL lock file and the pid written in it.
type lockFile struct {
	path string
	pid  int
}

// foreignLockFiles returns postmaster.pid and the socket lock file when they
// name a live process that is not a PostgreSQL process of this cluster. Such
// files are left by a postmaster that was killed, once its pid has been
// reused or while it is a zombie nobody reaped; PostgreSQL cannot tell them
// from a running server's and refuses to start.
func (c *Cluster) foreignLockFiles() []lockFile {
	var stale []lockFile
	for _, path := range []string{
		pidFilePath(c.pgdata),
		filepath.Join(c.socketDir, fmt.Sprintf(".s.PGSQL.%d.lock", c.socketPort)),
	} {
		pid, err := readLockPID(path)
		if err != nil || pid <= 0 {
			continue
		}
		if processExists(pid) && !isPostmasterFor(pid, c.pgdata) {
			stale = append(stale, lockFile{path: path, pid: pid})
		}
	}
	return stale
}

// removeLockFiles deletes the given stale lock files and reports whether it
// deleted any.
func (c *Cluster) removeLockFiles(files []lockFile) bool {
	removed := false
	for _, f := range files {
		c.logger.Warn("removing stale PostgreSQL lock file naming an unrelated process",
			"lock_file", f.path, "pid", f.pid, "zombie", processGone(f.pid))
		if err := os.Remove(f.path); err != nil {
			c.logger.Warn("removing stale PostgreSQL lock file", "lock_file", f.path, "error", err)
			continue
		}
		removed = true
	}
	return removed
}

// readLockPID reads the pid on the first line of a PostgreSQL lock file.
func readLockPID(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return strconv.Atoi(strings.TrimSpace(line))
}

// stopServer stops the server if this cluster's postmaster is running: fast
// shutdown first, immediate shutdown if that fails.
func (c *Cluster) stopServer(ctx context.Context) error {
	state, pid := inspectServer(c.pgdata)
	if state != serverRunning {
		return nil
	}
	out, err := c.pgCtl(ctx, "stop", "-D", c.pgdata, "-m", "fast", "-w", "-t", "60")
	if err == nil {
		c.logger.Info("stopped PostgreSQL", "pid", pid, "data_dir", c.pgdata)
		return nil
	}
	if s, _ := inspectServer(c.pgdata); s != serverRunning {
		return nil
	}
	c.logger.Warn("fast shutdown of PostgreSQL failed; trying immediate shutdown",
		"pid", pid, "error", err, "output", strings.TrimSpace(out))
	ictx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	out2, err2 := c.pgCtl(ictx, "stop", "-D", c.pgdata, "-m", "immediate", "-w", "-t", "30")
	if err2 == nil {
		c.logger.Info("stopped PostgreSQL with immediate shutdown", "pid", pid, "data_dir", c.pgdata)
		return nil
	}
	if s, _ := inspectServer(c.pgdata); s != serverRunning {
		return nil
	}
	return fmt.Errorf("stopping PostgreSQL (pid %d): fast shutdown: %v: %s; immediate shutdown: %w: %s",
		pid, err, strings.TrimSpace(out), err2, strings.TrimSpace(out2))
}

// ensureDatabase creates the Database database unless it exists.
func (c *Cluster) ensureDatabase(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, c.ConnString("postgres"))
	if err != nil {
		return fmt.Errorf("connecting to PostgreSQL to create the %s database: %w", Database, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var exists bool
	err = conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", Database).Scan(&exists)
	if err != nil {
		return fmt.Errorf("looking for the %s database: %w", Database, err)
	}
	if exists {
		return nil
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{Database}.Sanitize()); err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "42P04" { // duplicate_database
			return nil
		}
		return fmt.Errorf("creating the %s database: %w", Database, err)
	}
	c.logger.Info("created database", "database", Database)
	return nil
}

// pgCtl runs pg_ctl and returns its combined output.
func (c *Cluster) pgCtl(ctx context.Context, args ...string) (string, error) {
	out, err := c.command(ctx, c.bins.pgCtl, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("running pg_ctl %s: %w", args[0], err)
	}
	return string(out), nil
}

// command prepares a PostgreSQL program to run as the cluster's user, from the
// data directory (which that user can reach), with an environment cleared of
// PG* variables that could point it at another cluster.
func (c *Cluster) command(ctx context.Context, path string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Dir = c.dataDir
	cmd.WaitDelay = 10 * time.Second
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "PG") || c.switchUser && (k == "HOME" || k == "USER" || k == "LOGNAME") {
			continue
		}
		env = append(env, kv)
	}
	if c.switchUser {
		env = append(env, "HOME="+c.acct.home, "USER="+c.acct.name, "LOGNAME="+c.acct.name)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.acct.credential()}
	}
	cmd.Env = env
	return cmd
}

// shellQuote quotes s for /bin/sh.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// connQuote quotes a value for a keyword/value connection string.
func connQuote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// fileSize returns the size of path, or 0 if it cannot be read.
func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// readFrom returns what was appended to path after offset, at most 64 KiB.
func readFrom(path string, offset int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return ""
	}
	b, _ := io.ReadAll(io.LimitReader(f, 64<<10))
	return string(b)
}

// logTail returns the last n lines of path, reading at most its last 64 KiB.
func logTail(path string, n int) string {
	size := fileSize(path)
	text := readFrom(path, max(0, size-64<<10))
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
