package main

import (
	"bufio"
	"bytes"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// benchRun is one `go test -bench` invocation. One package at a time: `go test` runs several
// packages' test binaries in parallel, and on two cores they would measure each other.
type benchRun struct {
	pkg, bench, benchtime string
	count                 int
}

// results holds every run's value of every metric, by benchmark name (without the
// GOMAXPROCS suffix) and unit.
type results map[string]map[string][]float64

func (r results) median(name, unit string) float64 {
	v := r[name][unit]
	if len(v) == 0 {
		return math.NaN()
	}
	return median(v)
}

func (r results) runs(name, unit string) int { return len(r[name][unit]) }

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// goBenchmarks runs the suite's Go benchmarks and returns their metrics.
func goBenchmarks(o options) (results, error) {
	runs := []benchRun{
		{pkg: "./pkg/token", bench: "^BenchmarkParseAndHash$", count: o.count},
		{pkg: "./pkg/authorizer", bench: "^BenchmarkAuthorizer$", count: o.count},
		{pkg: "./pkg/dynamo", bench: "^BenchmarkListFirstPage$", count: o.count},
		// Each iteration is 10,000 authorizations (2–8 s): one per run.
		{pkg: "./pkg/authorizer", bench: "^BenchmarkLastUsedWrites$", benchtime: "1x", count: 3},
	}
	// The audit seeds its table untimed for every iteration: one iteration per run. 100k
	// runs once (its seeding alone takes about a minute); 10k runs beside it, and twice more.
	if o.audit100k {
		runs = append(runs, benchRun{pkg: "./pkg/audit", bench: "^BenchmarkAudit$", benchtime: "1x", count: 1})
		runs = append(runs, benchRun{pkg: "./pkg/audit", bench: "^BenchmarkAudit/10k$", benchtime: "1x", count: 2})
	} else {
		runs = append(runs, benchRun{pkg: "./pkg/audit", bench: "^BenchmarkAudit/10k$", benchtime: "1x", count: 3})
	}
	all := results{}
	for i, r := range runs {
		args := []string{"test", "-run=^$", "-bench=" + r.bench, "-benchmem", "-count=" + strconv.Itoa(r.count), "-timeout=30m"}
		if r.benchtime != "" {
			args = append(args, "-benchtime="+r.benchtime)
		}
		args = append(args, r.pkg)
		progress("go %s", strings.Join(args, " "))
		cmd := exec.Command(o.goCmd, args...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		raw := filepath.Join(o.outDir, fmt.Sprintf("gotest-%d-%s.txt", i, filepath.Base(r.pkg)))
		_ = os.WriteFile(raw, out.Bytes(), 0o644)
		if err != nil {
			return nil, fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out.String())
		}
		if n := parseBench(out.Bytes(), all); n == 0 {
			return nil, fmt.Errorf("go %s printed no benchmark results (see %s)", strings.Join(args, " "), raw)
		}
	}
	return all, nil
}

var benchLine = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+(\d+)\s+(.+)$`)

// parseBench adds the result lines of `go test -bench` output to r and returns how many it read.
func parseBench(out []byte, r results) int {
	n := 0
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		m := benchLine.FindStringSubmatch(strings.TrimSpace(sc.Text()))
		if m == nil {
			continue
		}
		f := strings.Fields(m[3])
		if r[m[1]] == nil {
			r[m[1]] = map[string][]float64{}
		}
		for i := 0; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			r[m[1]][f[i+1]] = append(r[m[1]][f[i+1]], v)
		}
		n++
	}
	return n
}

func (r results) addRows(t *table) {
	const (
		auth  = "BenchmarkAuthorizer"
		tok   = "BenchmarkParseAndHash"
		list  = "BenchmarkListFirstPage/SeparateTables"
		list1 = "BenchmarkListFirstPage/OneTable"
		lu1   = "BenchmarkLastUsedWrites/OneInstance"
		lu16  = "BenchmarkLastUsedWrites/Instances16"
		a10   = "BenchmarkAudit/10k"
		a100  = "BenchmarkAudit/100k"
	)
	s := "authorizer (minidyn)"
	t.add(s, "authorizer invocation, service-account token", us(r.median(auth, "authorizer-ns/op")), "warm, in process, one consistent GetItem, no write")
	t.add(s, "bare consistent GetItem of the same item", us(r.median(auth, "getitem-ns/op")), "same SDK client, interleaved in one loop")
	t.addGoal(s, "authorizer ÷ GetItem", goal{name: "authorizer_getitem_ratio", value: r.median(auth, "ratio"), op: "<=", target: 1.10, format: "%.2f"}, "",
		fmt.Sprintf("median of %d runs' ratios", r.runs(auth, "ratio")))
	t.add(s, "allocations per authorizer + GetItem pair", fmt.Sprintf("%.0f allocs, %.0f KB", r.median(auth, "allocs/op"), r.median(auth, "B/op")/1e3), "")

	s = "token"
	t.addGoal(s, "parse + checksum + HMAC-SHA256", goal{name: "token_parse_hash_ns", value: r.median(tok, "ns/op"), op: "<=", target: 5000, format: "%.0f"}, "ns/op", "")
	t.addGoal(s, "parse + checksum + HMAC-SHA256 allocations", goal{name: "token_parse_hash_allocs", value: r.median(tok, "allocs/op"), op: "<=", target: 4, format: "%.0f"}, "allocs/op",
		fmt.Sprintf("%.0f B/op", r.median(tok, "B/op")))

	s = "list first page of 50"
	t.add(s, "org of 10,000 accounts", us(r.median(list, "org10k-ns/op")), fmt.Sprintf("%.0f items read per Query", r.median(list, "org10k-items/query")))
	t.add(s, "org of 100 accounts", us(r.median(list, "org100-ns/op")), fmt.Sprintf("%.0f items read per Query", r.median(list, "org100-items/query")))
	t.addGoal(s, "10k ÷ 100 (each org in its own table)", goal{name: "list_page_ratio_10k_100", value: r.median(list, "ratio"), op: "<=", target: 1.5, format: "%.2f"}, "",
		"cost follows the page, not the org")
	t.add(s, "minidyn artefact: 100-org page sorted after the 10k org in one table", us(r.median(list1, "org100-ns/op")),
		fmt.Sprintf("minidyn walks every key before the partition (10k-org page there: %s); DynamoDB reads only the page", us(r.median(list1, "org10k-ns/op"))))

	s = "lastUsedAt"
	worst := max(r.median(lu1, "writes/10k-auths"), r.median(lu16, "writes/10k-auths"))
	t.add(s, "writes per 10,000 authorizations, one instance", fmt.Sprintf("%.2f", r.median(lu1, "writes/10k-auths")),
		fmt.Sprintf("%.0f UpdateItem sent; %s wall per authorization", r.median(lu1, "attempts/10k-auths"), us(r.median(lu1, "wall-ns/auth"))))
	t.add(s, "writes per 10,000 authorizations, 16 concurrent instances", fmt.Sprintf("%.2f", r.median(lu16, "writes/10k-auths")),
		fmt.Sprintf("%.0f UpdateItems sent, the rest refused by their condition; %s wall per authorization",
			r.median(lu16, "attempts/10k-auths"), us(r.median(lu16, "wall-ns/auth"))))
	t.addGoal(s, "worst of the two", goal{name: "lastused_writes_per_10k_auths", value: worst, op: "<=", target: 1, format: "%.2f"}, "", "one token, one interval (60 s)")

	s = "audit (minidyn, first run)"
	t.add(s, "10k tokens", fmt.Sprintf("%.0f tokens/s", r.median(a10, "tokens/s")),
		fmt.Sprintf("%.2f writes/finding, seeding %.1f s untimed, %d runs", r.median(a10, "writes/finding"), r.median(a10, "seed-s"), r.runs(a10, "tokens/s")))
	if r.runs(a100, "tokens/s") > 0 {
		t.add(s, "100k tokens", fmt.Sprintf("%.0f tokens/s", r.median(a100, "tokens/s")),
			fmt.Sprintf("%.2f writes/finding, seeding %.1f s untimed, %d run", r.median(a100, "writes/finding"), r.median(a100, "seed-s"), r.runs(a100, "tokens/s")))
		t.addGoal(s, "tokens/s at 100k ÷ tokens/s at 10k", goal{name: "audit_throughput_ratio_100k_10k", value: r.median(a100, "tokens/s") / r.median(a10, "tokens/s"), op: ">=", target: 0.7, format: "%.2f"}, "",
			"1 = linear; quadratic would be 0.1")
	}
}

// us formats nanoseconds as microseconds.
func us(ns float64) string { return fmt.Sprintf("%.0f µs", ns/1000) }
