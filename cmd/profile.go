package cmd

import (
	"os"
	"runtime/pprof"
)

// startProfile writes a CPU profile to $EVT_CPUPROFILE while a command
// runs: how the hot paths are measured (go tool pprof evt FILE). It is an
// environment variable rather than a flag so it stays out of --help.
func startProfile() (stop func()) {
	path := os.Getenv("EVT_CPUPROFILE")
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}
