package codec

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

type gotLine struct {
	text string
	no   int
	err  string // the whole error message, "" for a line
}

// readAll drains r, collecting lines and line errors (the reader goes on
// after a too-long line) until io.EOF or another error, which it returns.
func readAllLines(r *LineReader) ([]gotLine, error) {
	var got []gotLine
	for {
		b, no, err := r.Next()
		if err == io.EOF {
			return got, nil
		}
		var le *LineError
		switch {
		case errors.As(err, &le):
			if le.Line != no {
				return got, errors.New("LineError.Line differs from the returned number")
			}
			got = append(got, gotLine{no: no, err: err.Error()})
		case err != nil:
			return got, err
		default:
			got = append(got, gotLine{text: string(b), no: no})
		}
	}
}

func TestLineReader(t *testing.T) {
	for _, tt := range []struct {
		name string
		in   string
		max  int
		want []gotLine
	}{
		{name: "empty input", in: "", want: nil},
		{name: "one line", in: "{}\n", want: []gotLine{{text: "{}", no: 1}}},
		{name: "no final newline", in: "a\nb", want: []gotLine{{text: "a", no: 1}, {text: "b", no: 2}}},
		{name: "CRLF", in: "a\r\nb\r\n", want: []gotLine{{text: "a", no: 1}, {text: "b", no: 2}}},
		{name: "CR at the very end", in: "a\r", want: []gotLine{{text: "a", no: 1}}},
		{name: "only one CR is dropped", in: "a\r\r\n", want: []gotLine{{text: "a\r", no: 1}}},
		{name: "CR inside a line is kept", in: "a\rb\n", want: []gotLine{{text: "a\rb", no: 1}}},
		{name: "blank lines counted", in: "\n\na\n\r\n \t \nb\n\n", want: []gotLine{{text: "a", no: 3}, {text: "b", no: 6}}},
		{name: "only blank lines", in: "\n \n\t\r\n", want: nil},
		{name: "surrounding spaces kept", in: "  {} \n", want: []gotLine{{text: "  {} ", no: 1}}},
		{name: "form feed is not blank", in: "\f\n", want: []gotLine{{text: "\f", no: 1}}},
		{name: "at the limit", in: "abcd\nabcd\r\n", max: 4, want: []gotLine{{text: "abcd", no: 1}, {text: "abcd", no: 2}}},
		{
			name: "over the limit",
			in:   "ab\nabcde\nxy\nabcdefghijklmnopqrstuvwxyz0123456789\r\nlast",
			max:  4,
			want: []gotLine{
				{text: "ab", no: 1},
				{no: 2, err: "line 2: longer than 4 bytes"},
				{text: "xy", no: 3},
				{no: 4, err: "line 4: longer than 4 bytes"},
				{text: "last", no: 5},
			},
		},
		{name: "long last line", in: "abcdefghijklmnopqrstuvwxyz", max: 4, want: []gotLine{{no: 1, err: "line 1: longer than 4 bytes"}}},
		{name: "long blank line is still too long", in: strings.Repeat(" ", 40) + "\n{}", max: 4, want: []gotLine{{no: 1, err: "line 1: longer than 4 bytes"}, {text: "{}", no: 2}}},
		{
			// Longer than bufio's 64 KiB buffer but within the limit:
			// the slow path assembles it.
			name: "longer than the buffer",
			in:   "a\n" + strings.Repeat("x", 200<<10) + "\r\nb",
			want: []gotLine{{text: "a", no: 1}, {text: strings.Repeat("x", 200<<10), no: 2}, {text: "b", no: 3}},
		},
		{
			name: "default limit",
			in:   strings.Repeat("x", DefaultMaxLine) + "\n" + strings.Repeat("y", DefaultMaxLine+1) + "\nz",
			want: []gotLine{{text: strings.Repeat("x", DefaultMaxLine), no: 1}, {no: 2, err: "line 2: longer than 1048576 bytes"}, {text: "z", no: 3}},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for _, reader := range []struct {
				name string
				wrap func(io.Reader) io.Reader
			}{
				{"whole", func(r io.Reader) io.Reader { return r }},
				{"one byte", iotest.OneByteReader},
				{"data with EOF", iotest.DataErrReader},
			} {
				got, err := readAllLines(NewLineReader(reader.wrap(strings.NewReader(tt.in)), tt.max))
				if err != nil {
					t.Fatalf("%s: %v", reader.name, err)
				}
				if !equalLines(got, tt.want) {
					t.Errorf("%s: got %s\nwant %s", reader.name, showLines(got), showLines(tt.want))
				}
			}
		})
	}
}

func equalLines(a, b []gotLine) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func showLines(ls []gotLine) string {
	var b strings.Builder
	for _, l := range ls {
		t := l.text
		if len(t) > 20 {
			t = t[:20] + "…"
		}
		if l.err != "" {
			fmt.Fprintf(&b, "\n\t%s", l.err)
		} else {
			fmt.Fprintf(&b, "\n\tline %d: %q", l.no, t)
		}
	}
	return b.String()
}

