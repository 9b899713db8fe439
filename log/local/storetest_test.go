package local_test

import (
	"testing"

	"github.com/evtdev/evt/log"
	"github.com/evtdev/evt/log/local"
	"github.com/evtdev/evt/log/storetest"
)

// TestConformance runs the store conformance suite on the local store, a
// fresh directory per case; another handle is a second Open of it, as a
// second process would make.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) (log.Store, func(t *testing.T) log.Store) {
		dir := t.TempDir()
		open := func(t *testing.T) log.Store {
			t.Helper()
			s, err := local.Open(dir, local.Options{Create: true})
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
		return open(t), open
	})
}
