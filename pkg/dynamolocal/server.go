// Package dynamolocal is DynamoDB on this machine as AWS runs it: minidyn's engine
// (github.com/truora/minidyn) behind DynamoDB's JSON API, held to DynamoDB's service limits
// with the errors DynamoDB returns, and corrected where minidyn departs from DynamoDB's
// documented behaviour, so that code tested here is right for AWS rather than for minidyn.
//
// Limits enforced: at most 100 items and 4 MB per transaction, one operation per item; 400 KB
// per item (on a put, and on the result of an update); 25 requests per BatchWriteItem and 100
// keys per BatchGetItem, without duplicates; 1 MB of data read per Query or Scan page, counted
// before the filter; 4 KB, 300 operators and 100 IN operands per expression, placeholders that
// are all defined and all used, and 2 MB of them; key values of 1 to 2048 (partition) and 1024
// (sort) bytes; numbers of at most 38 significant digits.
//
// Corrections of minidyn v0.8.2: a top-level REMOVE in an update removes the attribute; empty
// lists and maps are answered as such (minidyn's encoding turned them into "{}", which the SDK
// read as another attribute's value); a cancelled transaction reports the outcome of every
// item, as DynamoDB does, not only the first failure; a page that starts after an item deleted
// since is not empty; a transaction retried with its ClientRequestToken is applied once;
// UpdateItem's UPDATED_OLD and UPDATED_NEW name the attributes the update wrote; time to live
// and ListTables are answered; and numbers minidyn would round (it holds float64) are refused.
// Reads never see a write half applied.
package dynamolocal

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
	"github.com/truora/minidyn/server"

	"github.com/opentrace/service-accounts/pkg/ddbexpr"
)

// Server is an embedded DynamoDB endpoint: an http.Handler for DynamoDB's JSON 1.0 protocol.
type Server struct {
	engine *server.Client

	// mu serialises writes (a correction reads, writes and may restore) and keeps reads from
	// seeing a write in progress.
	mu     sync.RWMutex
	tables map[string]*table
	tokens map[string]idempotent // ClientRequestToken of a committed transaction
	now    func() time.Time
}

// table is what the layer needs to know of a table: its key attributes (partition key first)
// and, per index, the index's.
type table struct {
	keys    []string
	indexes map[string][]string
	ttl     string // the time-to-live attribute, "" when disabled
}

type idempotent struct {
	hash [32]byte
	at   time.Time
}

// New returns an empty embedded DynamoDB.
func New() *Server {
	return &Server{engine: server.NewClient(), tables: map[string]*table{}, tokens: map[string]idempotent{}, now: time.Now}
}

var writeOps = map[string]bool{
	"PutItem": true, "UpdateItem": true, "DeleteItem": true, "BatchWriteItem": true, "TransactWriteItems": true,
	"CreateTable": true, "DeleteTable": true, "UpdateTable": true, "UpdateTimeToLive": true,
}

// ServeHTTP answers one DynamoDB API call.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	target := r.Header.Get("X-Amz-Target")
	op := target[strings.LastIndexByte(target, '.')+1:]
	body, err := io.ReadAll(r.Body)
	if err != nil {
		writeError(w, validation("could not read the request"))
		return
	}
	if writeOps[op] || ((op == "Query" || op == "Scan") && bytes.Contains(body, []byte(`"ExclusiveStartKey"`))) {
		s.mu.Lock() // a page from a key no longer present holds a placeholder while it runs
		defer s.mu.Unlock()
	} else {
		s.mu.RLock()
		defer s.mu.RUnlock()
	}
	out, err := s.do(r.Context(), op, body)
	if err != nil {
		writeError(w, err)
		return
	}
	b, err := json.Marshal(out)
	if err != nil {
		writeError(w, &apiError{Type: "InternalServerError", Message: err.Error(), Status: 500})
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	w.Header().Set("X-Amzn-Requestid", "local")
	_, _ = w.Write(b)
}

// decode reads a request into minidyn's input type.
func decode[T any](body []byte) (*T, error) {
	var in T
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, &apiError{Type: "SerializationException", Message: err.Error(), Status: 400}
	}
	return &in, nil
}

