package pgcluster

import (
	"bufio"
	"bytes"
	"context"
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
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
)

// helperDataDirEnv makes the test binary act as a Flightdeck process that
// starts a cluster and then waits to be killed.
const helperDataDirEnv = "PGCLUSTER_TEST_HELPER_DATA_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(helperDataDirEnv); dir != "" {
		os.Exit(runHelper(dir))
	}
	os.Exit(m.Run())
}

// runHelper starts a cluster in dir, stores a row, reports "ready" on stdout
// and blocks until it is killed, never calling Stop.
func runHelper(dir string) int {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := Start(ctx, Config{DataDir: dir, Ephemeral: true})
	if err != nil {
		_, _ = os.Stderr.WriteString(err.Error() + "\n")
		return 2
	}
	conn, err := pgx.Connect(ctx, c.ConnString(Database))
	if err == nil {
		_, err = conn.Exec(ctx, "CREATE TABLE survivor (v text); INSERT INTO survivor VALUES ('before kill')")
		_ = conn.Close(ctx)
	}
	if err != nil {
		_, _ = os.Stderr.WriteString(err.Error() + "\n")
		return 2
	}
	_, _ = os.Stdout.WriteString("ready\n")
	select {}
}

// requireBinaries skips the test when PostgreSQL is not installed, except in
// CI, where a missing installation must fail the build instead of hiding
// every test behind a skip.
func requireBinaries(t *testing.T) {
	t.Helper()
	_, err := findBinaries("", searchDirs(os.Getenv("PATH"), debianBinGlob, ""))
	if err == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("PostgreSQL server programs are required when CI=true: %v", err)
	}
	t.Skipf("PostgreSQL server programs not installed: %v", err)
}

// newDataDir returns an empty directory for a cluster. When the tests run as
// root PostgreSQL runs as the postgres user, and t.TempDir's parent is mode
// 0700, so both are opened for traversal (not listing).
func newDataDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if os.Geteuid() == 0 {
		require.NoError(t, os.Chmod(filepath.Dir(dir), 0o711))
		require.NoError(t, os.Chmod(dir, 0o711))
	}
	return dir
}

// logBuffer collects log output so tests can check which recovery path ran.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func newLogger(t *testing.T) (*slog.Logger, *logBuffer) {
	buf := &logBuffer{}
	return slog.New(slog.NewTextHandler(io.MultiWriter(t.Output(), buf), nil)), buf
}

// start starts an ephemeral cluster and stops it when the test ends.
func start(t *testing.T, cfg Config) *Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cfg.Ephemeral = true
	if cfg.Logger == nil {
		cfg.Logger, _ = newLogger(t)
	}
	c, err := Start(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(func() {
		require.NoError(t, c.Stop(context.Background()))
	})
	return c
}

func connect(t *testing.T, connString string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, connString)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

func queryString(t *testing.T, conn *pgx.Conn, sql string) string {
	t.Helper()
	var s string
	require.NoError(t, conn.QueryRow(context.Background(), sql).Scan(&s))
	return s
}

func execSQL(t *testing.T, conn *pgx.Conn, sql string) {
	t.Helper()
	_, err := conn.Exec(context.Background(), sql)
	require.NoError(t, err)
}

func postmasterPID(t *testing.T, c *Cluster) int {
	t.Helper()
	pid, err := readPostmasterPID(c.pgdata)
	require.NoError(t, err)
	require.NotZero(t, pid, "postmaster.pid is missing")
	return pid
}

