package cmd

import (
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var updateGolden = flag.Bool("update-golden", false, "rewrite testdata/golden/ from what the tests print")

// checkGolden compares got with testdata/golden/NAME, or rewrites it with
// -update-golden. Goldens hold what a person sees at a terminal: tables,
// progress bars and help at 40, 80 and 160 columns.
func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join(goldenDir, name)
	if *updateGolden {
		if err := os.MkdirAll(filepath.Dir(path), 0o777); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o666); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./cmd -run %s -update-golden)", err, t.Name())
	}
	if got != string(want) {
		t.Errorf("%s differs (rerun with -update-golden and check the diff):\n got:\n%s\nwant:\n%s", path, got, want)
	}
}

// goldenDir is cmd/testdata/golden, found before a test changes
// directory (isolate).
var goldenDir = func() string {
	wd, err := os.Getwd()
	if err != nil {
		panic(err)
	}
	return filepath.Join(wd, "testdata", "golden")
}()

// terminalWidths are the fake terminals the golden tests draw on.
var terminalWidths = []int{40, 80, 160}
