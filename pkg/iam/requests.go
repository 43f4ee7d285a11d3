package iam

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/opentrace/service-accounts/pkg/ddbexpr"
)

// Environment is what turning API calls into authorization requests needs to know of the
// account: where it is, the partition key of each table (for dynamodb:LeadingKeys), and the
// ARN of each secret by every name it may be called by (Secrets Manager authorizes the secret's
// full ARN, whatever the caller names it by).
type Environment struct {
	Region, Account string
	PartitionKeys   map[string]string // table name → partition key attribute
	Secrets         map[string]string // secret name or ARN → the secret's ARN
}

// ErrNotModelled is returned for an API call the local check does not know how to authorize;
// such a call is refused, so that nothing passes here unchecked.
type ErrNotModelled struct{ Target string }

func (e ErrNotModelled) Error() string {
	return fmt.Sprintf("the local IAM check does not model %s; add it to pkg/iam", e.Target)
}

// Authorizations returns the requests AWS authorizes for one API call, given its X-Amz-Target
// header and JSON body: one for most calls, one per item of a transaction, one per table of a
// batch, one per entry's event bus for EventBridge.
func (e *Environment) Authorizations(target string, body []byte) ([]Request, error) {
	service, op, _ := strings.Cut(target, ".")
	switch service {
	case "DynamoDB_20120810":
		return e.dynamoDB(op, body)
	case "DynamoDBStreams_20120810":
		return e.streams(op, body)
	case "secretsmanager":
		return e.secretsManager(op, body)
	case "AWSEvents":
		return e.eventBridge(op, body)
	}
	return nil, ErrNotModelled{target}
}

func (e *Environment) tableARN(name string) string {
	if strings.HasPrefix(name, "arn:") {
		return name
	}
	return fmt.Sprintf("arn:aws:dynamodb:%s:%s:table/%s", e.Region, e.Account, name)
}

// attributeValue is a DynamoDB attribute value on the wire, for reading key values.
type attributeValue map[string]json.RawMessage

// scalar is an attribute value as a condition key holds it: the string of an S, N or B.
func (av attributeValue) scalar() string {
	for _, t := range []string{"S", "N", "B"} {
		if raw, ok := av[t]; ok {
			var s string
			_ = json.Unmarshal(raw, &s)
			return s
		}
	}
	return ""
}

// expressions are the parts of a request that name attributes.
type expressions struct {
	KeyConditionExpression    string
	ConditionExpression       string
	FilterExpression          string
	UpdateExpression          string
	ProjectionExpression      string
	ExpressionAttributeNames  map[string]string
	ExpressionAttributeValues map[string]attributeValue
}

// itemRequest is the shape shared by single-item calls and transaction items.
type itemRequest struct {
	TableName              string
	Key, Item              map[string]attributeValue
	IndexName              string
	Select                 string
	ReturnValues           string
	ReturnConsumedCapacity string
	expressions
}

// context builds the condition keys of a request on one item or one query.
func (e *Environment) context(r itemRequest, op string) map[string][]string {
	ctx := map[string][]string{}
	attrs := map[string]bool{}
	for k := range r.Key {
		attrs[k] = true
	}
	for k := range r.Item {
		attrs[k] = true
	}
	for _, x := range []string{r.KeyConditionExpression, r.ConditionExpression, r.FilterExpression, r.UpdateExpression, r.ProjectionExpression} {
		for _, n := range ddbexpr.TopLevelNames(x, r.ExpressionAttributeNames) {
			attrs[n] = true
		}
	}
	if len(attrs) > 0 {
		ctx["dynamodb:attributes"] = slices.Sorted(maps.Keys(attrs))
	}
	if pk, ok := e.PartitionKeys[r.TableName]; ok {
		var leading []string
		for _, m := range []map[string]attributeValue{r.Key, r.Item} {
			if v, ok := m[pk]; ok {
				leading = append(leading, v.scalar())
			}
		}
		if v, ok := queryPartition(r, pk); ok {
			leading = append(leading, v)
		}
		if leading != nil {
			ctx["dynamodb:leadingkeys"] = leading
		}
	}
	switch op {
	case "GetItem", "Query", "Scan", "BatchGetItem":
		sel := r.Select
		switch {
		case r.ProjectionExpression != "":
			sel = "SPECIFIC_ATTRIBUTES"
		case sel == "":
			sel = "ALL_ATTRIBUTES"
		}
		ctx["dynamodb:select"] = []string{sel}
	case "PutItem", "UpdateItem", "DeleteItem":
		rv := r.ReturnValues
		if rv == "" {
			rv = "NONE"
		}
		ctx["dynamodb:returnvalues"] = []string{rv}
	}
	rcc := r.ReturnConsumedCapacity
	if rcc == "" {
		rcc = "NONE"
	}
	ctx["dynamodb:returnconsumedcapacity"] = []string{rcc}
	return ctx
}