func TestStartStopRestartKeepsData(t *testing.T) {
	requireBinaries(t)
	t.Parallel()
	// A space and a quote exercise the quoting for pg_ctl's shell and for
	// connection strings.
	dir := filepath.Join(newDataDir(t), "it's data")
	// Leftovers of an initdb that was interrupted must not get in the way.
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "pg.initdb", "base"), 0o711))

	c := start(t, Config{DataDir: dir})
	conn := connect(t, c.ConnString(Database))
	var one int
	require.NoError(t, conn.QueryRow(context.Background(), "SELECT 1").Scan(&one))
	require.Equal(t, 1, one)
	require.Equal(t, "", queryString(t, conn, "SHOW listen_addresses"), "TCP must be off when Port is 0")
	require.Equal(t, "0700", queryString(t, conn, "SHOW unix_socket_permissions"))
	require.Equal(t, "200", queryString(t, conn, "SHOW max_connections"))
	require.Equal(t, "off", queryString(t, conn, "SHOW fsync"))
	execSQL(t, conn, "CREATE TABLE marker (v text); INSERT INTO marker VALUES ('kept')")
	require.NoError(t, conn.Close(context.Background()))

	require.Equal(t, filepath.Join(dir, "run"), c.socketDir)
	fi, err := os.Stat(c.socketDir)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o700), fi.Mode().Perm())
	if os.Geteuid() == 0 {
		acct, switchUser, err := lookupServerAccount()
		require.NoError(t, err)
		require.True(t, switchUser)
		for _, p := range []string{c.pgdata, c.socketDir, c.logFile} {
			fi, err := os.Stat(p)
			require.NoError(t, err)
			require.Equal(t, acct.uid, fi.Sys().(*syscall.Stat_t).Uid, "%s must belong to the postgres user", p)
		}
	}

	require.NoError(t, c.Stop(context.Background()))
	_, err = os.Stat(pidFilePath(c.pgdata))
	require.ErrorIs(t, err, os.ErrNotExist, "the server must be gone after Stop")

	c2 := start(t, Config{DataDir: dir})
	conn2 := connect(t, c2.ConnString(Database))
	require.Equal(t, "kept", queryString(t, conn2, "SELECT v FROM marker"))
}

func TestStopTwiceIsSafe(t *testing.T) {
	requireBinaries(t)
	t.Parallel()
	c := start(t, Config{DataDir: newDataDir(t)})
	require.NoError(t, c.Stop(context.Background()))
	require.NoError(t, c.Stop(context.Background()))
}

func TestTCPPort(t *testing.T) {
	requireBinaries(t)
	t.Parallel()
	port, err := FreePort()
	require.NoError(t, err)
	c := start(t, Config{DataDir: newDataDir(t), Port: port})

	conn := connect(t, fmt.Sprintf("host=127.0.0.1 port=%d user=flightdeck dbname=flightdeck sslmode=disable", port))
	require.Equal(t, "127.0.0.1", queryString(t, conn, "SHOW listen_addresses"))
	require.Equal(t, "flightdeck", queryString(t, conn, "SELECT current_database()"))

	// The socket keeps working, numbered after the TCP port.
	conn2 := connect(t, c.ConnString(Database))
	require.Equal(t, strconv.Itoa(port), queryString(t, conn2, "SHOW port"))
}

func TestReusesServerAfterFlightdeckKilled(t *testing.T) {
	requireBinaries(t)
	t.Parallel()
	dir := newDataDir(t)

	// A separate process plays Flightdeck: it starts the cluster and is
	// killed with SIGKILL, so Stop never runs.
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperDataDirEnv+"="+dir)
	var stderr logBuffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	line, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(t, err, "helper output: %s", stderr.String())
	require.Equal(t, "ready\n", line)
	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	_ = cmd.Wait()

	pgdata := filepath.Join(dir, "pg")
	state, oldPID := inspectServer(pgdata)
	require.Equal(t, serverRunning, state, "the postmaster must survive its starter")

	logger, logs := newLogger(t)
	c := start(t, Config{DataDir: dir, Logger: logger})
	require.Contains(t, logs.String(), "reusing the PostgreSQL server")
	require.Equal(t, oldPID, postmasterPID(t, c))

	conn := connect(t, c.ConnString(Database))
	require.Equal(t, "before kill", queryString(t, conn, "SELECT v FROM survivor"))
	require.NoError(t, conn.Close(context.Background()))

	require.NoError(t, c.Stop(context.Background()))
	require.Eventually(t, func() bool { return processGone(oldPID) }, 30*time.Second, 50*time.Millisecond)
}

func TestRestartsLeftoverServerWithOtherSettings(t *testing.T) {
	requireBinaries(t)
	t.Parallel()
	dir := newDataDir(t)

	// The first cluster is dropped without Stop, as if Flightdeck had died.
	c1 := start(t, Config{DataDir: dir})
	oldPID := postmasterPID(t, c1)

	port, err := FreePort()
	require.NoError(t, err)
	logger, logs := newLogger(t)
	c2 := start(t, Config{DataDir: dir, Port: port, Logger: logger})
	require.Contains(t, logs.String(), "restarting the PostgreSQL server")
	require.NotEqual(t, oldPID, postmasterPID(t, c2))
	conn := connect(t, fmt.Sprintf("host=127.0.0.1 port=%d user=flightdeck dbname=flightdeck sslmode=disable", port))
	require.Equal(t, "127.0.0.1", queryString(t, conn, "SHOW listen_addresses"))
}

