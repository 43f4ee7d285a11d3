package main

import (
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
)

// deployFlags are the Makefile's LAMBDA_FLAGS: every bootstrap is built exactly so.
var deployFlags = []string{"-tags", "lambda.norpc", "-trimpath", "-ldflags=-s -w"}

func hostArch() string { return runtime.GOARCH }

func hostBinary(o options, fn string) string {
	return filepath.Join(o.outDir, "host", fn, "bootstrap")
}

func functionDirs() ([]string, error) {
	entries, err := os.ReadDir("functions")
	if err != nil {
		return nil, fmt.Errorf("run from the repository root: %w", err)
	}
	var fns []string
	for _, e := range entries {
		if e.IsDir() {
			fns = append(fns, e.Name())
		}
	}
	return fns, nil
}

func pkgOf(o options, fn string) string {
	switch fn {
	case "hello", "sdkhello":
		return "./infra/bench/" + fn
	}
	return "./functions/" + fn
}

// build builds fn's bootstrap as deployed for goarch into out.
func build(o options, fn, goarch, out string, flags []string) error {
	args := append([]string{"build"}, flags...)
	args = append(args, "-o", out, pkgOf(o, fn))
	cmd := exec.Command(o.goCmd, args...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+goarch)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build %s for %s: %v\n%s", fn, goarch, err, b)
	}
	return nil
}

type sizeResult struct {
	arm64    map[string]int64 // the functions and the two baselines
	unneeded []pkgSize        // of the authorizer, from an unstripped arm64 build
	total    int64            // all symbol bytes of that build
}

// armSizes builds every function (and hello world) for linux/arm64 exactly as deployed and
// notes their sizes; builds hello world and the authorizer for this machine for the cold-start
// measurement; and sizes the packages the authorizer carries but never runs. Everything is
// built before anything is measured.
func armSizes(o options) (*sizeResult, error) {
	fns, err := functionDirs()
	if err != nil {
		return nil, err
	}
	r := &sizeResult{arm64: map[string]int64{}}
	for _, fn := range append(fns, "hello", "sdkhello") {
		out := filepath.Join(o.outDir, "arm64", fn, "bootstrap")
		if err := build(o, fn, "arm64", out, deployFlags); err != nil {
			return nil, err
		}
		st, err := os.Stat(out)
		if err != nil {
			return nil, err
		}
		r.arm64[fn] = st.Size()
	}
	for _, fn := range []string{"hello", "sdkhello", "authorizer"} {
		if err := build(o, fn, runtime.GOARCH, hostBinary(o, fn), deployFlags); err != nil {
			return nil, err
		}
	}
	sizes, total, err := authorizerSymbols(o)
	if err != nil {
		return nil, err
	}
	r.total = total
	for _, p := range sizes {
		if unneededByAuthorizer(p.pkg) {
			r.unneeded = append(r.unneeded, p)
		}
	}
	return r, nil
}

// unneededByAuthorizer names the packages the authorizer links but never runs: the SDK's
// shared-config credential chain (SSO, SSO OIDC, STS, sign-in, SigV4a, IMDS, process and
// endpoint credentials, and the loader that wires them), which a Lambda function never uses
// since Lambda hands it credentials in the environment; JSON Web Encryption, which jwx's jwt
// package links although user JWTs are only signed; the DynamoDB Streams types that
// attributevalue links; and the audit, which pkg/dynamo links.
func unneededByAuthorizer(pkg string) bool {
	for _, p := range []string{
		"github.com/aws/aws-sdk-go-v2/config",
		"github.com/aws/aws-sdk-go-v2/service/sso", "github.com/aws/aws-sdk-go-v2/service/ssooidc",
		"github.com/aws/aws-sdk-go-v2/service/sts", "github.com/aws/aws-sdk-go-v2/service/signin",
		"github.com/aws/aws-sdk-go-v2/internal/v4a", "github.com/aws/aws-sdk-go-v2/feature/ec2/imds",
		"github.com/aws/aws-sdk-go-v2/credentials/stscreds", "github.com/aws/aws-sdk-go-v2/credentials/ssocreds",
		"github.com/aws/aws-sdk-go-v2/credentials/logincreds", "github.com/aws/aws-sdk-go-v2/credentials/processcreds",
		"github.com/aws/aws-sdk-go-v2/credentials/endpointcreds", "github.com/aws/aws-sdk-go-v2/credentials/ec2rolecreds",
		"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams",
		"github.com/lestrrat-go/jwx/v3/jwe",
		"github.com/opentrace/service-accounts/pkg/audit",
	} {
		if pkg == p || strings.HasPrefix(pkg, p+"/") {
			return true
		}
	}
	return false
}