// queryPartition finds the partition key's value in a Query's key condition: `pk = :v`.
func queryPartition(r itemRequest, pk string) (string, bool) {
	toks := ddbexpr.Tokens(r.KeyConditionExpression)
	for i := 0; i+2 < len(toks); i++ {
		name := toks[i]
		if alias, ok := r.ExpressionAttributeNames[name]; ok {
			name = alias
		}
		if name == pk && toks[i+1] == "=" && strings.HasPrefix(toks[i+2], ":") {
			return r.ExpressionAttributeValues[toks[i+2]].scalar(), true
		}
	}
	return "", false
}

func (e *Environment) dynamoDB(op string, body []byte) ([]Request, error) {
	act := func(action, resource string, ctx map[string][]string) Request {
		return Request{Action: "dynamodb:" + action, Resource: resource, Context: ctx}
	}
	switch op {
	case "GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "Scan":
		var r itemRequest
		if err := json.Unmarshal(body, &r); err != nil {
			return nil, fmt.Errorf("iam: %s: %w", op, err)
		}
		resource := e.tableARN(r.TableName)
		if r.IndexName != "" && (op == "Query" || op == "Scan") {
			resource += "/index/" + r.IndexName
		}
		ctx := e.context(r, op)
		if op == "Scan" {
			delete(ctx, "dynamodb:leadingkeys") // a Scan reads every partition
		}
		return []Request{act(op, resource, ctx)}, nil
	case "BatchGetItem", "BatchWriteItem":
		var r struct {
			RequestItems           map[string]json.RawMessage
			ReturnConsumedCapacity string
		}
		if err := json.Unmarshal(body, &r); err != nil {
			return nil, fmt.Errorf("iam: %s: %w", op, err)
		}
		var reqs []Request
		for _, table := range slices.Sorted(maps.Keys(r.RequestItems)) {
			items, err := batchItems(op, table, r.RequestItems[table])
			if err != nil {
				return nil, err
			}
			ctx := map[string][]string{}
			for _, it := range items {
				it.ReturnConsumedCapacity = r.ReturnConsumedCapacity
				for k, v := range e.context(it, op) {
					for _, s := range v {
						if !slices.Contains(ctx[k], s) {
							ctx[k] = append(ctx[k], s)
						}
					}
				}
			}
			reqs = append(reqs, act(op, e.tableARN(table), ctx))
		}
		return reqs, nil
	case "TransactWriteItems", "TransactGetItems":
		var r struct {
			TransactItems []map[string]itemRequest
		}
		if err := json.Unmarshal(body, &r); err != nil {
			return nil, fmt.Errorf("iam: %s: %w", op, err)
		}
		actions := map[string]string{"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem", "ConditionCheck": "ConditionCheckItem", "Get": "GetItem"}
		var reqs []Request
		for i, item := range r.TransactItems {
			if len(item) != 1 {
				return nil, fmt.Errorf("iam: %s item %d holds %d actions", op, i, len(item))
			}
			for kind, it := range item {
				action, ok := actions[kind]
				if !ok {
					return nil, fmt.Errorf("iam: %s item %d: unknown action %s", op, i, kind)
				}
				ctx := e.context(it, action)
				ctx["dynamodb:enclosingoperation"] = []string{op}
				reqs = append(reqs, act(action, e.tableARN(it.TableName), ctx))
			}
		}
		return reqs, nil
	case "DescribeTable", "CreateTable", "DeleteTable", "UpdateTable", "UpdateTimeToLive", "DescribeTimeToLive":
		var r struct{ TableName string }
		if err := json.Unmarshal(body, &r); err != nil {
			return nil, fmt.Errorf("iam: %s: %w", op, err)
		}
		return []Request{act(op, e.tableARN(r.TableName), nil)}, nil
	case "ListTables":
		return []Request{act(op, "*", nil)}, nil
	}
	return nil, ErrNotModelled{"DynamoDB_20120810." + op}
}

