package log

import (
	"fmt"
	"strconv"
)

// ExpectKind is the kind of an expected-version check.
type ExpectKind int

const (
	ExpectAny     ExpectKind = iota // no check
	ExpectNone                      // the stream must not exist (version 0)
	ExpectExists                    // the stream must exist
	ExpectVersion                   // the stream must be at exactly Version
)

// Expectation is an optimistic concurrency check on one stream.
type Expectation struct {
	Kind    ExpectKind
	Version uint64
}

// ParseExpectation reads any, none, exists or a version number.
func ParseExpectation(s string) (Expectation, error) {
	switch s {
	case "any", "":
		return Expectation{Kind: ExpectAny}, nil
	case "none":
		return Expectation{Kind: ExpectNone}, nil
	case "exists":
		return Expectation{Kind: ExpectExists}, nil
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return Expectation{}, fmt.Errorf("invalid expectation %q (want any, none, exists or a version number)", s)
	}
	if v == 0 {
		return Expectation{Kind: ExpectNone}, nil
	}
	return Expectation{Kind: ExpectVersion, Version: v}, nil
}

// Holds reports whether a stream at version passes the check.
func (e Expectation) Holds(version uint64) bool {
	switch e.Kind {
	case ExpectNone:
		return version == 0
	case ExpectExists:
		return version > 0
	case ExpectVersion:
		return version == e.Version
	}
	return true
}

func (e Expectation) String() string {
	switch e.Kind {
	case ExpectNone:
		return "none (version 0)"
	case ExpectExists:
		return "exists"
	case ExpectVersion:
		return strconv.FormatUint(e.Version, 10)
	}
	return "any"
}
