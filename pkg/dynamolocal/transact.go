package dynamolocal

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/truora/minidyn/server"

	"github.com/opentrace/service-accounts/pkg/ddbexpr"
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
	befores := make([]item, len(targets))
	for i, tg := range targets {
		befores[i] = s.get(ctx, tg.name, tg.key)
	}
	if _, err := s.engine.TransactWriteItems(ctx, in); err != nil {
		if isType[*ddbtypes.TransactionCanceledException](err) {
			return nil, s.cancellation(ctx, targets, err)
		}
		return nil, err
	}
	for i, tg := range targets {
		if tg.update == nil {
			continue
		}
		after := s.fixRemove(ctx, tg.name, s.get(ctx, tg.name, tg.key), aws.ToString(tg.update.UpdateExpression), tg.names)
		if itemSize(after) > MaxItemBytes {
			for j, other := range targets {
				s.restore(ctx, other.t, other.name, other.key, befores[j])
			}
			reasons := make([]reason, len(targets))
			codes := make([]string, len(targets))
			for j := range targets {
				reasons[j], codes[j] = reason{Code: "None"}, "None"
			}
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

// cancellation rebuilds a cancelled transaction's reasons as DynamoDB reports them: the
// outcome of every item, in order (minidyn reports only the first failing one). minidyn has
// rolled the transaction back, so each item's condition is checked again on its own.
func (s *Server) cancellation(ctx context.Context, targets []target, original error) error {
	reasons := make([]reason, len(targets))
	codes := make([]string, len(targets))
	failed := false
	for i, tg := range targets {
		reasons[i], codes[i] = reason{Code: "None"}, "None"
		if tg.cond == nil || *tg.cond == "" {
			continue
		}
		names, values := ddbexpr.Placeholders(*tg.cond)
		check := &server.ConditionCheck{TableName: tg.name, Key: tg.key, ConditionExpression: tg.cond, ReturnValuesOnConditionCheckFailure: tg.rv}
		for _, n := range names {
			if check.ExpressionAttributeNames == nil {
				check.ExpressionAttributeNames = map[string]string{}
			}
			check.ExpressionAttributeNames[n] = tg.names[n]
		}
		for _, v := range values {
			if check.ExpressionAttributeValues == nil {
				check.ExpressionAttributeValues = item{}
			}
			check.ExpressionAttributeValues[v] = tg.values[v]
		}
		_, err := s.engine.TransactWriteItems(ctx, &server.TransactWriteItemsInput{TransactItems: []server.TransactWriteItem{{ConditionCheck: check}}})
		if tce, ok := errors.AsType[*ddbtypes.TransactionCanceledException](err); ok {
			reasons[i] = reason{Code: "ConditionalCheckFailed", Message: "The conditional request failed"}
			if len(tce.CancellationReasons) == 1 {
				reasons[i].Item = wireSDKItem(tce.CancellationReasons[0].Item)
			}
			codes[i] = "ConditionalCheckFailed"
			failed = true
		}
	}
	if !failed {
		return original // cancelled for another reason than a condition: minidyn's own answer
	}
	return cancelled(reasons, codes)
}

func cancelled(reasons []reason, codes []string) *apiError {
	return &apiError{Type: "TransactionCanceledException", Status: 400, Reasons: reasons,
		Message: "Transaction cancelled, please refer cancellation reasons for specific reasons [" + strings.Join(codes, ", ") + "]"}
}
