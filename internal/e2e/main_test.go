package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/flightdeckhq/flightdeck/internal/dbtest"
)

// Binaries built once for every test: the Flightdeck server and the sample
// app, run as processes the way an operator would run them. With
// FLIGHTDECK_E2E_SERVER_BINARY set, the suite checks that server binary (a
// release build, say) instead of building one from this tree.
var (
	serverBinary    string
	sampleAppBinary string
	// binDir holds the binaries built here. dbtest.Main ends the process,
	// so TestMain cannot remove it afterwards; the test that runs the
	// stack removes it when it ends.
	binDir string
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "flightdeck-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	serverBinary = filepath.Join(dir, "flightdeck")
	sampleAppBinary = filepath.Join(dir, "sampleapp")
	builds := map[string]string{"github.com/flightdeckhq/flightdeck/examples/sampleapp": sampleAppBinary}
	if prebuilt := os.Getenv("FLIGHTDECK_E2E_SERVER_BINARY"); prebuilt != "" {
		serverBinary = prebuilt
	} else {
		builds["github.com/flightdeckhq/flightdeck/cmd/server"] = serverBinary
	}
	for pkg, out := range builds {
		if output, err := exec.Command("go", "build", "-o", out, pkg).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "building %s: %v\n%s", pkg, err, output)
			_ = os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	dbtest.Main(m)
}
