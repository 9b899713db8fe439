package log

import "context"

// The commit point. An append is cancellable until the store begins the
// step that commits it (for a store of files, the write that ends the
// batch: recovery adopts a complete batch even if its writer dies before
// publishing it); from then on it runs to its end whatever ctx says, so a
// caller that was interrupted still learns that its batch is stored. A
// caller that must not be stopped past that point (evt, which lets an
// interrupt kill an append until then) attaches a hook with
// WithCommitHook.

type commitHookKey struct{}

// WithCommitHook returns a copy of ctx carrying f, which a store calls
// once per append that reaches its commit point, just before that point,
// on the appending goroutine. The append commits after f returns.
func WithCommitHook(ctx context.Context, f func()) context.Context {
	return context.WithValue(ctx, commitHookKey{}, f)
}

// Committing is what a store calls just before an append's commit point:
// it runs the hook ctx carries, if any. From that point the store
// ignores ctx for this append.
func Committing(ctx context.Context) {
	if f, ok := ctx.Value(commitHookKey{}).(func()); ok && f != nil {
		f()
	}
}
