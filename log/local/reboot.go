package local

// rewriteAfterRestart rebuilds a table from its own entries after the
// machine restarted. The tables are mapped files written back page by
// page, and synced only when a segment is sealed; after a power loss
// each page may be of another time than its neighbours. Recovery
// re-applies the active segment's records, which puts every key changed
// since the last seal back at its true values, so lookups are right; but
// the header's count may come from a page of another time than the slots,
// a slot straddling two pages may hold half a key, and a probe chain that
// lost a slot makes the re-application insert its key a second time.
// Copying, for each key, what a lookup returns (the first match, the one
// re-applied) and dropping half keys gives a table whose count and
// entries agree with the log again. Its cost is the table's size, once
// per restart, like the scan catchUp already makes then.
func (h *hashFile) rewriteAfterRestart() (*hashFile, error) {
	n := uint64(0)
	h.each(func(hashKey, []uint64) bool { n++; return true })
	g, err := createHashFile(h.fsys, h.path+".grow", h.k, n)
	if err != nil {
		return nil, err
	}
	vals := make([]uint64, h.k)
	h.each(func(key hashKey, _ []uint64) bool {
		// key.b is never 0 but where the page holding it is older than
		// the one holding key.a; g already has a key inserted twice.
		if key.b != 0 && !g.get(key, vals) {
			h.get(key, vals)
			g.put(key, vals)
		}
		return true
	})
	return h.replaceBy(g)
}
