package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// ErrNoBinaries is returned by Start when the PostgreSQL server programs
// (initdb, pg_ctl and postgres) cannot be found. It is a sentinel so that the
// Flightdeck server can recognise the situation with errors.Is and explain the
// two ways out to the operator: install the server, or point Flightdeck at an
// existing database instead of running a private one.
var ErrNoBinaries = errors.New("PostgreSQL server programs (initdb, pg_ctl, postgres) not found: " +
	"install the PostgreSQL server (for example Debian's \"postgresql\" package) " +
	"or set DATABASE_URL to use an existing database")

// debianBinGlob matches the per-version program directories of Debian and
// Ubuntu, which do not put the server programs on PATH.
const debianBinGlob = "/usr/lib/postgresql/*/bin"

// serverPrograms are the programs a private cluster needs. They must live in
// one directory because pg_ctl finds postgres next to itself.
var serverPrograms = []string{"initdb", "pg_ctl", "postgres"}

// binaries holds the absolute paths of one installation's server programs.
type binaries struct {
	dir      string
	initdb   string
	pgCtl    string
	postgres string
}

// searchDirs lists the directories to look for server programs in, in order
// of preference: every PATH entry, then the versioned Debian directories.
// Among the latter the version that already owns the data directory comes
// first (so an existing cluster keeps working after a newer major version is
// installed alongside), then the rest from the highest version down.
func searchDirs(pathEnv, versionedGlob, dataVersion string) []string {
	dirs := filepath.SplitList(pathEnv)
	versioned, _ := filepath.Glob(versionedGlob)
	slices.SortFunc(versioned, func(a, b string) int {
		return compareVersions(versionOfBinDir(b), versionOfBinDir(a))
	})
	if dataVersion != "" {
		slices.SortStableFunc(versioned, func(a, b string) int {
			am, bm := versionOfBinDir(a) == dataVersion, versionOfBinDir(b) == dataVersion
			switch {
			case am && !bm:
				return -1
			case bm && !am:
				return 1
			}
			return 0
		})
	}
	return append(dirs, versioned...)
}

// versionOfBinDir returns the version directory name of a ".../<version>/bin"
// path, such as "15".
func versionOfBinDir(dir string) string {
	return filepath.Base(filepath.Dir(dir))
}

// compareVersions orders dotted numeric versions such as "9.6" and "15";
// components that are not numbers sort below numbers.
func compareVersions(a, b string) int {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < max(len(as), len(bs)); i++ {
		ai, bi := -1, -1
		if i < len(as) {
			if n, err := strconv.Atoi(as[i]); err == nil {
				ai = n
			}
		}
		if i < len(bs) {
			if n, err := strconv.Atoi(bs[i]); err == nil {
				bi = n
			}
		}
		if ai != bi {
			if ai < bi {
				return -1
			}
			return 1
		}
	}
	return 0
}

// findBinaries returns the first directory that holds all server programs.
// When binDir is set only that directory is considered, so an explicit
// choice is never silently replaced by another installation.
func findBinaries(binDir string, dirs []string) (binaries, error) {
	if binDir != "" {
		dirs = []string{binDir}
	}
	for _, dir := range dirs {
		if dir == "" {
			continue
		}
		// pg_ctl looks for postgres next to the file it really is, so a
		// directory of symbolic links (such as /usr/local/bin) stands for
		// the installation its pg_ctl points into.
		real, err := filepath.EvalSymlinks(filepath.Join(dir, "pg_ctl"))
		if err != nil {
			continue
		}
		abs, err := filepath.Abs(filepath.Dir(real))
		if err != nil || !hasPrograms(dir) || !hasPrograms(abs) {
			continue
		}
		return binaries{
			dir:      abs,
			initdb:   filepath.Join(abs, "initdb"),
			pgCtl:    filepath.Join(abs, "pg_ctl"),
			postgres: filepath.Join(abs, "postgres"),
		}, nil
	}
	if binDir != "" {
		return binaries{}, fmt.Errorf("%w (looked in %s)", ErrNoBinaries, binDir)
	}
	return binaries{}, fmt.Errorf("%w (looked on PATH and in %s)", ErrNoBinaries, debianBinGlob)
}

// hasPrograms reports whether every server program exists in dir as an
// executable regular file.
func hasPrograms(dir string) bool {
	for _, name := range serverPrograms {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
			return false
		}
	}
	return true
}

// versionRE picks the version out of "postgres (PostgreSQL) 15.4 (Debian 15.4-1)".
var versionRE = regexp.MustCompile(`\(PostgreSQL\) (\d+)(?:\.(\d+))?`)

// majorVersion turns the output of "postgres --version" into the major
// version as PG_VERSION spells it: "15" for 15.4, but "9.6" for 9.6.24,
// because before version 10 the major version had two components.
func majorVersion(versionOutput string) (string, error) {
	m := versionRE.FindStringSubmatch(versionOutput)
	if m == nil {
		return "", fmt.Errorf("unrecognised version output %q", strings.TrimSpace(versionOutput))
	}
	if n, _ := strconv.Atoi(m[1]); n < 10 && m[2] != "" {
		return m[1] + "." + m[2], nil
	}
	return m[1], nil
}

// serverVersion asks the postgres program for its major version. The
// version flag is handled before postgres refuses to run as root, so this is
// safe whichever user runs it.
func serverVersion(ctx context.Context, bins binaries) (string, error) {
	out, err := exec.CommandContext(ctx, bins.postgres, "--version").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("running %s --version: %w: %s", bins.postgres, err, strings.TrimSpace(string(out)))
	}
	v, err := majorVersion(string(out))
	if err != nil {
		return "", fmt.Errorf("reading the version of %s: %w", bins.postgres, err)
	}
	return v, nil
}
