package dynamolocal

import (
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/truora/minidyn/server"
)

// Attribute values are encoded here rather than by minidyn, whose JSON tags drop empty lists
// and maps to "{}", which the SDK then decodes as another attribute's value. An empty set,
// which DynamoDB never stores (it removes the attribute), is left out.

type item = map[string]*server.AttributeValue

// wireItem is an item as DynamoDB's JSON protocol carries it; nil for no item.
func wireItem(it item) map[string]any {
	if it == nil {
		return nil
	}
	out := make(map[string]any, len(it))
	for k, v := range it {
		if w := wireValue(v); w != nil {
			out[k] = w
		}
	}
	return out
}

func wireItems(its []item) []any {
	out := make([]any, 0, len(its))
	for _, it := range its {
		out = append(out, wireItem(it))
	}
	return out
}

func wireValue(v *server.AttributeValue) any {
	switch {
	case v == nil:
		return nil
	case v.S != nil:
		return map[string]any{"S": *v.S}
	case v.N != nil:
		return map[string]any{"N": *v.N}
	case v.B != nil:
		return map[string]any{"B": v.B}
	case v.BOOL != nil:
		return map[string]any{"BOOL": *v.BOOL}
	case v.NULL != nil:
		return map[string]any{"NULL": *v.NULL}
	case v.L != nil:
		l := make([]any, 0, len(v.L))
		for _, e := range v.L {
			l = append(l, wireValue(e))
		}
		return map[string]any{"L": l}
	case v.M != nil:
		return map[string]any{"M": wireItem(v.M)}
	case len(v.SS) > 0:
		return map[string]any{"SS": v.SS}
	case len(v.NS) > 0:
		return map[string]any{"NS": v.NS}
	case len(v.BS) > 0:
		return map[string]any{"BS": v.BS}
	}
	return nil
}

// WireItem is an item of the SDK's types in DynamoDB's JSON (minidyn's errors carry such items,
// and so do the Streams API's records once converted).
func WireItem(it map[string]types.AttributeValue) map[string]any {
	if it == nil {
		return nil
	}
	out := make(map[string]any, len(it))
	for k, v := range it {
		out[k] = wireSDKValue(v)
	}
	return out
}

func wireSDKValue(v types.AttributeValue) any {
	switch v := v.(type) {
	case *types.AttributeValueMemberS:
		return map[string]any{"S": v.Value}
	case *types.AttributeValueMemberN:
		return map[string]any{"N": v.Value}
	case *types.AttributeValueMemberB:
		return map[string]any{"B": v.Value}
	case *types.AttributeValueMemberBOOL:
		return map[string]any{"BOOL": v.Value}
	case *types.AttributeValueMemberNULL:
		return map[string]any{"NULL": v.Value}
	case *types.AttributeValueMemberL:
		l := make([]any, 0, len(v.Value))
		for _, e := range v.Value {
			l = append(l, wireSDKValue(e))
		}
		return map[string]any{"L": l}
	case *types.AttributeValueMemberM:
		return map[string]any{"M": WireItem(v.Value)}
	case *types.AttributeValueMemberSS:
		return map[string]any{"SS": v.Value}
	case *types.AttributeValueMemberNS:
		return map[string]any{"NS": v.Value}
	case *types.AttributeValueMemberBS:
		return map[string]any{"BS": v.Value}
	}
	return nil
}
