// Command procpair times whole processes against each other, interleaved
// round by round, so that a busy machine slows every command alike.
//
//	procpair [-rounds N] [-warmup N] [-base NAME] [-seed N] NAME=COMMAND...
//
// Each NAME=COMMAND is one command line, split on spaces (no quoting; put
// data with spaces in a file); K=V words before the program are added to
// its environment, as in a shell. A round runs every command once, in an order
// shuffled anew each round (-seed picks the orders), with stdin, stdout and stderr
// on /dev/null. Each run is timed from just before fork to just after
// wait4 on the monotonic clock; its CPU time is the child's user + system
// time from wait4. A command that exits non-zero stops the run: a failed
// append must not pass for a fast one.
//
// It prints, per command: the median, p10 and p90 wall time, the median
// CPU time, and against -base (default: the first command) the throughput
// ratio base median / command median, and the median of the per-round
// ratios base/command with a bootstrap 95% interval. A ratio above 1 means
// the command is faster than the base.
package main

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"
)

type command struct {
	name string
	env  []string // K=V words before the program: added to the environment
	argv []string
	path string
	wall []float64 // ms, one per round
	cpu  []float64 // ms
}

func main() {
	rounds := flag.Int("rounds", 400, "timed rounds")
	warmup := flag.Int("warmup", 20, "untimed rounds first")
	base := flag.String("base", "", "the command the ratios are against (default: the first)")
	seed := flag.Uint64("seed", 1, "seed of the order of each round")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: procpair [-rounds N] [-warmup N] [-base NAME] [-seed N] NAME=COMMAND...")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	var cmds []*command
	for _, a := range flag.Args() {
		name, line, ok := strings.Cut(a, "=")
		argv := strings.Fields(line)
		var env []string
		for len(argv) > 0 && strings.Contains(argv[0], "=") {
			env, argv = append(env, argv[0]), argv[1:]
		}
		if !ok || name == "" || len(argv) == 0 {
			fail("want NAME=COMMAND, not %q", a)
		}
		path, err := exec.LookPath(argv[0])
		if err != nil {
			fail("%s: %v", name, err)
		}
		cmds = append(cmds, &command{name: name, env: env, argv: argv, path: path})
	}
	b := cmds[0]
	if *base != "" {
		i := slices.IndexFunc(cmds, func(c *command) bool { return c.name == *base })
		if i < 0 {
			fail("-base %s: no such command", *base)
		}
		b = cmds[i]
	}

	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		fail("%v", err)
	}
	files := []uintptr{null.Fd(), null.Fd(), null.Fd()}
	rng := rand.New(rand.NewPCG(*seed, 0))
	order := make([]*command, len(cmds))
	start := time.Now()
	for r := -*warmup; r < *rounds; r++ {
		copy(order, cmds)
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		for _, c := range order {
			wall, cpu := runOnce(c, &syscall.ProcAttr{Env: append(os.Environ(), c.env...), Files: files})
			if r >= 0 {
				c.wall = append(c.wall, wall)
				c.cpu = append(c.cpu, cpu)
			}
		}
	}
	elapsed := time.Since(start)

	fmt.Printf("procpair: %d rounds (+%d warm-up), %d commands interleaved, %s; ratios against %s (>1: faster than %s)\n",
		*rounds, *warmup, len(cmds), elapsed.Round(time.Second), b.name, b.name)
	fmt.Printf("%-14s %9s %8s %8s %8s %10s %22s\n", "command", "median", "p10", "p90", "cpu", "thru x", "per-round x (95% CI)")
	for _, c := range cmds {
		ratios := make([]float64, len(c.wall))
		for i := range c.wall {
			ratios[i] = b.wall[i] / c.wall[i]
		}
		lo, hi := bootstrapMedian(ratios, rng)
		fmt.Printf("%-14s %9.3f %8.3f %8.3f %8.3f %10.3f %8.3f (%.3f..%.3f)\n", c.name,
			quantile(c.wall, 0.5), quantile(c.wall, 0.1), quantile(c.wall, 0.9), quantile(c.cpu, 0.5),
			quantile(b.wall, 0.5)/quantile(c.wall, 0.5), quantile(ratios, 0.5), lo, hi)
	}
	fmt.Println("(wall and cpu in ms per process; thru x = median of", b.name, "/ median of the command)")
	for _, c := range cmds {
		fmt.Printf("  %s = %s\n", c.name, strings.Join(append(c.env, c.argv...), " "))
	}
}

// runOnce runs c once and returns its wall and CPU time in milliseconds.
func runOnce(c *command, attr *syscall.ProcAttr) (wall, cpu float64) {
	t0 := time.Now()
	pid, err := syscall.ForkExec(c.path, c.argv, attr)
	if err != nil {
		fail("%s: %v", c.name, err)
	}
	var ws syscall.WaitStatus
	var ru syscall.Rusage
	for {
		_, err = syscall.Wait4(pid, &ws, 0, &ru)
		if err != syscall.EINTR {
			break
		}
	}
	wall = float64(time.Since(t0).Nanoseconds()) / 1e6
	if err != nil {
		fail("%s: wait: %v", c.name, err)
	}
	if !ws.Exited() || ws.ExitStatus() != 0 {
		fail("%s: %s exited with %v", c.name, strings.Join(c.argv, " "), ws)
	}
	cpu = float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e6
	return wall, cpu
}

// quantile is the q-quantile of xs by linear interpolation.
func quantile(xs []float64, q float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	pos := q * float64(len(s)-1)
	i := int(pos)
	if i+1 >= len(s) {
		return s[len(s)-1]
	}
	return s[i] + (pos-float64(i))*(s[i+1]-s[i])
}

// bootstrapMedian is a 95% percentile-bootstrap interval of the median.
func bootstrapMedian(xs []float64, rng *rand.Rand) (lo, hi float64) {
	const n = 2000
	meds := make([]float64, n)
	sample := make([]float64, len(xs))
	for i := range meds {
		for j := range sample {
			sample[j] = xs[rng.IntN(len(xs))]
		}
		meds[i] = quantile(sample, 0.5)
	}
	return quantile(meds, 0.025), quantile(meds, 0.975)
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "procpair: "+format+"\n", args...)
	os.Exit(1)
}
