package dynamolocal

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
	"github.com/truora/minidyn/server"
)

// idempotencyWindow is how long DynamoDB remembers a transaction's ClientRequestToken.
const idempotencyWindow = 10 * time.Minute

// target is what one item of a transaction acts on.
type target struct {
	t      *table
	name   *string
	key    item
	update *server.Update
	// the item's condition and its placeholders
	cond   *string
	names  map[string]string
	values item
	rv     ddbtypes.ReturnValuesOnConditionCheckFailure
}

func (s *Server) transactWrite(ctx context.Context, body []byte) (any, error) {
	in, err := decode[server.TransactWriteItemsInput](body)
	if err != nil {
		return nil, err
	}
	switch n := len(in.TransactItems); {
	case n < 1:
		return nil, validation("1 validation error detected: Value at 'TransactItems' failed to satisfy constraint: Member must have length greater than or equal to 1")
	case n > MaxTransactionItems:
		return nil, validation(fmt.Sprintf("1 validation error detected: Value at 'TransactItems' failed to satisfy constraint: Member must have length less than or equal to %d", MaxTransactionItems))
	}
	// The SDK writes maps in no fixed order: the request is compared in a canonical form.
	canonical, _ := json.Marshal(in)
	token, hash := aws.ToString(in.ClientRequestToken), sha256.Sum256(canonical)
	if seen, ok := s.tokens[token]; ok && token != "" && s.now().Sub(seen.at) < idempotencyWindow {
		if seen.hash == hash {
			return map[string]any{}, nil // a retry of a committed transaction: applied once
		}
		return nil, &apiError{Type: "IdempotentParameterMismatchException", Status: 400,
			Message: "Request parameters do not match the previous request with the same client request token"}
	}
	targets, err := s.targets(in)
	if err != nil {
		return nil, err
	}
	// The transaction is applied item by item under the write lock, so no other request sees
	// it in part, and undone if any item fails: minidyn's own transactions copy the whole
	// table each time, which makes a table of thousands of items crawl.
	befores := make([]item, len(targets))
	for i, tg := range targets {
		befores[i] = s.get(ctx, tg.name, tg.key)
	}
	reasons := make([]reason, len(targets))
	codes := make([]string, len(targets))
	failed := false
	for i, ti := range in.TransactItems {
		reasons[i], codes[i] = reason{Code: "None"}, "None"
		err := s.apply(ctx, ti, targets[i])
		if ti.ConditionCheck != nil {
			s.restore(ctx, targets[i].t, targets[i].name, targets[i].key, befores[i]) // a check changes nothing
		}
		var ccf *ddbtypes.ConditionalCheckFailedException
		switch {
		case err == nil:
			continue
		case errors.As(err, &ccf):
			reasons[i] = reason{Code: "ConditionalCheckFailed", Message: "The conditional request failed"}
			if targets[i].rv == ddbtypes.ReturnValuesOnConditionCheckFailureAllOld && befores[i] != nil {
				reasons[i].Item = wireItem(befores[i])
			}
		default:
			reasons[i] = reason{Code: "ValidationError", Message: apiMessage(err)}
		}
		codes[i], failed = reasons[i].Code, true
	}
	undo := func() {
		for j, tg := range targets {
			s.restore(ctx, tg.t, tg.name, tg.key, befores[j])
		}
	}
	if failed {
		undo()
		return nil, cancelled(reasons, codes)
	}
	for i, tg := range targets {
		if tg.update == nil {
			continue
		}
		after := s.fixRemove(ctx, tg.name, s.get(ctx, tg.name, tg.key), aws.ToString(tg.update.UpdateExpression), tg.names)
		if itemSize(after) > MaxItemBytes {
			undo()
			reasons[i] = reason{Code: "ValidationError", Message: "Item size to update has exceeded the maximum allowed size"}
			codes[i] = "ValidationError"
			return nil, cancelled(reasons, codes)
		}
	}
	if token != "" {
		for t, seen := range s.tokens {
			if s.now().Sub(seen.at) >= idempotencyWindow {
				delete(s.tokens, t)
			}
		}
		s.tokens[token] = idempotent{hash: hash, at: s.now()}
	}
	return map[string]any{}, nil
}

