package dynamolocal

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/truora/minidyn/server"
)

// DynamoDB's limits on items and keys.
const (
	MaxItemBytes         = 400 * 1024 // an item, names and values, as DynamoDB sizes it
	MaxPartitionKeyBytes = 2048
	MaxSortKeyBytes      = 1024
	MaxPageBytes         = 1024 * 1024 // data a Query or Scan reads for one page
	MaxTransactionItems  = 100
	MaxTransactionBytes  = 4 * 1024 * 1024
	MaxBatchWrites       = 25
	MaxBatchGets         = 100
	MaxExpressionBytes   = 4096
	MaxOperators         = 300
	MaxInOperands        = 100
	MaxPlaceholderBytes  = 255
	MaxSubstitutionBytes = 2 * 1024 * 1024
	// minidyn keeps numbers as float64, exact to 15 significant digits; DynamoDB keeps 38.
	// A number minidyn would silently round is refused instead.
	maxEngineDigits = 15
)

// itemSize is an item's size as DynamoDB counts it against its 400 KB limit: the UTF-8 length
// of each attribute name plus the size of its value.
func itemSize(it item) int {
	n := 0
	for k, v := range it {
		n += len(k) + valueSize(v)
	}
	return n
}

// valueSize follows DynamoDB's item size rules: strings and binaries by length; numbers by
// their significant digits; 1 byte for a boolean or null; a list or a map 3 bytes plus 1 per
// element (and each map key's length); a set the sum of its elements.
func valueSize(v *server.AttributeValue) int {
	switch {
	case v == nil:
		return 0
	case v.S != nil:
		return len(*v.S)
	case v.N != nil:
		n, _ := numberSize(*v.N)
		return n
	case v.B != nil:
		return len(v.B)
	case v.BOOL != nil, v.NULL != nil:
		return 1
	case v.L != nil:
		n := 3
		for _, e := range v.L {
			n += 1 + valueSize(e)
		}
		return n
	case v.M != nil:
		n := 3
		for k, e := range v.M {
			n += 1 + len(k) + valueSize(e)
		}
		return n
	}
	n := 0
	for _, s := range v.SS {
		n += len(*s)
	}
	for _, s := range v.NS {
		m, _ := numberSize(*s)
		n += m
	}
	for _, b := range v.BS {
		n += len(b)
	}
	return n
}

var number = regexp.MustCompile(`^([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$`)

// numberSize is a number's size: 1 byte, plus 1 per pair of significant digits aligned on the
// decimal point, plus 1 if it is negative. It also returns the count of significant digits,
// or an error for a string that is not a number.
func numberSize(s string) (size int, err error) {
	m := number.FindStringSubmatch(s)
	if m == nil || m[2]+m[3] == "" {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	exp := 0
	if m[4] != "" {
		if exp, err = strconv.Atoi(m[4]); err != nil {
			return 0, fmt.Errorf("%q is not a number", s)
		}
	}
	digits := m[2] + m[3]
	point := len(m[2]) + exp // digits[:point] lie before the decimal point
	trimmed := strings.TrimLeft(digits, "0")
	point -= len(digits) - len(trimmed)
	trimmed = strings.TrimRight(trimmed, "0")
	if trimmed == "" {
		return 1, nil // zero
	}
	// The digits occupy the powers of ten from point-1 down to point-len(trimmed).
	hi, lo := floorDiv(point-1, 2), floorDiv(point-len(trimmed), 2)
	size = 1 + hi - lo + 1
	if m[1] == "-" {
		size++
	}
	return size, nil
}

func floorDiv(a, b int) int {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// checkNumber refuses what DynamoDB refuses (not a number, more than 38 significant digits,
// out of range) and what minidyn cannot hold exactly.
func checkNumber(s string) *apiError {
	m := number.FindStringSubmatch(s)
	if _, err := numberSize(s); err != nil {
		return validation("A value provided cannot be converted into a number")
	}
	digits := strings.Trim(strings.TrimLeft(m[2]+m[3], "0"), "0")
	if len(digits) > 38 {
		return validation("Attempting to store more than 38 significant digits in a Number")
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil && f != 0 && (abs(f) >= 1e126 || abs(f) < 1e-130) {
		return validation("Number overflow. Attempting to store a number with magnitude larger than supported range")
	}
	if len(digits) > maxEngineDigits {
		return validation(fmt.Sprintf("The embedded DynamoDB (minidyn) holds numbers as float64 and would round %s; "+
			"it keeps %d significant digits where DynamoDB keeps 38", s, maxEngineDigits))
	}
	return nil
}

func abs(f float64) float64 {
	if f < 0 {
		return -f
	}
	return f
}

// checkValues walks values as DynamoDB validates them: numbers, and sets that may not be empty.
func checkValues(it item) *apiError {
	for _, v := range it {
		if err := checkValue(v); err != nil {
			return err
		}
	}
	return nil
}

func checkValue(v *server.AttributeValue) *apiError {
	switch {
	case v == nil:
		return nil
	case v.N != nil:
		return checkNumber(*v.N)
	case v.L != nil:
		for _, e := range v.L {
			if err := checkValue(e); err != nil {
				return err
			}
		}
	case v.M != nil:
		return checkValues(v.M)
	case v.SS != nil && len(v.SS) == 0:
		return validation("One or more parameter values were invalid: An string set  may not be empty")
	case v.NS != nil && len(v.NS) == 0:
		return validation("One or more parameter values were invalid: An number set  may not be empty")
	case v.BS != nil && len(v.BS) == 0:
		return validation("One or more parameter values were invalid: Binary sets should not be empty")
	case v.NS != nil:
		for _, n := range v.NS {
			if err := checkNumber(*n); err != nil {
				return err
			}
		}
	}
	return nil
}

// keyBytes is the size of a key attribute's value.
func keyBytes(v *server.AttributeValue) int {
	switch {
	case v == nil:
		return 0
	case v.S != nil:
		return len(*v.S)
	case v.B != nil:
		return len(v.B)
	case v.N != nil:
		n, _ := numberSize(*v.N)
		return n
	}
	return 0
}
