package mongostore

import (
	"testing"

	"github.com/espadmin/espadmin/store"
	"github.com/espadmin/espadmin/store/storetest"
	"github.com/espadmin/espadmin/tests/testkit/testsvc/ferretdb"
)

// TestConformance runs the store conformance suite on MongoDB's wire protocol, served by
// FerretDB embedded in the test process. Each open gets a fresh, migrated database.
func TestConformance(t *testing.T) {
	// Hold the shared server for the whole suite, so it is not stopped and started again
	// between groups.
	ferretdb.Start(t)
	t.Run("mongodb", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) store.Store {
			t.Helper()
			return openStore(t, true)
		})
	})
}