// batchItems reads a batch's requests for one table as item requests.
func batchItems(op, table string, raw json.RawMessage) ([]itemRequest, error) {
	var out []itemRequest
	if op == "BatchGetItem" {
		var ka struct {
			Keys []map[string]attributeValue
			expressions
		}
		if err := json.Unmarshal(raw, &ka); err != nil {
			return nil, fmt.Errorf("iam: %s %s: %w", op, table, err)
		}
		for _, k := range ka.Keys {
			out = append(out, itemRequest{TableName: table, Key: k, expressions: ka.expressions})
		}
		return out, nil
	}
	var wrs []struct {
		PutRequest    *struct{ Item map[string]attributeValue }
		DeleteRequest *struct{ Key map[string]attributeValue }
	}
	if err := json.Unmarshal(raw, &wrs); err != nil {
		return nil, fmt.Errorf("iam: %s %s: %w", op, table, err)
	}
	for _, wr := range wrs {
		switch {
		case wr.PutRequest != nil:
			out = append(out, itemRequest{TableName: table, Item: wr.PutRequest.Item})
		case wr.DeleteRequest != nil:
			out = append(out, itemRequest{TableName: table, Key: wr.DeleteRequest.Key})
		}
	}
	return out, nil
}

func (e *Environment) streams(op string, body []byte) ([]Request, error) {
	var r struct{ StreamArn string }
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("iam: %s: %w", op, err)
	}
	switch op {
	case "DescribeStream", "GetShardIterator":
		return []Request{{Action: "dynamodb:" + op, Resource: r.StreamArn}}, nil
	case "ListStreams":
		return []Request{{Action: "dynamodb:ListStreams", Resource: "*"}}, nil
	case "GetRecords":
		// The resource is the stream the iterator reads; Transport knows it from the
		// GetShardIterator that issued the iterator.
		return []Request{{Action: "dynamodb:GetRecords"}}, nil
	}
	return nil, ErrNotModelled{"DynamoDBStreams_20120810." + op}
}

func (e *Environment) secretsManager(op string, body []byte) ([]Request, error) {
	switch op {
	case "GetSecretValue", "DescribeSecret":
		var r struct{ SecretId string }
		if err := json.Unmarshal(body, &r); err != nil {
			return nil, fmt.Errorf("iam: %s: %w", op, err)
		}
		arn, ok := e.Secrets[r.SecretId]
		if !ok {
			arn = r.SecretId // an unknown secret: AWS names it as the caller did
		}
		return []Request{{Action: "secretsmanager:" + op, Resource: arn}}, nil
	}
	return nil, ErrNotModelled{"secretsmanager." + op}
}

func (e *Environment) eventBridge(op string, body []byte) ([]Request, error) {
	if op != "PutEvents" {
		return nil, ErrNotModelled{"AWSEvents." + op}
	}
	var r struct {
		Entries []struct{ EventBusName, Source, DetailType string }
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("iam: %s: %w", op, err)
	}
	var reqs []Request
	for _, en := range r.Entries {
		bus := en.EventBusName
		if bus == "" {
			bus = "default"
		}
		if !strings.HasPrefix(bus, "arn:") {
			bus = fmt.Sprintf("arn:aws:events:%s:%s:event-bus/%s", e.Region, e.Account, bus)
		}
		reqs = append(reqs, Request{Action: "events:PutEvents", Resource: bus, Context: map[string][]string{
			"events:source": {en.Source}, "events:detail-type": {en.DetailType},
		}})
	}
	return reqs, nil
}