// targets validates a transaction's items as DynamoDB does before it starts: their keys,
// expressions and puts' sizes, one operation per item, 4 MB in all.
func (s *Server) targets(in *server.TransactWriteItemsInput) ([]target, error) {
	targets := make([]target, len(in.TransactItems))
	seen := map[string]bool{}
	total := 0
	for i, ti := range in.TransactItems {
		var tg target
		exprs := map[string]*string{}
		switch {
		case ti.Put != nil:
			tg = target{name: ti.Put.TableName, cond: ti.Put.ConditionExpression, names: ti.Put.ExpressionAttributeNames,
				values: ti.Put.ExpressionAttributeValues, rv: ti.Put.ReturnValuesOnConditionCheckFailure}
		case ti.Update != nil:
			tg = target{name: ti.Update.TableName, key: ti.Update.Key, update: ti.Update, cond: ti.Update.ConditionExpression,
				names: ti.Update.ExpressionAttributeNames, values: ti.Update.ExpressionAttributeValues, rv: ti.Update.ReturnValuesOnConditionCheckFailure}
			exprs["UpdateExpression"] = ti.Update.UpdateExpression
		case ti.Delete != nil:
			tg = target{name: ti.Delete.TableName, key: ti.Delete.Key, cond: ti.Delete.ConditionExpression,
				names: ti.Delete.ExpressionAttributeNames, values: ti.Delete.ExpressionAttributeValues, rv: ti.Delete.ReturnValuesOnConditionCheckFailure}
		case ti.ConditionCheck != nil:
			tg = target{name: ti.ConditionCheck.TableName, key: ti.ConditionCheck.Key, cond: ti.ConditionCheck.ConditionExpression,
				names: ti.ConditionCheck.ExpressionAttributeNames, values: ti.ConditionCheck.ExpressionAttributeValues, rv: ti.ConditionCheck.ReturnValuesOnConditionCheckFailure}
		default:
			return nil, validation(fmt.Sprintf("TransactItems[%d] names no action", i))
		}
		t, err := s.table(tg.name)
		if err != nil {
			return nil, err
		}
		tg.t = t
		if ti.Put != nil {
			if err := t.checkItem(ti.Put.Item); err != nil {
				return nil, err
			}
			tg.key = t.keyOf(ti.Put.Item)
			total += itemSize(ti.Put.Item)
		} else if err := t.checkKey(tg.key); err != nil {
			return nil, err
		}
		total += itemSize(tg.key) + itemSize(tg.values)
		exprs["ConditionExpression"] = tg.cond
		if err := (expressions{exprs: exprs, names: tg.names, values: tg.values}).check(); err != nil {
			return nil, err
		}
		id := aws.ToString(tg.name) + "\x00" + keyID(tg.key)
		if seen[id] {
			return nil, validation("Transaction request cannot include multiple operations on one item")
		}
		seen[id] = true
		targets[i] = tg
	}
	if total > MaxTransactionBytes {
		return nil, validation("Transaction request size has exceeded the maximum allowed size of 4 MB")
	}
	return targets, nil
}

// apply runs one item of a transaction on its own, with its condition.
func (s *Server) apply(ctx context.Context, ti server.TransactWriteItem, tg target) error {
	switch {
	case ti.Put != nil:
		p := ti.Put
		_, err := s.engine.PutItem(ctx, &server.PutItemInput{TableName: p.TableName, Item: p.Item, ConditionExpression: p.ConditionExpression,
			ExpressionAttributeNames: p.ExpressionAttributeNames, ExpressionAttributeValues: p.ExpressionAttributeValues})
		return err
	case ti.Update != nil:
		u := ti.Update
		_, err := s.engine.UpdateItem(ctx, &server.UpdateItemInput{TableName: u.TableName, Key: u.Key, UpdateExpression: u.UpdateExpression,
			ConditionExpression: u.ConditionExpression, ExpressionAttributeNames: u.ExpressionAttributeNames, ExpressionAttributeValues: u.ExpressionAttributeValues})
		return err
	case ti.Delete != nil:
		d := ti.Delete
		_, err := s.engine.DeleteItem(ctx, &server.DeleteItemInput{TableName: d.TableName, Key: d.Key, ConditionExpression: d.ConditionExpression,
			ExpressionAttributeNames: d.ExpressionAttributeNames, ExpressionAttributeValues: d.ExpressionAttributeValues})
		return err
	}
	// A condition check: an update under the condition, undone by the caller.
	c := ti.ConditionCheck
	names, values := maps.Clone(c.ExpressionAttributeNames), maps.Clone(c.ExpressionAttributeValues)
	if names == nil {
		names = map[string]string{}
	}
	if values == nil {
		values = item{}
	}
	names["#__check"], values[":__check"] = "__check", &server.AttributeValue{NULL: aws.Bool(true)}
	_, err := s.engine.UpdateItem(ctx, &server.UpdateItemInput{TableName: c.TableName, Key: c.Key, UpdateExpression: aws.String("SET #__check = :__check"),
		ConditionExpression: c.ConditionExpression, ExpressionAttributeNames: names, ExpressionAttributeValues: values})
	return err
}

// apiMessage is the message of an error as DynamoDB would word it.
func apiMessage(err error) string {
	var api smithy.APIError
	if errors.As(err, &api) {
		return api.ErrorMessage()
	}
	return err.Error()
}

func cancelled(reasons []reason, codes []string) *apiError {
	return &apiError{Type: "TransactionCanceledException", Status: 400, Reasons: reasons,
		Message: "Transaction cancelled, please refer cancellation reasons for specific reasons [" + strings.Join(codes, ", ") + "]"}
}