func (s *Server) table(name *string) (*table, error) {
	t, ok := s.tables[aws.ToString(name)]
	if !ok {
		return nil, &apiError{Type: "ResourceNotFoundException", Message: "Requested resource not found", Status: 400}
	}
	return t, nil
}

func (s *Server) do(ctx context.Context, op string, body []byte) (any, error) {
	switch op {
	case "CreateTable":
		return s.createTable(ctx, body)
	case "DeleteTable":
		in, err := decode[server.DeleteTableInput](body)
		if err != nil {
			return nil, err
		}
		out, err := s.engine.DeleteTable(ctx, in)
		if err == nil {
			delete(s.tables, aws.ToString(in.TableName))
		}
		return out, err
	case "DescribeTable":
		in, err := decode[server.DescribeTableInput](body)
		if err != nil {
			return nil, err
		}
		return s.engine.DescribeTable(ctx, in)
	case "ListTables":
		return map[string]any{"TableNames": slices.Sorted(maps.Keys(s.tables))}, nil
	case "UpdateTimeToLive", "DescribeTimeToLive":
		return s.timeToLive(op, body)
	case "GetItem":
		return s.getItem(ctx, body)
	case "PutItem":
		return s.putItem(ctx, body)
	case "DeleteItem":
		return s.deleteItem(ctx, body)
	case "UpdateItem":
		return s.updateItem(ctx, body)
	case "Query", "Scan":
		return s.search(ctx, op, body)
	case "BatchWriteItem":
		return s.batchWrite(ctx, body)
	case "BatchGetItem":
		return s.batchGet(ctx, body)
	case "TransactWriteItems":
		return s.transactWrite(ctx, body)
	case "TransactGetItems":
		return s.transactGet(ctx, body)
	}
	return nil, &apiError{Type: "UnknownOperationException", Message: "The embedded DynamoDB does not implement " + op, Status: 400}
}

func (s *Server) createTable(ctx context.Context, body []byte) (any, error) {
	in, err := decode[server.CreateTableInput](body)
	if err != nil {
		return nil, err
	}
	t := &table{indexes: map[string][]string{}}
	t.keys = keyNames(in.KeySchema)
	for _, g := range in.GlobalSecondaryIndexes {
		t.indexes[aws.ToString(g.IndexName)] = keyNames(g.KeySchema)
	}
	for _, l := range in.LocalSecondaryIndexes {
		t.indexes[aws.ToString(l.IndexName)] = keyNames(l.KeySchema)
	}
	out, err := s.engine.CreateTable(ctx, in)
	if err != nil {
		return nil, err
	}
	s.tables[aws.ToString(in.TableName)] = t
	return out, nil
}

func keyNames(schema []ddbtypes.KeySchemaElement) []string {
	var hash, rng []string
	for _, k := range schema {
		if k.KeyType == ddbtypes.KeyTypeHash {
			hash = append(hash, aws.ToString(k.AttributeName))
		} else {
			rng = append(rng, aws.ToString(k.AttributeName))
		}
	}
	return append(hash, rng...)
}

func (s *Server) timeToLive(op string, body []byte) (any, error) {
	var in struct {
		TableName               *string
		TimeToLiveSpecification struct {
			AttributeName string
			Enabled       bool
		}
	}
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, &apiError{Type: "SerializationException", Message: err.Error(), Status: 400}
	}
	t, err := s.table(in.TableName)
	if err != nil {
		return nil, err
	}
	if op == "DescribeTimeToLive" {
		if t.ttl == "" {
			return map[string]any{"TimeToLiveDescription": map[string]any{"TimeToLiveStatus": "DISABLED"}}, nil
		}
		return map[string]any{"TimeToLiveDescription": map[string]any{"TimeToLiveStatus": "ENABLED", "AttributeName": t.ttl}}, nil
	}
	spec := in.TimeToLiveSpecification
	if (t.ttl != "") == spec.Enabled {
		return nil, validation("TimeToLive is already " + map[bool]string{true: "enabled", false: "disabled"}[spec.Enabled])
	}
	t.ttl = ""
	if spec.Enabled {
		t.ttl = spec.AttributeName
	}
	return map[string]any{"TimeToLiveSpecification": spec}, nil
}

// get reads an item straight from the engine, or nil.
func (s *Server) get(ctx context.Context, tableName *string, key item) item {
	out, err := s.engine.GetItem(ctx, &server.GetItemInput{TableName: tableName, Key: key})
	if err != nil || out == nil {
		return nil
	}
	return out.Item
}

