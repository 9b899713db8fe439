package codec

import (
	"fmt"
	"path"
	"strings"
)

// Selection picks streams: one stream by name, a glob (account-*, *), or
// every stream. It is the one parser of the SELECTION argument.
type Selection struct {
	pattern string // "" selects everything
	glob    bool
}

// ParseSelection reads a SELECTION argument: "" or "*" for every stream,
// a pattern with * ? or [...] for a glob, anything else a stream name.
func ParseSelection(s string) (Selection, error) {
	if s == "" || s == "*" {
		return Selection{}, nil
	}
	if !strings.ContainsAny(s, "*?[]") {
		if err := ValidateStream(s); err != nil {
			return Selection{}, err
		}
		return Selection{pattern: s}, nil
	}
	// A pattern is held to the rules of names, but for its glob
	// characters and a longer limit: a control character could never
	// match, and a NUL would match the '/' that slashless hides.
	if err := validateName(s, 4*MaxStreamLen, ""); err != nil {
		return Selection{}, fmt.Errorf("invalid stream pattern %q: %s", clip(s), err)
	}
	if _, err := path.Match(slashless(s), ""); err != nil {
		return Selection{}, fmt.Errorf("invalid stream pattern %q: %w", clip(s), err)
	}
	return Selection{pattern: s, glob: true}, nil
}

// Stream returns the stream name when the selection is exactly one stream.
func (s Selection) Stream() (string, bool) { return s.pattern, s.pattern != "" && !s.glob }

// All reports whether the selection picks every stream.
func (s Selection) All() bool { return s.pattern == "" }

// String is the selection as the user wrote it ("*" for all).
func (s Selection) String() string {
	if s.pattern == "" {
		return "*"
	}
	return s.pattern
}

// Match reports whether the stream name is selected. In a glob, * matches
// any run of characters, '/' included (stream names are not paths).
func (s Selection) Match(name string) bool {
	switch {
	case s.pattern == "":
		return true
	case !s.glob:
		return name == s.pattern
	}
	ok, _ := path.Match(slashless(s.pattern), slashless(name))
	return ok
}

// slashless hides '/' from path.Match, whose * stops at it. NUL cannot
// occur in a stream name or a valid pattern.
func slashless(s string) string { return strings.ReplaceAll(s, "/", "\x00") }
