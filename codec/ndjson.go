package codec

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// DefaultMaxLine is the line limit NewLineReader uses when given none: far
// above any sane event, far below what would hurt to hold in memory.
const DefaultMaxLine = 1 << 20

// ErrLineTooLong is matched (errors.Is) by the error of a line over the
// limit.
var ErrLineTooLong = errors.New("codec: line too long")

// LineError is an error about one input line; the number lets a user find
// it in a file of a million events.
type LineError struct {
	Line int // 1-based, counting blank lines too
	Err  error
}

func (e *LineError) Error() string { return fmt.Sprintf("line %d: %v", e.Line, e.Err) }

// Unwrap exposes the cause to errors.Is and errors.As.
func (e *LineError) Unwrap() error { return e.Err }

// tooLongError says a line was over the limit, with the limit in the
// message and ErrLineTooLong for errors.Is.
type tooLongError struct{ max int }

func (e tooLongError) Error() string { return fmt.Sprintf("longer than %d bytes", e.max) }
func (e tooLongError) Unwrap() error { return ErrLineTooLong }

// LineReader splits NDJSON input into lines. It is the one place that
// decides what a line is, so every command reading events from stdin
// numbers lines the same way:
//
//   - A line ends at "\n"; one "\r" before it is dropped too ("\r\n" files
//     from Windows). The last line needs no "\n".
//   - Lines that are empty or only JSON whitespace (space, tab, "\r") are
//     skipped, but counted.
//   - A line longer than the limit is an error, and is never held in
//     memory whole: the reader keeps at most the limit and discards the
//     rest up to the next "\n".
type LineReader struct {
	br     *bufio.Reader
	max    int
	lineNo int    // lines read so far, including blank and failed ones
	long   []byte // assembles lines longer than br's buffer
	err    error  // sticky: io.EOF or the underlying reader's error
}

// NewLineReader returns a reader of the lines of r, each at most maxLine
// bytes without its line ending (maxLine <= 0 means DefaultMaxLine).
func NewLineReader(r io.Reader, maxLine int) *LineReader {
	if maxLine <= 0 {
		maxLine = DefaultMaxLine
	}
	// 64 KiB holds hundreds of typical lines, so nearly every line is
	// returned straight from bufio's buffer without a copy. A smaller
	// limit needs no bigger buffer than the longest acceptable line plus
	// "\r\n" (bufio rounds tiny sizes up to 16).
	size := 64 << 10
	if maxLine+2 < size {
		size = maxLine + 2
	}
	return &LineReader{br: bufio.NewReaderSize(r, size), max: maxLine}
}

// Next returns the next non-blank line without its line ending and its
// 1-based number. The slice is only valid until the next call.
//
// At the end of input it returns io.EOF. A line over the limit yields a
// *LineError (matching ErrLineTooLong) with that line's number; the reader
// has then skipped it, and Next may be called again for the following
// line. An error of the underlying reader is returned as it is, and again
// by every later call.
func (r *LineReader) Next() (line []byte, lineNo int, err error) {
	for {
		if r.err != nil {
			return nil, r.lineNo, r.err
		}
		line, tooLong, err := r.readLine()
		if err != nil {
			// io.EOF here means no byte was left: a last line without
			// "\n" was returned by readLine with a nil error.
			r.err = err
			return nil, r.lineNo, err
		}
		r.lineNo++
		if tooLong {
			return nil, r.lineNo, &LineError{Line: r.lineNo, Err: tooLongError{r.max}}
		}
		if !isBlankLine(line) {
			return line, r.lineNo, nil
		}
	}
}

// readLine reads through the next "\n" or to the end of input and returns
// the line without "\n" or "\r\n". tooLong reports that the line was over
// the limit (and line is then nil). err is io.EOF only when the input had
// no byte left at all.
func (r *LineReader) readLine() (line []byte, tooLong bool, err error) {
	frag, err := r.br.ReadSlice('\n')
	if err == nil || (err == io.EOF && len(frag) > 0) {
		// Fast path: the whole line sits in bufio's buffer.
		return r.trim(frag)
	}
	if err != bufio.ErrBufferFull {
		return nil, false, err // io.EOF with nothing read, or a read error
	}

	// Slow path: longer than bufio's buffer. Collect up to max+2 bytes
	// (the line and its "\r\n"); past that, only look for the "\n".
	r.long = r.long[:0]
	for {
		if !tooLong && len(r.long)+len(frag) <= r.max+2 {
			r.long = append(r.long, frag...)
		} else {
			tooLong = true
		}
		if err != bufio.ErrBufferFull {
			break
		}
		frag, err = r.br.ReadSlice('\n')
	}
	if err != nil && err != io.EOF {
		return nil, false, err
	}
	if tooLong {
		return nil, true, nil
	}
	return r.trim(r.long)
}

// trim drops the line ending and checks the limit.
func (r *LineReader) trim(b []byte) (line []byte, tooLong bool, err error) {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
	}
	if n := len(b); n > 0 && b[n-1] == '\r' {
		b = b[:n-1]
	}
	if len(b) > r.max {
		return nil, true, nil
	}
	return b, false, nil
}

// isBlankLine: empty or only JSON whitespace. "\n" cannot occur inside a line.
func isBlankLine(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' && c != '\r' {
			return false
		}
	}
	return true
}
