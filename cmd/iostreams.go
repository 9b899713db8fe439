package cmd

import (
	"bytes"
	"io"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// IOStreams is where a command reads and writes, and what it knows about
// the terminal. Commands never touch os.Stdin/os.Stdout/os.Stderr, so a
// test can hand them buffers and pretend to be a terminal.
type IOStreams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer

	stdinTTY  bool
	stdoutTTY bool
	stderrTTY bool
	color     bool
	width     int  // columns of stdout's terminal, 0 if unknown
	errWidth  int  // columns of stderr's terminal, 0 if unknown
	sameTTY   bool // stdout and stderr are the same terminal
}

// System returns the IOStreams of the process: the standard files, whether
// each is a terminal, and whether colour is wanted.
//
// EVT_FORCE_TTY=1 makes stdout count as a terminal (so tables and colour
// can be tested through a pipe); stdin and stderr are left alone, because
// faking them would make append wait for typed input or draw progress bars
// into a log. COLUMNS, when the terminal does not say its width (or there
// is none), gives it. NO_COLOR with any non-empty value, or TERM=dumb,
// turns colour off.
func System() *IOStreams {
	s := &IOStreams{
		In:        os.Stdin,
		Out:       os.Stdout,
		ErrOut:    os.Stderr,
		stdinTTY:  isTerminal(os.Stdin),
		stdoutTTY: isTerminal(os.Stdout),
		stderrTTY: isTerminal(os.Stderr),
	}
	if s.stdoutTTY {
		s.width = terminalWidth(os.Stdout)
	}
	if s.stderrTTY {
		s.errWidth = terminalWidth(os.Stderr)
	}
	s.sameTTY = s.stdoutTTY && s.stderrTTY && sameFile(os.Stdout, os.Stderr)
	if force, err := strconv.ParseBool(os.Getenv("EVT_FORCE_TTY")); err == nil && force {
		s.stdoutTTY = true
	}
	if n, err := strconv.Atoi(os.Getenv("COLUMNS")); err == nil && n > 0 {
		if s.width == 0 {
			s.width = n
		}
		if s.errWidth == 0 {
			s.errWidth = n
		}
	}
	s.color = s.stdoutTTY && os.Getenv("NO_COLOR") == "" && os.Getenv("TERM") != "dumb"
	return s
}

// newTestIOStreams returns IOStreams over buffers, with no terminals and no
// colour; tests flip those with the setters.
func newTestIOStreams() (s *IOStreams, in, out, errOut *bytes.Buffer) {
	in, out, errOut = new(bytes.Buffer), new(bytes.Buffer), new(bytes.Buffer)
	return &IOStreams{In: in, Out: out, ErrOut: errOut}, in, out, errOut
}

// IsStdinTTY reports whether stdin is a terminal (nothing was piped in).
func (s *IOStreams) IsStdinTTY() bool { return s.stdinTTY }

// IsStdoutTTY reports whether stdout is a terminal (or EVT_FORCE_TTY says
// to act as if): listings print tables rather than tab-separated rows.
func (s *IOStreams) IsStdoutTTY() bool { return s.stdoutTTY }

// IsStderrTTY reports whether stderr is a terminal: only then are progress
// bars drawn.
func (s *IOStreams) IsStderrTTY() bool { return s.stderrTTY }

// ColorEnabled reports whether output may carry ANSI colour.
func (s *IOStreams) ColorEnabled() bool { return s.color }

// TerminalWidth is the width of stdout's terminal in columns, or 80 when it
// is not a terminal or its size is unknown.
func (s *IOStreams) TerminalWidth() int {
	if s.width > 0 {
		return s.width
	}
	return 80
}

// KnownWidth is the width of stdout's terminal in columns, or 0 when it
// is not known (a forced terminal without COLUMNS): tables fit it.
func (s *IOStreams) KnownWidth() int { return s.width }

// StderrWidth is the width of stderr's terminal in columns (where
// progress bars go), or 80 when unknown.
func (s *IOStreams) StderrWidth() int {
	if s.errWidth > 0 {
		return s.errWidth
	}
	return 80
}

// SameTerminal reports whether stdout and stderr are the same terminal,
// so a line drawn on stderr would land among stdout's lines.
func (s *IOStreams) SameTerminal() bool { return s.sameTTY }

// SetTerminalWidth overrides the width of both terminals (tests).
func (s *IOStreams) SetTerminalWidth(n int) { s.width, s.errWidth = n, n }

// SetSameTerminal overrides whether stdout and stderr are one terminal.
func (s *IOStreams) SetSameTerminal(v bool) { s.sameTTY = v }

// SetStdinTTY overrides terminal detection for stdin.
func (s *IOStreams) SetStdinTTY(v bool) { s.stdinTTY = v }

// SetStdoutTTY overrides terminal detection for stdout.
func (s *IOStreams) SetStdoutTTY(v bool) { s.stdoutTTY = v }

// SetStderrTTY overrides terminal detection for stderr.
func (s *IOStreams) SetStderrTTY(v bool) { s.stderrTTY = v }

// SetColorEnabled overrides the colour decision.
func (s *IOStreams) SetColorEnabled(v bool) { s.color = v }

// isTerminal asks the kernel for the file's terminal attributes, which only
// a terminal has. A mode check (os.ModeCharDevice) is not enough: /dev/null
// is a character device too.
func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// sameFile reports whether a and b are the same open file (device and
// inode): one terminal, when both are terminals.
func sameFile(a, b *os.File) bool {
	var sa, sb unix.Stat_t
	if unix.Fstat(int(a.Fd()), &sa) != nil || unix.Fstat(int(b.Fd()), &sb) != nil {
		return false
	}
	return sa.Dev == sb.Dev && sa.Ino == sb.Ino && sa.Rdev == sb.Rdev
}

func terminalWidth(f *os.File) int {
	ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ)
	if err != nil {
		return 0
	}
	return int(ws.Col)
}