type pkgSize struct {
	pkg  string
	size int64
}

// authorizerSymbols builds the authorizer for linux/arm64 unstripped (the symbol table is what
// -s -w strips) and sums the sizes of its symbols that take room in the file (not BSS) by
// package.
func authorizerSymbols(o options) ([]pkgSize, int64, error) {
	out := filepath.Join(o.outDir, "arm64-symbols", "authorizer", "bootstrap")
	if err := build(o, "authorizer", "arm64", out, []string{"-tags", "lambda.norpc", "-trimpath"}); err != nil {
		return nil, 0, err
	}
	f, err := elf.Open(out)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil {
		return nil, 0, err
	}
	by := map[string]int64{}
	var total int64
	for _, sym := range syms {
		if sym.Section == elf.SHN_UNDEF || int(sym.Section) >= len(f.Sections) || sym.Size == 0 {
			continue
		}
		if f.Sections[sym.Section].Type == elf.SHT_NOBITS {
			continue // BSS takes no room in the file
		}
		by[symbolPackage(sym.Name)] += int64(sym.Size)
		total += int64(sym.Size)
	}
	var sizes []pkgSize
	for p, n := range by {
		sizes = append(sizes, pkgSize{p, n})
	}
	slices.SortFunc(sizes, func(a, b pkgSize) int { return int(b.size - a.size) })
	return sizes, total, nil
}

// symbolPackage returns the import path a Go symbol belongs to: "type:*net/http.Client" and
// "net/http.(*Client).Do" both belong to net/http.
func symbolPackage(sym string) string {
	if strings.HasPrefix(sym, "go:func.") {
		return "(function metadata)"
	}
	for _, p := range []string{"type:.eq.", "type:", "go:itab.", "go:", "*"} {
		sym = strings.TrimPrefix(sym, p)
	}
	sym = strings.TrimLeft(sym, "*[]")
	slash := strings.LastIndex(sym, "/")
	dot := strings.Index(sym[slash+1:], ".")
	if dot < 0 {
		return sym
	}
	return sym[:slash+1+dot]
}

func (r *sizeResult) addRows(t *table) {
	s := "binary size (linux/arm64, as deployed)"
	var fns []string
	for fn := range r.arm64 {
		fns = append(fns, fn)
	}
	slices.Sort(fns)
	for _, fn := range fns {
		switch fn {
		case "hello":
			t.add(s, "hello world (baseline)", fmt.Sprintf("%.1f MB", mb(r.arm64[fn])), "")
		case "sdkhello":
			t.add(s, "SDK hello: a DynamoDB client and one GetItem (baseline)", fmt.Sprintf("%.1f MB", mb(r.arm64[fn])), "")
		case "authorizer":
			t.addGoal(s, "authorizer", goal{name: "authorizer_binary_mb", value: mb(r.arm64[fn]), op: "<=", target: 8, format: "%.2f"}, "MB",
				fmt.Sprintf("%.2f MB over the SDK hello", mb(r.arm64[fn]-r.arm64["sdkhello"])))
		default:
			t.add(s, fn, fmt.Sprintf("%.1f MB", mb(r.arm64[fn])), "")
		}
	}
	var unneeded int64
	var top []string
	for i, p := range r.unneeded {
		unneeded += p.size
		if i < 6 && p.size >= 500 {
			top = append(top, fmt.Sprintf("%s %.0f KB", strings.TrimPrefix(p.pkg, "github.com/"), float64(p.size)/1e3))
		}
	}
	t.add(s, "authorizer code it links but never runs", fmt.Sprintf("%.0f KB", float64(unneeded)/1e3),
		fmt.Sprintf("%.1f%% of its symbols; largest: %s", 100*float64(unneeded)/float64(r.total), strings.Join(top, ", ")))
}

// printSizes prints the authorizer's code size by package, for `go run ./infra/bench -sizes`.
func printSizes(o options) error {
	sizes, total, err := authorizerSymbols(o)
	if err != nil {
		return err
	}
	fmt.Printf("authorizer, linux/arm64, unstripped: %.1f MB of symbols\n", mb(total))
	for _, p := range sizes {
		if p.size < 8_000 {
			break
		}
		mark := ""
		if unneededByAuthorizer(p.pkg) {
			mark = "  (never run by the authorizer)"
		}
		fmt.Printf("%8.0f KB  %s%s\n", float64(p.size)/1e3, p.pkg, mark)
	}
	return nil
}