func TestRecoversAfterPostmasterKilled(t *testing.T) {
	requireBinaries(t)
	t.Parallel()
	dir := newDataDir(t)

	c := start(t, Config{DataDir: dir})
	conn := connect(t, c.ConnString(Database))
	execSQL(t, conn, "CREATE TABLE marker (v text); INSERT INTO marker VALUES ('committed')")
	require.NoError(t, conn.Close(context.Background()))

	pid := postmasterPID(t, c)
	require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
	require.Eventually(t, func() bool { return processGone(pid) }, 30*time.Second, 20*time.Millisecond)
	_, err := os.Stat(pidFilePath(c.pgdata))
	require.NoError(t, err, "a killed postmaster leaves postmaster.pid behind")

	c2 := start(t, Config{DataDir: dir})
	conn2 := connect(t, c2.ConnString(Database))
	require.Equal(t, "committed", queryString(t, conn2, "SELECT v FROM marker"))
}

func TestRemovesLockFileNamingUnrelatedProcess(t *testing.T) {
	requireBinaries(t)
	t.Parallel()
	dir := newDataDir(t)

	c := start(t, Config{DataDir: dir})
	pidFile, err := os.ReadFile(pidFilePath(c.pgdata))
	require.NoError(t, err)
	require.NoError(t, c.Stop(context.Background()))

	// An unrelated process of the PostgreSQL user now has the pid recorded
	// in postmaster.pid, as after a reboot; PostgreSQL refuses to start then.
	sleeper := exec.Command("sleep", "300")
	if c.switchUser {
		sleeper.SysProcAttr = &syscall.SysProcAttr{Credential: c.acct.credential()}
	}
	require.NoError(t, sleeper.Start())
	t.Cleanup(func() {
		_ = sleeper.Process.Kill()
		_ = sleeper.Wait()
	})
	_, rest, _ := strings.Cut(string(pidFile), "\n")
	require.NoError(t, os.WriteFile(pidFilePath(c.pgdata), []byte(strconv.Itoa(sleeper.Process.Pid)+"\n"+rest), 0o600))
	if c.switchUser {
		require.NoError(t, os.Chown(pidFilePath(c.pgdata), int(c.acct.uid), int(c.acct.gid)))
	}

	logger, logs := newLogger(t)
	c2 := start(t, Config{DataDir: dir, Logger: logger})
	require.Contains(t, logs.String(), "removing stale PostgreSQL lock file")
	require.NotEqual(t, sleeper.Process.Pid, postmasterPID(t, c2))
	require.Nil(t, sleeper.ProcessState, "the unrelated process must be left alone")
	require.NoError(t, syscall.Kill(sleeper.Process.Pid, 0))
	conn := connect(t, c2.ConnString(Database))
	require.Equal(t, "flightdeck", queryString(t, conn, "SELECT current_database()"))
}

func TestLongDataDirUsesTemporarySocketDir(t *testing.T) {
	requireBinaries(t)
	t.Parallel()
	dir := filepath.Join(newDataDir(t), strings.Repeat("d", 60), strings.Repeat("e", 60))
	c := start(t, Config{DataDir: dir})
	require.True(t, c.tmpSocket)
	require.True(t, strings.HasPrefix(c.socketDir, os.TempDir()) || strings.HasPrefix(c.socketDir, "/tmp"), c.socketDir)
	conn := connect(t, c.ConnString(Database))
	require.Equal(t, Database, queryString(t, conn, "SELECT current_database()"))
	require.NoError(t, conn.Close(context.Background()))

	require.NoError(t, c.Stop(context.Background()))
	_, err := os.Stat(c.socketDir)
	require.ErrorIs(t, err, os.ErrNotExist, "Stop removes the temporary socket directory")
}

func TestStartFailureQuotesServerLog(t *testing.T) {
	requireBinaries(t)
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port

	logger, _ := newLogger(t)
	_, err = Start(context.Background(), Config{DataDir: newDataDir(t), Port: port, Ephemeral: true, Logger: logger})
	require.Error(t, err)
	t.Log(err)
	require.Contains(t, err.Error(), "postgres.log")
	require.Contains(t, err.Error(), "could not create any TCP/IP sockets")
}

