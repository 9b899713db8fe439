package cmd

import (
	"testing"

	"github.com/spf13/pflag"
)

// TestValuedGlobalFlags checks commandWord's list against the command
// tree: every persistent flag of the root that takes a value, by each of
// its names, and nothing else.
func TestValuedGlobalFlags(t *testing.T) {
	root := newRootCmd(System())
	want := map[string]bool{}
	root.PersistentFlags().VisitAll(func(f *pflag.Flag) {
		if f.NoOptDefVal != "" || f.Value.Type() == "bool" {
			return
		}
		want["--"+f.Name] = true
		if f.Shorthand != "" {
			want["-"+f.Shorthand] = true
		}
	})
	for name := range want {
		if !valuedGlobalFlags[name] {
			t.Errorf("valuedGlobalFlags lacks %s", name)
		}
	}
	for name := range valuedGlobalFlags {
		if !want[name] {
			t.Errorf("valuedGlobalFlags has %s, which is no valued persistent flag", name)
		}
	}
}

func TestCommandWord(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{nil, ""},
		{[]string{"append", "s", "T"}, "append"},
		{[]string{"--dir", "append", "tail"}, "tail"},
		{[]string{"--dir=d", "append"}, "append"},
		{[]string{"-o", "json", "--jq", ".x", "append"}, "append"},
		{[]string{"-ojson", "append"}, "append"},
		{[]string{"--lock-timeout", "1s", "--sync", "none", "--segment-size", "9", "--config", "c", "import"}, "import"},
		{[]string{"--version"}, ""},
		{[]string{"-h", "append"}, "append"},
		{[]string{"--", "append"}, ""},
		{[]string{"tail", "append"}, "tail"},
	}
	for _, tt := range tests {
		if got := commandWord(tt.args); got != tt.want {
			t.Errorf("commandWord(%q) = %q, want %q", tt.args, got, tt.want)
		}
	}
}
