package codec

import (
	"fmt"
	"path"
	"strings"
)

// Selection picks streams: one stream by name, a glob (account-*, *),
// every stream, or a union of such selections (several SELECTION
// arguments). It is the one parser of the SELECTION argument.
type Selection struct {
	pattern string // "" selects everything (unless parts is set)
	glob    bool
	// parts, when set (two or more), makes the selection the union of
	// these, none of them a union or every stream.
	parts []Selection
}

// Union is the selection that picks every stream any of sels picks. A
// union with every stream in it is every stream; one selection alone is
// itself; repeated selections count once.
func Union(sels ...Selection) Selection {
	var parts []Selection
	for _, s := range sels {
		for _, p := range s.Parts() {
			if p.All() {
				return Selection{}
			}
			dup := false
			for _, q := range parts {
				dup = dup || q.pattern == p.pattern && q.glob == p.glob
			}
			if !dup {
				parts = append(parts, p)
			}
		}
	}
	switch len(parts) {
	case 0:
		return Selection{}
	case 1:
		return parts[0]
	}
	return Selection{parts: parts}
}

// Parts returns the selections a union is made of, in the order given,
// or the selection alone when it is no union. A store that reads a
// union efficiently (one stream at a time) looks at them; Match and
// Stream already answer for the whole union.
func (s Selection) Parts() []Selection {
	if s.parts != nil {
		return s.parts
	}
	return []Selection{s}
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
func (s Selection) Stream() (string, bool) {
	return s.pattern, s.pattern != "" && !s.glob && s.parts == nil
}

// All reports whether the selection picks every stream.
func (s Selection) All() bool { return s.pattern == "" && s.parts == nil }

// String is the selection as the user wrote it ("*" for all); a union is
// its parts separated by spaces.
func (s Selection) String() string {
	if s.parts != nil {
		names := make([]string, len(s.parts))
		for i, p := range s.parts {
			names[i] = p.String()
		}
		return strings.Join(names, " ")
	}
	if s.pattern == "" {
		return "*"
	}
	return s.pattern
}

// Match reports whether the stream name is selected. In a glob, * matches
// any run of characters, '/' included (stream names are not paths).
func (s Selection) Match(name string) bool {
	switch {
	case s.parts != nil:
		for _, p := range s.parts {
			if p.Match(name) {
				return true
			}
		}
		return false
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

// Prefix returns a string every stream the selection picks starts with:
// the part of a glob before its first special character, the name of a
// single stream, the longest common start of a union's parts, and ""
// for every stream. A store with a name index (log.StreamNamer) looks up
// only the names with this prefix instead of reading every head.
func (s Selection) Prefix() string {
	if s.parts != nil {
		p := s.parts[0].Prefix()
		for _, q := range s.parts[1:] {
			qp := q.Prefix()
			n := 0
			for n < len(p) && n < len(qp) && p[n] == qp[n] {
				n++
			}
			p = p[:n]
		}
		return p
	}
	if !s.glob {
		return s.pattern
	}
	if i := strings.IndexAny(s.pattern, `*?[\`); i >= 0 {
		return s.pattern[:i]
	}
	return s.pattern
}
