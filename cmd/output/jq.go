package output

import (
	"context"
	"fmt"
	"time"

	"github.com/itchyny/gojq"
)

// JQ is a jq expression (gojq), compiled once and run on every document a
// command prints (--jq).
type JQ struct {
	code *gojq.Code
}

// jqTimeout stops an expression that never ends (`repeat(.)`), so --jq
// cannot hang a command.
const jqTimeout = 10 * time.Second

// CompileJQ parses and compiles expr.
func CompileJQ(expr string) (*JQ, error) {
	q, err := gojq.Parse(expr)
	if err != nil {
		return nil, fmt.Errorf("invalid jq expression: %w", err)
	}
	code, err := gojq.Compile(q)
	if err != nil {
		return nil, fmt.Errorf("invalid jq expression: %w", err)
	}
	return &JQ{code: code}, nil
}

// Run applies the expression to v, a document decoded by
// codec.DecodeJSON, and calls emit for every result.
func (j *JQ) Run(v any, emit func(v any) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), jqTimeout)
	defer cancel()
	iter := j.code.RunWithContext(ctx, v)
	for {
		out, ok := iter.Next()
		if !ok {
			return nil
		}
		if err, ok := out.(error); ok {
			if ctx.Err() != nil {
				return fmt.Errorf("jq: gave up after %s", jqTimeout)
			}
			return fmt.Errorf("jq: %w", err)
		}
		if err := emit(out); err != nil {
			return err
		}
	}
}
