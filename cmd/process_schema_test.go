package cmd

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestSchemaHandoff runs the built binaries: evt checks a schema of the
// quick subset itself, and one outside it (and schema set) by handing the
// command to evt-schema (evt-nats hands on to it for a nats store); a
// store without schemas, or with quick ones only, needs no evt-schema.
func TestSchemaHandoff(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds the binaries")
	}
	bins := builtBinaries(t)
	// lone is evt by itself: no evt-nats, no evt-schema beside it or on
	// $PATH.
	loneDir := t.TempDir()
	lone := filepath.Join(loneDir, "evt")
	data, err := os.ReadFile(bins.evt)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(lone, data, 0o755); err != nil {
		t.Fatal(err)
	}
	schemaFile := filepath.Join(t.TempDir(), "deposited.json")
	if err := os.WriteFile(schemaFile, []byte(`{"type":"object","properties":{"amount":{"type":"number"}}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	// pattern is outside the quick subset.
	patternFile := filepath.Join(t.TempDir(), "tagged.json")
	if err := os.WriteFile(patternFile, []byte(`{"properties":{"tag":{"pattern":"^[a-z]+$"}}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(t *testing.T, bin string, store []string, stdin string, args ...string) (string, int) {
		t.Helper()
		c := exec.Command(bin, append(store, args...)...)
		c.Env = []string{"PATH=" + t.TempDir(), "HOME=" + t.TempDir()}
		c.Stdin = strings.NewReader(stdin)
		out, err := c.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(out), code
	}
	stores := []struct {
		name  string
		store func(t *testing.T) []string
	}{
		{"local", func(t *testing.T) []string { return []string{"--dir", t.TempDir()} }},
		{"nats", func(t *testing.T) []string {
			return []string{"--store", embeddedNats(t).ClientURL() + "/HANDOFF"}
		}},
	}
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			store := st.store(t)
			if st.name == "local" {
				// No schema: evt alone appends, evt-schema is not needed.
				if out, code := run(t, lone, store, "", "append", "account-1", "Deposited", `{"amount":"x"}`); code != 0 {
					t.Fatalf("append without schemas, evt alone: exit %d: %s", code, out)
				}
			}
			if out, code := run(t, bins.evt, store, "", "schema", "set", "Deposited", schemaFile); code != 0 {
				t.Fatalf("schema set: exit %d: %s", code, out)
			}
			out, code := run(t, bins.evt, store, "{\"amount\":1}\n{\"amount\":\"2\"}\n", "append", "account-1", "Deposited")
			if code != 1 || out != "evt: line 2: Deposited data does not match its schema: /amount: got string, want number\n" {
				t.Fatalf("append of a mismatch: exit %d: %q", code, out)
			}
			if out, code := run(t, bins.evt, store, "", "append", "account-1", "Deposited", `{"amount":2}`); code != 0 {
				t.Fatalf("append that matches: exit %d: %s", code, out)
			}
			if st.name == "local" {
				// A quick schema: evt alone checks it.
				out, code := run(t, lone, store, "", "append", "account-1", "Deposited", `{"amount":"3"}`)
				if code != 1 || out != "evt: Deposited data does not match its schema: /amount: got string, want number\n" {
					t.Fatalf("append of a mismatch, evt alone: exit %d: %q", code, out)
				}
			}
			if out, code := run(t, bins.evt, store, "", "schema", "set", "Tagged", patternFile); code != 0 {
				t.Fatalf("schema set: exit %d: %s", code, out)
			}
			out, code = run(t, bins.evt, store, "", "append", "tag-1", "Tagged", `{"tag":"A"}`)
			if code != 1 || out != "evt: Tagged data does not match its schema: /tag: 'A' does not match pattern '^[a-z]+$'\n" {
				t.Fatalf("append of a mismatch: exit %d: %q", code, out)
			}
			if st.name == "local" {
				// A schema outside the subset and no evt-schema:
				// refused, saying what to build, nothing written.
				out, code := run(t, lone, store, "", "append", "account-1", "Deposited", `{"amount":3}`)
				if code != 1 || !strings.Contains(out, "has JSON Schemas, which need evt-schema beside evt or on $PATH: build it with") {
					t.Fatalf("append with a schema, evt alone: exit %d: %s", code, out)
				}
				// ls, show and rm need no evt-schema.
				if out, code := run(t, lone, store, "", "schema", "ls"); code != 0 || out != "Deposited\t-\nTagged\t-\n" {
					t.Fatalf("schema ls, evt alone: exit %d: %q", code, out)
				}
			}
			out, code = run(t, bins.evt, store, "", "tail", "account-1", "-o", "template={{.data.amount}}")
			want := "2\n"
			if st.name == "local" {
				want = "x\n2\n"
			}
			if code != 0 || out != want {
				t.Fatalf("tail: exit %d: %q, want %q", code, out, want)
			}
		})
	}
}
