package cmd

import (
	"encoding/json"
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// version, when set at link time (-ldflags "-X
// github.com/evtdev/evt/cmd.version=v1.2.3"), wins over the build info.
var version string

// versionInfo is what `evt version -o json` prints.
type versionInfo struct {
	Version string `json:"version"`
	Go      string `json:"go"`
	OS      string `json:"os"`
	Arch    string `json:"arch"`
	Commit  string `json:"commit"` // full VCS revision, "" if unknown
}

func newVersionCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print evt's version",
		Long: `Print evt's version, the Go release it was built with, and its OS and
architecture. The version is the release tag, else the commit it was
built from (with -dirty if the tree had changes), else devel. Any -o
prints {"version","go","os","arch","commit"} in that format.`,
		Example: `  evt version
  evt version -o json --jq .version`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			return runVersion(g, readVersion())
		},
	}
}

// versionLine is the one line `evt version` and `evt --version` print.
func versionLine(v versionInfo) string {
	return fmt.Sprintf("evt %s (%s, %s/%s)", v.Version, v.Go, v.OS, v.Arch)
}

// addVersionFlag gives the root `--version`, printing what `evt version`
// prints. cobra handles the flag before any config is read, as it does
// --help, so a broken config file cannot hide the version; the text is
// made only when asked for (reading the build info costs every process).
func addVersionFlag(root *cobra.Command) {
	root.Version = "see versionLine" // any text: it switches cobra's handling on
	root.Flags().Bool("version", false, "print evt's version (what evt version prints)")
	cobra.AddTemplateFunc("evtVersionLine", func() string { return versionLine(readVersion()) })
	root.SetVersionTemplate("{{evtVersionLine}}\n")
}

// runVersion prints one line by default; any -o prints the versionInfo
// document in that format.
func runVersion(g *globalOptions, v versionInfo) error {
	if g.Output == "" {
		_, err := fmt.Fprintln(g.IO.Out, versionLine(v))
		return err
	}
	p, err := g.printer()
	if err != nil {
		return err
	}
	doc, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if err := p.JSON(doc); err != nil {
		return err
	}
	return p.Flush()
}

// readVersion works out the version from the build: the link-time version,
// else the module version (a tag, or a pseudo-version when built with
// `go install module@version`), else the VCS revision that `go build`
// stamps (12 hex digits, "-dirty" when the tree had changes), else "devel".
func readVersion() versionInfo {
	v := versionInfo{Version: version, Go: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		if v.Version == "" {
			v.Version = "devel"
		}
		return v
	}
	var modified bool
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Commit = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	switch {
	case v.Version != "":
	case info.Main.Version != "" && info.Main.Version != "(devel)":
		v.Version = info.Main.Version
	case v.Commit != "":
		v.Version = v.Commit[:min(12, len(v.Commit))]
		if modified {
			v.Version += "-dirty"
		}
	default:
		v.Version = "devel"
	}
	return v
}
