// Command bench is the performance suite behind `make bench`: it runs the Go benchmarks that
// carry the system's performance goals (each -count times, taking medians), measures the
// authorizer's cold start against a hello-world Lambda under the Lambda Runtime Interface
// Emulator, builds every function as deployed to report its arm64 size, and puts the local
// stack under a short, bounded load on loopback. It prints one table of figures and ratios,
// then one line per goal in the form `<name>: <value> (goal <= <target>)`, so that a script
// can check them. docs/PERFORMANCE.md explains every figure and what it means on AWS.
//
// It runs from the repository root: go run ./infra/bench -rie .bin/aws-lambda-rie
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"time"
)

type options struct {
	goCmd      string
	rie        string
	count      int
	coldStarts int
	warm       int
	loadFor    time.Duration
	workers    int
	audit100k  bool
	outDir     string
	sizes      bool
	only       string
	cpuProfile string
}

// does says whether the suite runs a part: all of them unless -only names some.
func (o options) does(part string) bool {
	if o.only == "" {
		return true
	}
	return slices.Contains(strings.Split(o.only, ","), part)
}

func main() {
	var o options
	flag.StringVar(&o.goCmd, "go", "go", "the go command")
	flag.StringVar(&o.rie, "rie", ".bin/aws-lambda-rie", "the Lambda Runtime Interface Emulator")
	flag.IntVar(&o.count, "count", 5, "runs of each fast benchmark; the table shows medians")
	flag.IntVar(&o.coldStarts, "coldstarts", 10, "cold starts of each function, interleaved")
	flag.IntVar(&o.warm, "warm", 20, "warm invocations after each cold start")
	flag.DurationVar(&o.loadFor, "load", 10*time.Second, "load on each local-stack route (in 5 alternating slices)")
	flag.IntVar(&o.workers, "workers", 16, "concurrent load workers")
	flag.BoolVar(&o.audit100k, "audit100k", true, "run the 100k-token audit (about 100 s, most of it seeding)")
	flag.StringVar(&o.outDir, "out", "build/bench", "where raw outputs and binaries go")
	flag.BoolVar(&o.sizes, "sizes", false, "only print the authorizer's arm64 code size by package, largest first")
	flag.StringVar(&o.only, "only", "", "run only these parts, comma-separated: build,go,coldstart,load (the goal lines then cover only them)")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write this process's CPU profile (the load generator and the local stack run in it) to this file")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("bench: ")

	if err := os.MkdirAll(o.outDir, 0o755); err != nil {
		log.Fatal(err)
	}
	if o.sizes {
		if err := printSizes(o); err != nil {
			log.Fatal(err)
		}
		return
	}
	if o.coldStarts < 1 || o.count < 1 || o.workers < 1 || o.loadFor <= 0 {
		log.Fatal("-count, -coldstarts, -workers and -load must be positive")
	}
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatal(err)
		}
	}
	err := run(o)
	if o.cpuProfile != "" {
		pprof.StopCPUProfile()
	}
	if err != nil {
		log.Fatal(err)
	}
}

func run(o options) error {
	started := time.Now()
	t := &table{}
	t.header = machine(o)

	var sizes *sizeResult
	if o.does("build") || o.does("coldstart") {
		progress("build: every function for linux/arm64 as deployed, and the cold-start binaries for %s", runtime.GOARCH)
		var err error
		if sizes, err = armSizes(o); err != nil {
			return err
		}
	}
	if o.does("go") {
		bench, err := goBenchmarks(o)
		if err != nil {
			return err
		}
		bench.addRows(t)
	}
	if o.does("coldstart") {
		progress("cold start: %d cold starts each of hello world, the SDK hello and the authorizer under the emulator, in rotating order", o.coldStarts)
		cs, err := coldStarts(o)
		if err != nil {
			return err
		}
		cs.addRows(t)
	}
	if o.does("load") {
		progress("load: %d workers on the local stack, %s on each route", o.workers, o.loadFor)
		ld, err := loadStack(context.Background(), o)
		if err != nil {
			return err
		}
		ld.addRows(t)
	}
	if o.does("build") {
		sizes.addRows(t)
	}
	t.footer = fmt.Sprintf("load average at the end: %s; the suite took %s", loadavg(), time.Since(started).Round(time.Second))
	t.print(os.Stdout)
	return nil
}

