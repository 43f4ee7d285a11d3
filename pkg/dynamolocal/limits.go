package dynamolocal

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/opentrace/service-accounts/pkg/ddbexpr"
)

// apiError is an error DynamoDB returns: its type, its message and its HTTP status, with the
// cancellation reasons of a cancelled transaction or the item of a failed condition.
type apiError struct {
	Type    string
	Message string
	Status  int
	Reasons []reason
	Item    map[string]any
}

type reason struct {
	Code    string         `json:"Code"`
	Message string         `json:"Message,omitempty"`
	Item    map[string]any `json:"Item,omitempty"`
}

func (e *apiError) Error() string { return e.Type + ": " + e.Message }

func validation(msg string) *apiError {
	return &apiError{Type: "ValidationException", Message: msg, Status: 400}
}

// expressions are the expressions of one request (or one transaction item) by kind, with the
// placeholders they share.
type expressions struct {
	exprs  map[string]*string // "ConditionExpression" → the expression, nil or "" when absent
	names  map[string]string
	values item
}

// check applies DynamoDB's rules on expressions: each at most 4 KB, 300 operators and 100 IN
// operands; every placeholder used is defined and every one defined is used; placeholders of
// at most 255 bytes and substitutions of at most 2 MB in all.
func (e expressions) check() *apiError {
	usedNames, usedValues := map[string]bool{}, map[string]bool{}
	some := false
	for _, kind := range slices.Sorted(maps.Keys(e.exprs)) {
		p := e.exprs[kind]
		if p == nil || *p == "" {
			continue
		}
		some = true
		x := *p
		invalid := func(format string, args ...any) *apiError {
			return validation("Invalid " + kind + ": " + fmt.Sprintf(format, args...))
		}
		switch {
		case len(x) > MaxExpressionBytes:
			return invalid("Expression size has exceeded the maximum allowed size; expression size: %d", len(x))
		case ddbexpr.Operators(x) > MaxOperators:
			return invalid("The expression contains too many operators; operator count: %d", ddbexpr.Operators(x))
		case ddbexpr.MaxInOperands(x) > MaxInOperands:
			return invalid("The IN operator is provided with too many operands; number of operands: %d", ddbexpr.MaxInOperands(x))
		}
		names, values := ddbexpr.Placeholders(x)
		for _, n := range names {
			if _, ok := e.names[n]; !ok {
				return invalid("An expression attribute name used in the document path is not defined; attribute name: %s", n)
			}
			usedNames[n] = true
		}
		for _, v := range values {
			if _, ok := e.values[v]; !ok {
				return invalid("An expression attribute value used in expression is not defined; attribute value: %s", v)
			}
			usedValues[v] = true
		}
	}
	if !some && (len(e.names) > 0 || len(e.values) > 0) {
		what := "ExpressionAttributeNames"
		if len(e.values) > 0 {
			what = "ExpressionAttributeValues"
		}
		return validation(what + " can only be specified when using expressions")
	}
	if unused := unusedKeys(e.values, usedValues); unused != "" {
		return validation("Value provided in ExpressionAttributeValues unused in expressions: keys: {" + unused + "}")
	}
	if unused := unusedKeys(e.names, usedNames); unused != "" {
		return validation("Value provided in ExpressionAttributeNames unused in expressions: keys: {" + unused + "}")
	}
	total := 0
	for k, v := range e.names {
		if len(k) > MaxPlaceholderBytes {
			return validation("ExpressionAttributeNames contains invalid key: key too long; size of key: " + fmt.Sprint(len(k)))
		}
		total += len(k) + len(v)
	}
	for k, v := range e.values {
		if len(k) > MaxPlaceholderBytes {
			return validation("ExpressionAttributeValues contains invalid key: key too long; size of key: " + fmt.Sprint(len(k)))
		}
		total += len(k) + valueSize(v)
	}
	if total > MaxSubstitutionBytes {
		return validation("Expression attribute names and values have exceeded the maximum allowed size of 2 MB")
	}
	return checkValues(e.values)
}

func unusedKeys[V any](defined map[string]V, used map[string]bool) string {
	var out []string
	for k := range defined {
		if !used[k] {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return strings.Join(out, ", ")
}

// checkKey applies DynamoDB's rules on a key's values: no empty strings or binaries, a
// partition key of at most 2048 bytes and a sort key of at most 1024.
func (t *table) checkKey(k item) *apiError {
	for i, name := range t.keys {
		v := k[name]
		if v == nil {
			continue // minidyn reports a missing key attribute
		}
		if (v.S != nil && *v.S == "") || (v.B != nil && len(v.B) == 0) {
			kind := "string"
			if v.B != nil {
				kind = "binary"
			}
			return validation(fmt.Sprintf("One or more parameter values are not valid. The AttributeValue for a key attribute cannot contain an empty %s value. Key: %s", kind, name))
		}
		switch n := keyBytes(v); {
		case i == 0 && n > MaxPartitionKeyBytes:
			return validation("One or more parameter values were invalid: Size of hashkey has exceeded the maximum size limit of2048 bytes")
		case i == 1 && n > MaxSortKeyBytes:
			return validation("One or more parameter values were invalid: Aggregated size of all range keys has exceeded the size limit of 1024 bytes")
		}
	}
	return checkValues(k)
}

// keyOf is the table key of an item.
func (t *table) keyOf(it item) item {
	k := item{}
	for _, name := range t.keys {
		if v, ok := it[name]; ok {
			k[name] = v
		}
	}
	return k
}

// keyID identifies a key within a table, to find duplicates.
func keyID(k item) string {
	var b strings.Builder
	for _, name := range slices.Sorted(maps.Keys(k)) {
		v := k[name]
		b.WriteString(name)
		b.WriteByte(0)
		switch {
		case v.S != nil:
			b.WriteString("S" + *v.S)
		case v.N != nil:
			b.WriteString("N" + *v.N)
		case v.B != nil:
			b.WriteString("B" + string(v.B))
		}
		b.WriteByte(0)
	}
	return b.String()
}

// checkItem applies the rules on an item written whole: its key, its values, its size.
func (t *table) checkItem(it item) *apiError {
	if err := t.checkKey(t.keyOf(it)); err != nil {
		return err
	}
	if err := checkValues(it); err != nil {
		return err
	}
	if itemSize(it) > MaxItemBytes {
		return validation("Item size has exceeded the maximum allowed size")
	}
	return nil
}
