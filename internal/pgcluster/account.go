package pgcluster

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// serverUserName is the system account PostgreSQL runs as when Flightdeck is
// started as root, matching what distribution packages create.
const serverUserName = "postgres"

// account is the system user that owns the cluster files and runs initdb,
// pg_ctl and the postmaster.
type account struct {
	name   string
	uid    uint32
	gid    uint32
	groups []uint32 // every group of the account, including gid
	home   string
}

// currentAccount describes the user running Flightdeck, whose file
// permissions apply unchanged.
func currentAccount() *account {
	a := &account{
		uid: uint32(os.Geteuid()),
		gid: uint32(os.Getegid()),
	}
	a.groups = append(a.groups, a.gid)
	if gs, err := os.Getgroups(); err == nil {
		for _, g := range gs {
			a.groups = append(a.groups, uint32(g))
		}
	}
	if u, err := user.Current(); err == nil {
		a.name = u.Username
		a.home = u.HomeDir
	}
	return a
}

// lookupServerAccount returns the account to run PostgreSQL as. PostgreSQL
// refuses to run as root, so when Flightdeck is root the work is handed to
// the postgres system user; otherwise the current user runs everything and
// switchUser is false.
func lookupServerAccount() (acct *account, switchUser bool, err error) {
	if os.Geteuid() != 0 {
		return currentAccount(), false, nil
	}
	u, err := user.Lookup(serverUserName)
	if err != nil {
		var unknown user.UnknownUserError
		if errors.As(err, &unknown) {
			return nil, false, fmt.Errorf("Flightdeck runs as root, and PostgreSQL refuses to run as root, "+
				"but there is no %q system user to run it as: install the PostgreSQL server package "+
				"(which creates that user), run Flightdeck as an unprivileged user, "+
				"or set DATABASE_URL to use an existing database", serverUserName)
		}
		return nil, false, fmt.Errorf("looking up the %q user: %w", serverUserName, err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, false, fmt.Errorf("parsing uid %q of the %q user: %w", u.Uid, serverUserName, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, false, fmt.Errorf("parsing gid %q of the %q user: %w", u.Gid, serverUserName, err)
	}
	acct = &account{name: u.Username, uid: uint32(uid), gid: uint32(gid), home: u.HomeDir}
	acct.groups = append(acct.groups, acct.gid)
	if ids, err := u.GroupIds(); err == nil {
		for _, id := range ids {
			if g, err := strconv.ParseUint(id, 10, 32); err == nil && !slices.Contains(acct.groups, uint32(g)) {
				acct.groups = append(acct.groups, uint32(g))
			}
		}
	}
	return acct, true, nil
}

// inGroup reports whether gid is one of the account's groups.
func (a *account) inGroup(gid uint32) bool {
	return slices.Contains(a.groups, gid)
}

// describe names the account for error messages.
func (a *account) describe() string {
	if a.name != "" {
		return fmt.Sprintf("%q user (uid %d)", a.name, a.uid)
	}
	return fmt.Sprintf("uid %d", a.uid)
}

// credential is the process identity for commands run as the account.
func (a *account) credential() *syscall.Credential {
	return &syscall.Credential{Uid: a.uid, Gid: a.gid, Groups: a.groups}
}

// checkTraverse verifies that the account may search every directory on the
// way to dir (dir included), judging by the owner, group and other execute
// bits. Without that, initdb and the postmaster fail later with a terse
// "permission denied"; this names the directory at fault instead.
func checkTraverse(dir string, a *account) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	paths := []string{abs}
	if resolved, err := filepath.EvalSymlinks(abs); err == nil && resolved != abs {
		paths = append(paths, resolved)
	}
	for _, p := range paths {
		for _, d := range ancestors(p) {
			fi, err := os.Stat(d)
			if err != nil {
				return fmt.Errorf("checking access to %s: %w", d, err)
			}
			st, ok := fi.Sys().(*syscall.Stat_t)
			if !ok {
				continue
			}
			if !canSearch(fi.Mode().Perm(), st.Uid, st.Gid, a) {
				return fmt.Errorf("PostgreSQL runs as the %s, which cannot reach the data directory %s "+
					"because it may not enter %s (mode %04o, owner uid %d, group gid %d): "+
					"choose a data directory it can reach with --data-dir or FLIGHTDECK_DATA_DIR "+
					"(for example under /var/lib/flightdeck), or allow it in with chmod o+x %s",
					a.describe(), abs, d, fi.Mode().Perm(), st.Uid, st.Gid, d)
			}
		}
	}
	return nil
}

// canSearch applies the Unix permission rule for entering a directory: only
// the first matching class of owner, group and others counts.
func canSearch(perm os.FileMode, uid, gid uint32, a *account) bool {
	switch {
	case uid == a.uid:
		return perm&0o100 != 0
	case a.inGroup(gid):
		return perm&0o010 != 0
	default:
		return perm&0o001 != 0
	}
}

// ancestors lists "/" and every directory down to p, in that order.
func ancestors(p string) []string {
	p = filepath.Clean(p)
	out := []string{string(filepath.Separator)}
	cur := ""
	for _, part := range strings.Split(strings.TrimPrefix(p, string(filepath.Separator)), string(filepath.Separator)) {
		if part == "" {
			continue
		}
		cur += string(filepath.Separator) + part
		out = append(out, cur)
	}
	return out
}
