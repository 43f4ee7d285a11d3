package testkit

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// corpusHeader is the first line of every file `go test -fuzz` writes and reads.
const corpusHeader = "go test fuzz v1"

// CorpusFile is one file of a fuzz target's committed corpus.
type CorpusFile struct {
	// Name is the file's name: the corpus tests read a seed's class from it (valid*, bad*,
	// 201_*, ...), and leave alone the files the fuzzer wrote, named by their hash.
	Name string
	Path string
	// Values are the fuzz function's arguments, typed as go test decodes them: string,
	// []byte, bool, the integer types (a byte is a uint8, a rune an int32), float32, float64.
	Values []any
}

// Corpus reads every file of target's corpus, testdata/fuzz/<target> in the package under
// test, and reports an error (without stopping) when it holds fewer than min files: the
// seeds are what keep the fuzz target's checks meaningful on a plain `go test`.
func Corpus(tb testing.TB, target string, min int) []CorpusFile {
	tb.Helper()
	dir := filepath.Join("testdata", "fuzz", target)
	entries, err := os.ReadDir(dir)
	if err != nil {
		tb.Fatal(err)
	}
	if len(entries) < min {
		tb.Errorf("corpus has %d files, want at least %d", len(entries), min)
	}
	files := make([]CorpusFile, len(entries))
	for i, e := range entries {
		f := CorpusFile{Name: e.Name(), Path: filepath.Join(dir, e.Name())}
		b, err := os.ReadFile(f.Path)
		if err != nil {
			tb.Fatal(err)
		}
		if f.Values, err = decodeCorpus(string(b)); err != nil {
			tb.Fatalf("%s: %v", f.Path, err)
		}
		files[i] = f
	}
	return files
}

// Scan stores the file's values in the variables ptrs point to, failing tb unless the file
// holds exactly one value of each one's type, in order, as the fuzz function would take them.
func (f CorpusFile) Scan(tb testing.TB, ptrs ...any) {
	tb.Helper()
	if len(f.Values) != len(ptrs) {
		tb.Fatalf("%s holds %d values, want %d", f.Path, len(f.Values), len(ptrs))
	}
	for i, p := range ptrs {
		dst, v := reflect.ValueOf(p).Elem(), reflect.ValueOf(f.Values[i])
		if v.Type() != dst.Type() {
			tb.Fatalf("%s: value %d is a %s, want a %s", f.Path, i, v.Type(), dst.Type())
		}
		dst.Set(v)
	}
}

// decodeCorpus decodes a corpus file: the header, then one type(literal) line a value.
func decodeCorpus(text string) ([]any, error) {
	lines := strings.Split(strings.TrimSpace(text), "\n")
	if strings.TrimSpace(lines[0]) != corpusHeader {
		return nil, fmt.Errorf("not a %s file", corpusHeader)
	}
	var values []any
	for i, line := range lines[1:] {
		if line = strings.TrimSpace(line); line == "" {
			continue
		}
		v, err := decodeValue(line)
		if err != nil {
			return nil, fmt.Errorf("line %d, %q: %v", i+2, line, err)
		}
		values = append(values, v)
	}
	if len(values) == 0 {
		return nil, errors.New("no values")
	}
	return values, nil
}

// numbers are the numeric types a value line may name.
var numbers = map[string]reflect.Type{
	"int": reflect.TypeFor[int](), "int8": reflect.TypeFor[int8](), "int16": reflect.TypeFor[int16](),
	"int32": reflect.TypeFor[int32](), "rune": reflect.TypeFor[rune](), "int64": reflect.TypeFor[int64](),
	"uint": reflect.TypeFor[uint](), "uint8": reflect.TypeFor[uint8](), "byte": reflect.TypeFor[byte](),
	"uint16": reflect.TypeFor[uint16](), "uint32": reflect.TypeFor[uint32](), "uint64": reflect.TypeFor[uint64](),
	"float32": reflect.TypeFor[float32](), "float64": reflect.TypeFor[float64](),
}

// decodeValue decodes one value line, as go test writes it: string("…"), []byte("…"),
// bool(true), byte('x'), rune('é'), uint16(3), float64(-Inf), math.Float64frombits(0x…), ….
func decodeValue(line string) (any, error) {
	typ, lit, ok := strings.Cut(line, "(")
	lit, closed := strings.CutSuffix(lit, ")")
	if !ok || !closed {
		return nil, errors.New("want type(value)")
	}
	switch typ {
	case "string":
		return strconv.Unquote(lit)
	case "[]byte":
		s, err := strconv.Unquote(lit)
		return []byte(s), err
	case "bool":
		if lit != "true" && lit != "false" {
			return nil, errors.New("want true or false")
		}
		return lit == "true", nil
	case "math.Float32frombits":
		bits, err := strconv.ParseUint(lit, 0, 32)
		return math.Float32frombits(uint32(bits)), err
	case "math.Float64frombits":
		bits, err := strconv.ParseUint(lit, 0, 64)
		return math.Float64frombits(bits), err
	}
	t, ok := numbers[typ]
	if !ok {
		return nil, fmt.Errorf("unknown type %s", typ)
	}
	if (typ == "byte" || typ == "rune") && strings.HasPrefix(lit, "'") {
		// A character literal: parse its code as the number it is, range checks and all.
		c, _, tail, err := strconv.UnquoteChar(strings.TrimSuffix(lit[1:], "'"), '\'')
		if err != nil || tail != "" || !strings.HasSuffix(lit, "'") {
			return nil, errors.New("malformed character literal")
		}
		lit = strconv.Itoa(int(c))
	}
	v := reflect.New(t).Elem()
	var err error
	switch {
	case v.CanInt():
		var n int64
		n, err = strconv.ParseInt(lit, 0, t.Bits())
		v.SetInt(n)
	case v.CanUint():
		var n uint64
		n, err = strconv.ParseUint(lit, 0, t.Bits())
		v.SetUint(n)
	default:
		var x float64
		x, err = strconv.ParseFloat(lit, t.Bits())
		v.SetFloat(x)
	}
	return v.Interface(), err
}
