package testkit

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestDecodeValue: every value line go test writes decodes to the value and type it wrote.
func TestDecodeValue(t *testing.T) {
	for line, want := range map[string]any{
		`string("a\"b\x00é")`:          "a\"b\x00é",
		"string(`raw`)":                "raw",
		`string(")(")`:                 ")(",
		`[]byte("\xff\x00")`:           []byte{0xff, 0},
		`bool(true)`:                   true,
		`bool(false)`:                  false,
		`byte('p')`:                    byte('p'),
		`byte('\x00')`:                 byte(0),
		`byte('\'')`:                   byte('\''),
		`rune('é')`:                    'é',
		`int32(-1)`:                    int32(-1),
		`int(-9223372036854775808)`:    int(math.MinInt64),
		`int8(-128)`:                   int8(-128),
		`int16(300)`:                   int16(300),
		`int64(0x10)`:                  int64(16),
		`uint(7)`:                      uint(7),
		`uint8(255)`:                   uint8(255),
		`uint16(16373)`:                uint16(16373),
		`uint32(4294967295)`:           uint32(math.MaxUint32),
		`uint64(18446744073709551615)`: uint64(math.MaxUint64),
		`float32(1.5)`:                 float32(1.5),
		`float64(-2.5e-07)`:            -2.5e-07,
		`float64(+Inf)`:                math.Inf(1),
		`float64(-Inf)`:                math.Inf(-1),
	} {
		got, err := decodeValue(line)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("decodeValue(%s) = %#v (%T), %v; want %#v (%T)", line, got, got, err, want, want)
		}
	}
	got, err := decodeValue("float64(NaN)")
	if f, ok := got.(float64); err != nil || !ok || !math.IsNaN(f) {
		t.Errorf("decodeValue(float64(NaN)) = %#v, %v", got, err)
	}
	// A NaN of other bits than math.NaN's is written as its bits, and read back to them.
	if got, err := decodeValue("math.Float32frombits(0x7fc00001)"); err != nil || math.Float32bits(got.(float32)) != 0x7fc00001 {
		t.Errorf("decodeValue(math.Float32frombits(…)) = %#v, %v", got, err)
	}
	if got, err := decodeValue("math.Float64frombits(0x7ff8000000000001)"); err != nil || math.Float64bits(got.(float64)) != 0x7ff8000000000001 {
		t.Errorf("decodeValue(math.Float64frombits(…)) = %#v, %v", got, err)
	}
}

// TestDecodeValueRefuses: a line that is not a value of its type fails, out of range too.
func TestDecodeValueRefuses(t *testing.T) {
	for _, line := range []string{
		`string(abc)`, `string("abc"`, `"abc"`, `bool(1)`, `bool(t)`, `uint8(256)`, `uint8(-1)`,
		`int8(128)`, `byte('€')`, `byte('ab')`, `rune('a`, `int(1.5)`, `complex128(1)`, `float64(x)`,
	} {
		if got, err := decodeValue(line); err == nil {
			t.Errorf("decodeValue(%s) = %#v, want an error", line, got)
		}
	}
}

// TestCorpus reads a corpus as go test lays it out, and scans a file's values into typed
// variables, refusing a file whose values are not the fuzz function's arguments.
func TestCorpus(t *testing.T) {
	t.Chdir(t.TempDir())
	dir := filepath.Join("testdata", "fuzz", "FuzzThing")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, text := range map[string]string{
		"valid_one": "go test fuzz v1\nstring(\"org_a\")\nuint16(32)\nbyte('p')\n",
		"bad_crlf":  "go test fuzz v1\r\nstring(\"\")\r\nuint16(0)\r\nbyte('\\x00')\r\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	files := Corpus(t, "FuzzThing", 2)
	if len(files) != 2 || files[0].Name != "bad_crlf" || files[1].Name != "valid_one" ||
		files[1].Path != filepath.Join(dir, "valid_one") {
		t.Fatalf("Corpus = %+v", files)
	}
	var org string
	var at uint16
	var b byte
	files[1].Scan(t, &org, &at, &b)
	if org != "org_a" || at != 32 || b != 'p' {
		t.Fatalf("Scan: %q %d %q", org, at, b)
	}
	files[0].Scan(t, &org, &at, &b)
	if org != "" || at != 0 || b != 0 {
		t.Fatalf("Scan of a CRLF file: %q %d %q", org, at, b)
	}

	for name, ptrs := range map[string][]any{
		"TooFew":    {&org, &at},
		"TooMany":   {&org, &at, &b, &org},
		"WrongType": {&org, &b, &b},
	} {
		ft := &fatalTB{TB: t}
		ft.run(func() { files[1].Scan(ft, ptrs...) })
		if !strings.Contains(ft.msg, "valid_one") {
			t.Errorf("%s: Scan did not fail naming the file: %q", name, ft.msg)
		}
	}

	ft := &fatalTB{TB: t}
	ft.run(func() { Corpus(ft, "FuzzThing", 3) })
	if ft.msg != "" || !ft.errored {
		t.Errorf("a corpus under its minimum: fatal %q, errored %v; want an error only", ft.msg, ft.errored)
	}
	if err := os.WriteFile(filepath.Join(dir, "broken"), []byte("go test fuzz v1\nstring(nope)\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ft = &fatalTB{TB: t}
	ft.run(func() { Corpus(ft, "FuzzThing", 1) })
	if !strings.Contains(ft.msg, "broken") {
		t.Errorf("a malformed file: fatal %q, want one naming it", ft.msg)
	}
}

// TestDecodeCorpusRefuses: a file without the header, or without values, is no corpus file.
func TestDecodeCorpusRefuses(t *testing.T) {
	for _, text := range []string{"", "go test fuzz v1\n", "go test fuzz v2\nint(1)\n", "int(1)\n"} {
		if got, err := decodeCorpus(text); err == nil {
			t.Errorf("decodeCorpus(%q) = %#v, want an error", text, got)
		}
	}
}

// fatalTB records a test's failures instead of reporting them, to test the helpers' own.
type fatalTB struct {
	testing.TB
	msg     string // what Fatal said
	errored bool
}

type fatalled struct{}

func (f *fatalTB) Helper() {}

func (f *fatalTB) Errorf(string, ...any) { f.errored = true }

func (f *fatalTB) Fatal(args ...any) {
	f.msg = fmt.Sprint(args...)
	panic(fatalled{})
}

func (f *fatalTB) Fatalf(format string, args ...any) { f.Fatal(fmt.Sprintf(format, args...)) }

// run calls fn, stopping where it calls Fatal.
func (f *fatalTB) run(fn func()) {
	defer func() {
		if r := recover(); r != nil && r != (fatalled{}) {
			panic(r)
		}
	}()
	fn()
}
