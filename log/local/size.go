package local

import (
	"errors"
	"io/fs"
	"path/filepath"
	"strings"

	"github.com/evtdev/evt/log"
)

var _ log.Sizer = (*Store)(nil)

// Size adds up the sizes of every file under the store directory and
// counts its segment files (log.Sizer). Files that vanish meanwhile (a
// compaction) are skipped.
func (s *Store) Size() (log.Size, error) {
	var size log.Size
	err := filepath.WalkDir(s.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		} else if err != nil {
			return err
		}
		size.Bytes += info.Size()
		if filepath.Dir(path) == s.dir && strings.HasSuffix(d.Name(), ".seg") {
			size.Segments++
		}
		return nil
	})
	return size, err
}