// restore puts an item back as it was before a write: deleted when it did not exist.
func (s *Server) restore(ctx context.Context, t *table, tableName *string, key, before item) {
	if before == nil {
		_, _ = s.engine.DeleteItem(ctx, &server.DeleteItemInput{TableName: tableName, Key: key})
		return
	}
	_, _ = s.engine.PutItem(ctx, &server.PutItemInput{TableName: tableName, Item: before})
}

func (s *Server) getItem(ctx context.Context, body []byte) (any, error) {
	in, err := decode[server.GetItemInput](body)
	if err != nil {
		return nil, err
	}
	t, err := s.table(in.TableName)
	if err != nil {
		return nil, err
	}
	if err := t.checkKey(in.Key); err != nil {
		return nil, err
	}
	if err := (expressions{exprs: map[string]*string{"ProjectionExpression": in.ProjectionExpression}, names: in.ExpressionAttributeNames}).check(); err != nil {
		return nil, err
	}
	out, err := s.engine.GetItem(ctx, in)
	if err != nil {
		return nil, err
	}
	if out.Item == nil {
		return map[string]any{}, nil
	}
	return map[string]any{"Item": wireItem(out.Item)}, nil
}

func (s *Server) putItem(ctx context.Context, body []byte) (any, error) {
	in, err := decode[server.PutItemInput](body)
	if err != nil {
		return nil, err
	}
	t, err := s.checked(in.TableName, func(t *table) *apiError { return t.checkItem(in.Item) },
		expressions{exprs: map[string]*string{"ConditionExpression": in.ConditionExpression},
			names: in.ExpressionAttributeNames, values: in.ExpressionAttributeValues})
	if err != nil {
		return nil, err
	}
	before := s.get(ctx, in.TableName, t.keyOf(in.Item))
	if _, err := s.engine.PutItem(ctx, in); err != nil {
		return nil, s.conditionItem(err, in.ReturnValuesOnConditionCheckFailure, before)
	}
	if in.ReturnValues == ddbtypes.ReturnValueAllOld && before != nil {
		return map[string]any{"Attributes": wireItem(before)}, nil
	}
	return map[string]any{}, nil
}

func (s *Server) deleteItem(ctx context.Context, body []byte) (any, error) {
	in, err := decode[server.DeleteItemInput](body)
	if err != nil {
		return nil, err
	}
	if _, err := s.checked(in.TableName, func(t *table) *apiError { return t.checkKey(in.Key) },
		expressions{exprs: map[string]*string{"ConditionExpression": in.ConditionExpression},
			names: in.ExpressionAttributeNames, values: in.ExpressionAttributeValues}); err != nil {
		return nil, err
	}
	before := s.get(ctx, in.TableName, in.Key)
	if _, err := s.engine.DeleteItem(ctx, in); err != nil {
		return nil, s.conditionItem(err, in.ReturnValuesOnConditionCheckFailure, before)
	}
	if in.ReturnValues == ddbtypes.ReturnValueAllOld && before != nil {
		return map[string]any{"Attributes": wireItem(before)}, nil
	}
	return map[string]any{}, nil
}

// checked finds the table a single-item write names and checks the request as DynamoDB does
// before anything is written: its key or item (check), and its expressions.
func (s *Server) checked(name *string, check func(*table) *apiError, exprs expressions) (*table, error) {
	t, err := s.table(name)
	if err != nil {
		return nil, err
	}
	if err := check(t); err != nil {
		return nil, err
	}
	if err := exprs.check(); err != nil {
		return nil, err
	}
	return t, nil
}

// conditionItem attaches the item as it was to a failed condition, when the caller asked for
// it (minidyn does only for UpdateItem).
func (s *Server) conditionItem(err error, rv ddbtypes.ReturnValuesOnConditionCheckFailure, before item) error {
	var ccf *ddbtypes.ConditionalCheckFailedException
	if errors.As(err, &ccf) && rv == ddbtypes.ReturnValuesOnConditionCheckFailureAllOld && before != nil {
		return &apiError{Type: "ConditionalCheckFailedException", Message: "The conditional request failed", Status: 400, Item: wireItem(before)}
	}
	return err
}

