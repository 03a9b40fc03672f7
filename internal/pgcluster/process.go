package pgcluster

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// serverState classifies what postmaster.pid says about a data directory.
type serverState int

const (
	// serverAbsent: there is no postmaster.pid, so no server runs.
	serverAbsent serverState = iota
	// serverStale: postmaster.pid names a process that no longer exists,
	// typically after the postmaster was killed; PostgreSQL removes such a
	// file on its own when it starts.
	serverStale
	// serverRunning: postmaster.pid names a live postmaster serving this data
	// directory.
	serverRunning
	// serverForeign: postmaster.pid names a live process that is not this data
	// directory's postmaster, typically because the pid was reused after the
	// postmaster died. PostgreSQL refuses to start while that process lives.
	serverForeign
)

// pidFilePath is where the postmaster records its pid in the data directory.
func pidFilePath(pgdata string) string {
	return filepath.Join(pgdata, "postmaster.pid")
}

// readPostmasterPID returns the pid on the first line of postmaster.pid, or
// 0 when the file does not exist.
func readPostmasterPID(pgdata string) (int, error) {
	f, err := os.Open(pidFilePath(pgdata))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer f.Close()
	line, err := bufio.NewReader(f).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || pid <= 0 {
		// An empty or torn file: the postmaster died while writing it.
		return 0, fmt.Errorf("postmaster.pid in %s does not start with a pid: %q", pgdata, line)
	}
	return pid, nil
}

// inspectServer reads postmaster.pid and classifies the process it names.
// An unreadable or malformed file counts as stale, with pid 0.
func inspectServer(pgdata string) (serverState, int) {
	if _, err := os.Stat(pidFilePath(pgdata)); errors.Is(err, os.ErrNotExist) {
		return serverAbsent, 0
	}
	pid, err := readPostmasterPID(pgdata)
	if err != nil || pid == 0 {
		return serverStale, 0
	}
	return classifyPID(pid, pgdata), pid
}

// classifyPID decides whether pid is this data directory's live postmaster.
func classifyPID(pid int, pgdata string) serverState {
	if !processExists(pid) {
		return serverStale
	}
	if isPostmasterFor(pid, pgdata) {
		return serverRunning
	}
	return serverForeign
}

// processExists reports whether a process with this pid exists, the way
// PostgreSQL itself judges it: a signal-0 probe that succeeds or is refused
// for lack of permission means the process is there. Zombies count as
// existing, because PostgreSQL's lock-file check sees them too.
func processExists(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// procAvailable reports whether /proc describes processes, which is how
// Flightdeck tells its postmaster apart from an unrelated process that
// inherited the pid.
func procAvailable() bool {
	_, err := os.Stat("/proc/self/exe")
	return err == nil
}

// isPostmasterFor reports whether pid is a postgres process whose working
// directory is pgdata: the postmaster changes into its data directory, and
// its backends inherit that. When
// /proc is not available the answer cannot be checked and is yes, which
// errs towards never deleting a live server's pid file.
func isPostmasterFor(pid int, pgdata string) bool {
	if !procAvailable() {
		return true
	}
	proc := filepath.Join("/proc", strconv.Itoa(pid))
	exe, err := os.Readlink(filepath.Join(proc, "exe"))
	if err != nil {
		// Processes of other users and zombies hide their executable.
		return false
	}
	// After a package upgrade the running binary shows as "(deleted)".
	exe = strings.TrimSuffix(exe, " (deleted)")
	if name := filepath.Base(exe); name != "postgres" && name != "postmaster" {
		return false
	}
	cwd, err := os.Stat(filepath.Join(proc, "cwd"))
	if err != nil {
		return false
	}
	data, err := os.Stat(pgdata)
	if err != nil {
		return false
	}
	return os.SameFile(cwd, data)
}

// processGone reports whether pid has exited: it no longer exists or is a
// zombie that its parent has not reaped yet.
func processGone(pid int) bool {
	if !processExists(pid) {
		return true
	}
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return errors.Is(err, os.ErrNotExist)
	}
	// The state follows the parenthesised command name, which may itself
	// contain parentheses, so look after the last one.
	s := string(stat)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] == 'Z' || s[i+2] == 'X'
	}
	return false
}

// serverProcessesIn lists the live PostgreSQL processes working in pgdata,
// such as backends that outlive a killed postmaster for a moment. Without
// /proc it finds none.
func serverProcessesIn(pgdata string) []int {
	if !procAvailable() {
		return nil
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if isPostmasterFor(pid, pgdata) && !processGone(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}
