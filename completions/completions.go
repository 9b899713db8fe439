// Package completions holds evt's shell completion scripts, generated from
// the command tree and committed so that packagers and users can install
// them without running evt:
//
//	evt.bash  bash (bash-completion v2)
//	evt.zsh   zsh
//	evt.fish  fish
//	evt.ps1   PowerShell
//
// Each is what `evt completion SHELL` prints. The scripts are thin: on TAB
// they run the hidden `evt __complete` command, which completes commands,
// flags, enum values and, from the store (read-only, never creating one),
// stream names, group names, event types and fold spec names.
//
// TestCompletionsFresh in ../cmd fails when a script no longer matches the
// command tree; `go generate ./completions` rewrites them.
package completions

//go:generate go test ../cmd -run TestCompletionsFresh -update-completions