func TestNoBinaries(t *testing.T) {
	t.Parallel()
	empty := t.TempDir()

	_, err := Start(context.Background(), Config{DataDir: t.TempDir(), BinDir: empty})
	require.ErrorIs(t, err, ErrNoBinaries)
	require.Contains(t, err.Error(), "DATABASE_URL")
	require.Contains(t, err.Error(), `"postgresql" package`)

	// Nothing on PATH and no versioned installation directories.
	_, err = findBinaries("", searchDirs(empty, filepath.Join(empty, "*", "bin"), ""))
	require.ErrorIs(t, err, ErrNoBinaries)
	require.Contains(t, err.Error(), "DATABASE_URL")
}

func TestFindBinariesPrefersDataVersionThenHighest(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	for _, v := range []string{"9.6", "14", "16"} {
		bin := filepath.Join(root, v, "bin")
		require.NoError(t, os.MkdirAll(bin, 0o755))
		for _, p := range serverPrograms {
			require.NoError(t, os.WriteFile(filepath.Join(bin, p), []byte("#!/bin/sh\n"), 0o755))
		}
	}
	glob := filepath.Join(root, "*", "bin")

	bins, err := findBinaries("", searchDirs("", glob, ""))
	require.NoError(t, err)
	require.Equal(t, filepath.Join(root, "16", "bin"), bins.dir)

	bins, err = findBinaries("", searchDirs("", glob, "14"))
	require.NoError(t, err)
	require.Equal(t, filepath.Join(root, "14", "bin"), bins.dir)

	// PATH comes first.
	bins, err = findBinaries("", searchDirs(filepath.Join(root, "9.6", "bin"), glob, "14"))
	require.NoError(t, err)
	require.Equal(t, filepath.Join(root, "9.6", "bin"), bins.dir)
}

func TestMajorVersion(t *testing.T) {
	t.Parallel()
	for out, want := range map[string]string{
		"postgres (PostgreSQL) 15.4 (Debian 15.4-1.pgdg120+1)\n": "15",
		"postgres (PostgreSQL) 17beta1\n":                        "17",
		"postgres (PostgreSQL) 9.6.24\n":                         "9.6",
	} {
		got, err := majorVersion(out)
		require.NoError(t, err)
		require.Equal(t, want, got, out)
	}
	_, err := majorVersion("something else")
	require.Error(t, err)
}

func TestCheckTraverse(t *testing.T) {
	t.Parallel()
	stranger := &account{name: "stranger", uid: 4242, gid: 4242, groups: []uint32{4242}}
	open := t.TempDir()
	require.NoError(t, os.Chmod(filepath.Dir(open), 0o711))
	require.NoError(t, os.Chmod(open, 0o711))
	require.NoError(t, checkTraverse(open, stranger))

	closed := filepath.Join(open, "closed")
	require.NoError(t, os.Mkdir(closed, 0o700))
	require.NoError(t, os.Mkdir(filepath.Join(closed, "data"), 0o755))
	err := checkTraverse(filepath.Join(closed, "data"), stranger)
	require.Error(t, err)
	require.Contains(t, err.Error(), closed)
	require.Contains(t, err.Error(), "--data-dir")
	require.Contains(t, err.Error(), "FLIGHTDECK_DATA_DIR")
}

func TestStartAsRootRejectsUnreachableDataDir(t *testing.T) {
	requireBinaries(t)
	if os.Geteuid() != 0 {
		t.Skip("only root hands PostgreSQL to the postgres user")
	}
	t.Parallel()
	// t.TempDir's parent is private to root.
	dir := filepath.Join(t.TempDir(), "data")
	_, err := Start(context.Background(), Config{DataDir: dir, Ephemeral: true})
	require.Error(t, err)
	require.Contains(t, err.Error(), "--data-dir")
	require.Contains(t, err.Error(), `"postgres" user`)
}

func TestConnStringQuoting(t *testing.T) {
	t.Parallel()
	c := &Cluster{socketDir: `/tmp/it's a \dir`, socketPort: 5432}
	cfg, err := pgconn.ParseConfig(c.ConnString("my db"))
	require.NoError(t, err)
	require.Equal(t, `/tmp/it's a \dir`, cfg.Host)
	require.Equal(t, uint16(5432), cfg.Port)
	require.Equal(t, "my db", cfg.Database)
	require.Equal(t, "flightdeck", cfg.User)
	require.Nil(t, cfg.TLSConfig)
}

func TestShellQuote(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("/bin/sh", "-c", "printf %s "+shellQuote(`a 'b' "c" $d`)).Output()
	require.NoError(t, err)
	require.Equal(t, `a 'b' "c" $d`, string(out))
}
