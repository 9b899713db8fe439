package natsjs

import "github.com/evtdev/evt/log"

var _ log.Sizer = (*Store)(nil)

// Size is the bytes the server stores for the JetStream stream, from its
// state (log.Sizer); there are no segment files. The KV bucket of
// retention rules, snapshots and group state (a JetStream stream of its
// own, small next to the log) is not counted.
func (s *Store) Size() (log.Size, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	st, err := s.state(ctx)
	if err != nil {
		return log.Size{}, s.wrap("read the stream's size", err)
	}
	return log.Size{Bytes: int64(st.Bytes), Segments: -1}, nil
}