// updateItem applies an update, then corrects what minidyn gets wrong: a top-level REMOVE,
// the size limit on the result, and the return values.
func (s *Server) updateItem(ctx context.Context, body []byte) (any, error) {
	in, err := decode[server.UpdateItemInput](body)
	if err != nil {
		return nil, err
	}
	t, err := s.checked(in.TableName, func(t *table) *apiError { return t.checkKey(in.Key) },
		expressions{exprs: map[string]*string{"UpdateExpression": in.UpdateExpression, "ConditionExpression": in.ConditionExpression},
			names: in.ExpressionAttributeNames, values: in.ExpressionAttributeValues})
	if err != nil {
		return nil, err
	}
	before := s.get(ctx, in.TableName, in.Key)
	asked := in.ReturnValues
	in.ReturnValues = ddbtypes.ReturnValueAllNew
	out, err := s.engine.UpdateItem(ctx, in)
	if err != nil {
		return nil, err
	}
	after := s.fixRemove(ctx, in.TableName, out.Attributes, aws.ToString(in.UpdateExpression), in.ExpressionAttributeNames)
	if itemSize(after) > MaxItemBytes {
		s.restore(ctx, t, in.TableName, in.Key, before)
		return nil, validation("Item size to update has exceeded the maximum allowed size")
	}
	updated := ddbexpr.UpdatedNames(aws.ToString(in.UpdateExpression), in.ExpressionAttributeNames)
	var attrs item
	switch asked {
	case ddbtypes.ReturnValueAllNew:
		attrs = after
	case ddbtypes.ReturnValueAllOld:
		attrs = before
	case ddbtypes.ReturnValueUpdatedNew:
		attrs = only(after, updated)
	case ddbtypes.ReturnValueUpdatedOld:
		attrs = only(before, updated)
	}
	if len(attrs) == 0 {
		return map[string]any{}, nil
	}
	return map[string]any{"Attributes": wireItem(attrs)}, nil
}

// fixRemove removes the top-level attributes an update expression's REMOVE names from the
// item the update left, which minidyn keeps, and returns the item as DynamoDB would hold it.
func (s *Server) fixRemove(ctx context.Context, tableName *string, after item, expr string, names map[string]string) item {
	removed := ddbexpr.Removed(expr, names)
	if after == nil || !slices.ContainsFunc(removed, func(n string) bool { _, ok := after[n]; return ok }) {
		return after
	}
	fixed := maps.Clone(after)
	for _, n := range removed {
		delete(fixed, n)
	}
	_, _ = s.engine.PutItem(ctx, &server.PutItemInput{TableName: tableName, Item: fixed})
	return fixed
}

func only(it item, names []string) item {
	out := item{}
	for _, n := range names {
		if v, ok := it[n]; ok {
			out[n] = v
		}
	}
	return out
}

func (s *Server) batchWrite(ctx context.Context, body []byte) (any, error) {
	in, err := decode[server.BatchWriteItemInput](body)
	if err != nil {
		return nil, err
	}
	if len(in.RequestItems) == 0 {
		return nil, validation("1 validation error detected: Value '{}' at 'requestItems' failed to satisfy constraint: Member must have length greater than or equal to 1")
	}
	for name, reqs := range in.RequestItems {
		t, err := s.table(&name)
		if err != nil {
			return nil, err
		}
		if len(reqs) < 1 || len(reqs) > MaxBatchWrites {
			return nil, validation(fmt.Sprintf("1 validation error detected: Value at 'RequestItems.%s.member' failed to satisfy constraint: "+
				"Member must have length less than or equal to %d", name, MaxBatchWrites))
		}
		seen := map[string]bool{}
		for _, wr := range reqs {
			var k item
			switch {
			case wr.PutRequest != nil:
				if err := t.checkItem(wr.PutRequest.Item); err != nil {
					return nil, err
				}
				k = t.keyOf(wr.PutRequest.Item)
			case wr.DeleteRequest != nil:
				if err := t.checkKey(wr.DeleteRequest.Key); err != nil {
					return nil, err
				}
				k = wr.DeleteRequest.Key
			}
			if seen[keyID(k)] {
				return nil, validation("Provided list of item keys contains duplicates")
			}
			seen[keyID(k)] = true
		}
	}
	if _, err := s.engine.BatchWriteItem(ctx, in); err != nil {
		return nil, err
	}
	return map[string]any{"UnprocessedItems": map[string]any{}}, nil
}