func TestLineReaderErrors(t *testing.T) {
	boom := errors.New("boom")
	t.Run("read error is sticky", func(t *testing.T) {
		r := NewLineReader(io.MultiReader(strings.NewReader("a\npartial"), iotest.ErrReader(boom)), 0)
		if b, no, err := r.Next(); err != nil || string(b) != "a" || no != 1 {
			t.Fatalf("Next = %q, %d, %v", b, no, err)
		}
		for range 2 {
			// The partial line before the error is not a line.
			if b, _, err := r.Next(); err != boom || b != nil {
				t.Fatalf("Next = %q, %v, want boom", b, err)
			}
		}
	})
	t.Run("EOF is sticky", func(t *testing.T) {
		r := NewLineReader(strings.NewReader("a"), 0)
		r.Next()
		for range 2 {
			if _, no, err := r.Next(); err != io.EOF || no != 1 {
				t.Fatalf("Next = %d, %v, want 1, io.EOF", no, err)
			}
		}
	})
	t.Run("too long matches ErrLineTooLong", func(t *testing.T) {
		r := NewLineReader(strings.NewReader(strings.Repeat("x", 100)), 10)
		_, _, err := r.Next()
		var le *LineError
		if !errors.Is(err, ErrLineTooLong) || !errors.As(err, &le) || le.Line != 1 {
			t.Fatalf("err = %#v", err)
		}
	})
}

// TestLineReaderBoundedMemory: a 64 MiB line must not be held in memory.
func TestLineReaderBoundedMemory(t *testing.T) {
	huge := io.MultiReader(
		io.LimitReader(byteRepeater('x'), 64<<20),
		strings.NewReader("\n{}\n"),
	)
	r := NewLineReader(huge, 1<<10)
	if _, _, err := r.Next(); !errors.Is(err, ErrLineTooLong) {
		t.Fatalf("err = %v, want too long", err)
	}
	if cap(r.long) > 2*(1<<10+2) { // append may round up, but not unboundedly
		t.Errorf("held %d bytes for a 1 KiB limit", cap(r.long))
	}
	if b, no, err := r.Next(); err != nil || string(b) != "{}" || no != 2 {
		t.Fatalf("Next = %q, %d, %v", b, no, err)
	}
}

type byteRepeater byte

func (c byteRepeater) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(c)
	}
	return len(p), nil
}

// chunkReader returns data in reads of the sizes given (cycled, each 1 to
// 256 bytes), and io.EOF together with the last bytes when atEOF is set:
// both are legal io.Reader behaviour that bufio has to cope with.
type chunkReader struct {
	data  []byte
	sizes []byte
	n     int
	atEOF bool
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	size := 1
	if len(c.sizes) > 0 {
		size = int(c.sizes[c.n%len(c.sizes)]) + 1
		c.n++
	}
	size = min(size, len(p), len(c.data))
	copy(p, c.data[:size])
	c.data = c.data[size:]
	if c.atEOF && len(c.data) == 0 {
		return size, io.EOF
	}
	return size, nil
}

func FuzzLineReader(f *testing.F) {
	f.Add([]byte("a\nb\r\n\n c \r\n"), []byte{0, 3}, uint8(4), false)
	f.Add([]byte("{\"stream\":\"s\"}\n\n\t\n{}"), []byte{1}, uint8(0), true)
	f.Add([]byte("x\r\r\n\r\n\rabcdefghij\n"), []byte{7, 255, 0}, uint8(2), false)
	f.Add([]byte(strings.Repeat("long line ", 50)+"\nshort\n"), []byte{20}, uint8(30), true)
	f.Fuzz(func(t *testing.T, data, sizes []byte, maxLine uint8, atEOF bool) {
		max := int(maxLine)%64 + 1
		r := NewLineReader(&chunkReader{data: data, sizes: sizes, atEOF: atEOF}, max)
		got, err := readAllLines(r)
		if err != nil {
			t.Fatal(err)
		}

		// The model: split on "\n" (a final "\n" ends the last line, it
		// does not start an empty one), drop one trailing "\r", skip
		// blank lines, and report lines over max.
		var want []gotLine
		parts := bytes.Split(data, []byte("\n"))
		if len(data) > 0 && data[len(data)-1] == '\n' {
			parts = parts[:len(parts)-1]
		}
		if len(data) == 0 {
			parts = nil
		}
		for i, p := range parts {
			p = bytes.TrimSuffix(p, []byte("\r"))
			switch {
			case len(p) > max:
				want = append(want, gotLine{no: i + 1, err: fmt.Sprintf("line %d: longer than %d bytes", i+1, max)})
			case len(bytes.Trim(p, " \t\r")) > 0:
				want = append(want, gotLine{text: string(p), no: i + 1})
			}
		}
		if !equalLines(got, want) {
			t.Fatalf("input %q max %d:\ngot %s\nwant %s", data, max, showLines(got), showLines(want))
		}
	})
}
