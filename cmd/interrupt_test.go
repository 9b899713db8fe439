package cmd

import "testing"

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
		{[]string{"--store", "nats://h:4222", "--nats-timeout=1s", "append"}, "append"},
		{[]string{"tail", "append"}, "tail"},
	}
	for _, tt := range tests {
		if got := commandWord(tt.args); got != tt.want {
			t.Errorf("commandWord(%q) = %q, want %q", tt.args, got, tt.want)
		}
	}
}