// progress reports on stderr what the suite is doing, so the table on stdout stays one table.
func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}

// machine describes where the figures come from: they mean little without it.
func machine(o options) []string {
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	goVersion, _ := exec.Command(o.goCmd, "env", "GOVERSION").Output()
	return []string{
		fmt.Sprintf("date: %s", time.Now().UTC().Format("2006-01-02 15:04 MST")),
		fmt.Sprintf("machine: %d cores (GOMAXPROCS %d), %s, %s/%s, %s", runtime.NumCPU(), runtime.GOMAXPROCS(0), cpu,
			runtime.GOOS, runtime.GOARCH, strings.TrimSpace(string(goVersion))),
		fmt.Sprintf("load average at the start: %s", loadavg()),
		fmt.Sprintf("medians of %d runs (the lastUsedAt benchmark: 3; the audit: 3 runs at 10k, 1 at 100k); raw output in %s",
			o.count, filepath.Join(o.outDir, "*.txt")),
	}
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// table is the one table the suite prints: figures in sections, then the goal lines.
type table struct {
	header []string
	rows   []row
	goals  []goal
	footer string
}

type row struct {
	section, figure, value, note string
}

// goal is a figure with a target; its line is what a script checks.
type goal struct {
	name   string
	value  float64
	op     string // "<=" or ">="
	target float64
	format string
}

func (g goal) met() bool {
	if g.op == "<=" {
		return g.value <= g.target
	}
	return g.value >= g.target
}

func (t *table) add(section, figure, value, note string) {
	t.rows = append(t.rows, row{section, figure, value, note})
}

// addGoal adds a figure with a goal as a row and as a goal line.
func (t *table) addGoal(section, figure string, g goal, unit, note string) {
	mark := "met"
	if !g.met() {
		mark = "NOT MET"
	}
	value := fmt.Sprintf(g.format, g.value)
	if unit != "" {
		value += " " + unit
	}
	goalNote := fmt.Sprintf("goal %s %s: %s", g.op, trimFloat(g.target), mark)
	if note != "" {
		goalNote += "; " + note
	}
	t.add(section, figure, value, goalNote)
	t.goals = append(t.goals, g)
}

func trimFloat(v float64) string {
	s := fmt.Sprintf("%.3f", v)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	return s
}

func (t *table) print(w io.Writer) {
	for _, h := range t.header {
		fmt.Fprintln(w, h)
	}
	fmt.Fprintln(w)
	width := [3]int{len("section"), len("figure"), len("value")}
	for _, r := range t.rows {
		width[0] = max(width[0], len([]rune(r.section)))
		width[1] = max(width[1], len([]rune(r.figure)))
		width[2] = max(width[2], len([]rune(r.value)))
	}
	pad := func(s string, n int) string { return s + strings.Repeat(" ", n-len([]rune(s))) }
	line := func(a, b, c, d string) {
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", pad(a, width[0]), pad(b, width[1]), pad(c, width[2]), d)
	}
	line("section", "figure", "value", "goal / note")
	fmt.Fprintf(w, "|%s|%s|%s|---|\n", strings.Repeat("-", width[0]+2), strings.Repeat("-", width[1]+2), strings.Repeat("-", width[2]+2))
	for _, r := range t.rows {
		line(r.section, r.figure, r.value, r.note)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, t.footer)
	fmt.Fprintln(w)
	for _, g := range t.goals {
		fmt.Fprintf(w, "%s: %s (goal %s %s)\n", g.name, fmt.Sprintf(g.format, g.value), g.op, trimFloat(g.target))
	}
}