func (s *Server) batchGet(ctx context.Context, body []byte) (any, error) {
	in, err := decode[server.BatchGetItemInput](body)
	if err != nil {
		return nil, err
	}
	n := 0
	for name, ka := range in.RequestItems {
		t, err := s.table(&name)
		if err != nil {
			return nil, err
		}
		seen := map[string]bool{}
		for _, k := range ka.Keys {
			if err := t.checkKey(k); err != nil {
				return nil, err
			}
			if seen[keyID(k)] {
				return nil, validation("Provided list of item keys contains duplicates")
			}
			seen[keyID(k)] = true
		}
		n += len(ka.Keys)
	}
	if n > MaxBatchGets {
		return nil, validation("Too many items requested for the BatchGetItem call")
	}
	out, err := s.engine.BatchGetItem(ctx, in)
	if err != nil {
		return nil, err
	}
	responses := map[string]any{}
	for name, its := range out.Responses {
		responses[name] = wireItems(its)
	}
	return map[string]any{"Responses": responses, "UnprocessedKeys": map[string]any{}}, nil
}

func (s *Server) transactGet(ctx context.Context, body []byte) (any, error) {
	in, err := decode[server.TransactGetItemsInput](body)
	if err != nil {
		return nil, err
	}
	if len(in.TransactItems) > MaxTransactionItems {
		return nil, validation(fmt.Sprintf("1 validation error detected: Value at 'TransactItems' failed to satisfy constraint: Member must have length less than or equal to %d", MaxTransactionItems))
	}
	out, err := s.engine.TransactGetItems(ctx, in)
	if err != nil {
		return nil, err
	}
	responses := make([]any, 0, len(out.Responses))
	for _, r := range out.Responses {
		if r.Item == nil {
			responses = append(responses, map[string]any{})
		} else {
			responses = append(responses, map[string]any{"Item": wireItem(r.Item)})
		}
	}
	return map[string]any{"Responses": responses}, nil
}

// writeError answers an error as DynamoDB does.
func writeError(w http.ResponseWriter, err error) {
	e, ok := errors.AsType[*apiError](err)
	switch {
	case ok:
	case isType[*ddbtypes.TransactionCanceledException](err):
		tce, _ := errors.AsType[*ddbtypes.TransactionCanceledException](err)
		e = &apiError{Type: "TransactionCanceledException", Message: aws.ToString(tce.Message), Status: 400}
		for _, r := range tce.CancellationReasons {
			e.Reasons = append(e.Reasons, reason{Code: aws.ToString(r.Code), Message: aws.ToString(r.Message), Item: WireItem(r.Item)})
		}
	case isType[*ddbtypes.ConditionalCheckFailedException](err):
		ccf, _ := errors.AsType[*ddbtypes.ConditionalCheckFailedException](err)
		e = &apiError{Type: "ConditionalCheckFailedException", Message: "The conditional request failed", Status: 400, Item: WireItem(ccf.Item)}
	case isType[*ddbtypes.ResourceNotFoundException](err):
		e = &apiError{Type: "ResourceNotFoundException", Message: "Requested resource not found", Status: 400}
	default:
		e = &apiError{Type: "InternalServerError", Message: err.Error(), Status: 500}
		if api, ok := errors.AsType[smithy.APIError](err); ok && api.ErrorCode() != "InternalServerError" {
			e = &apiError{Type: api.ErrorCode(), Message: api.ErrorMessage(), Status: 400}
		}
	}
	prefix := "com.amazonaws.dynamodb.v20120810#"
	if e.Type == "ValidationException" {
		prefix = "com.amazon.coral.validate#"
	}
	body := map[string]any{"__type": prefix + e.Type, "message": e.Message}
	if e.Reasons != nil {
		body["CancellationReasons"] = e.Reasons
	}
	if e.Item != nil {
		body["Item"] = e.Item
	}
	b, _ := json.Marshal(body)
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	w.Header().Set("X-Amzn-Requestid", "local")
	w.WriteHeader(e.Status)
	_, _ = w.Write(b)
}

func isType[T error](err error) bool {
	_, ok := errors.AsType[T](err)
	return ok
}
