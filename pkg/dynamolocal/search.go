package dynamolocal

import (
	"context"
	"fmt"
	"maps"

	"github.com/aws/aws-sdk-go-v2/aws"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/truora/minidyn/server"

	"github.com/opentrace/service-accounts/pkg/ddbexpr"
)

// searchRequest is what Query and Scan share, so one path pages both.
type searchRequest struct {
	table    *string
	index    *string
	start    item
	limit    *int32
	sel      ddbtypes.Select
	filtered bool // a filter or a projection: what the engine answers is not what it read
	exprs    expressions
	run      func(limit *int32, unfiltered bool) (items []item, last item, err error)
}

func (s *Server) search(ctx context.Context, op string, body []byte) (any, error) {
	var r searchRequest
	if op == "Query" {
		in, err := decode[server.QueryInput](body)
		if err != nil {
			return nil, err
		}
		r = searchRequest{table: in.TableName, index: in.IndexName, start: in.ExclusiveStartKey, limit: in.Limit, sel: in.Select,
			filtered: aws.ToString(in.FilterExpression) != "" || aws.ToString(in.ProjectionExpression) != "",
			exprs: expressions{exprs: map[string]*string{"KeyConditionExpression": in.KeyConditionExpression,
				"FilterExpression": in.FilterExpression, "ProjectionExpression": in.ProjectionExpression},
				names: in.ExpressionAttributeNames, values: in.ExpressionAttributeValues}}
		r.run = func(limit *int32, unfiltered bool) ([]item, item, error) {
			q := *in
			q.Limit = limit
			if unfiltered {
				q.FilterExpression, q.ProjectionExpression, q.Select = nil, nil, ""
				q.ExpressionAttributeNames, q.ExpressionAttributeValues = usedBy(aws.ToString(in.KeyConditionExpression), in.ExpressionAttributeNames, in.ExpressionAttributeValues)
			}
			out, err := s.engine.Query(ctx, &q)
			if err != nil {
				return nil, nil, err
			}
			return out.Items, out.LastEvaluatedKey, nil
		}
	} else {
		in, err := decode[server.ScanInput](body)
		if err != nil {
			return nil, err
		}
		r = searchRequest{table: in.TableName, index: in.IndexName, start: in.ExclusiveStartKey, limit: in.Limit, sel: in.Select,
			filtered: aws.ToString(in.FilterExpression) != "" || aws.ToString(in.ProjectionExpression) != "",
			exprs: expressions{exprs: map[string]*string{"FilterExpression": in.FilterExpression, "ProjectionExpression": in.ProjectionExpression},
				names: in.ExpressionAttributeNames, values: in.ExpressionAttributeValues}}
		r.run = func(limit *int32, unfiltered bool) ([]item, item, error) {
			q := *in
			q.Limit = limit
			if unfiltered {
				q.FilterExpression, q.ProjectionExpression, q.Select = nil, nil, ""
				q.ExpressionAttributeNames, q.ExpressionAttributeValues = nil, nil
			}
			out, err := s.engine.Scan(ctx, &q)
			if err != nil {
				return nil, nil, err
			}
			return out.Items, out.LastEvaluatedKey, nil
		}
	}
	return s.page(ctx, r)
}

// usedBy keeps the placeholders an expression uses.
func usedBy(expr string, names map[string]string, values item) (map[string]string, item) {
	ns, vs := ddbexpr.Placeholders(expr)
	var outN map[string]string
	var outV item
	for _, n := range ns {
		if outN == nil {
			outN = map[string]string{}
		}
		outN[n] = names[n]
	}
	for _, v := range vs {
		if outV == nil {
			outV = item{}
		}
		outV[v] = values[v]
	}
	return outN, outV
}

// page runs a Query or Scan as DynamoDB pages it: it stops after the item with which the data
// read reaches 1 MB, counted before the filter and the projection, and then names that item as
// the last one evaluated. A page may start after an item that no longer exists.
func (s *Server) page(ctx context.Context, r searchRequest) (any, error) {
	t, err := s.table(r.table)
	if err != nil {
		return nil, err
	}
	if err := r.exprs.check(); err != nil {
		return nil, err
	}
	if r.limit != nil && *r.limit < 1 {
		return nil, validation(fmt.Sprintf("1 validation error detected: Value '%d' at 'limit' failed to satisfy constraint: Member must have value greater than or equal to 1", *r.limit))
	}
	keys := t.keys
	if r.index != nil {
		idx, ok := t.indexes[aws.ToString(r.index)]
		if !ok {
			return nil, validation("The table does not have the specified index: " + aws.ToString(r.index))
		}
		keys = append(append([]string{}, t.keys...), idx...)
	}
	if r.start != nil {
		if err := t.checkKey(r.start); err != nil {
			return nil, err
		}
		// minidyn returns nothing from a start key that names no item: an item stands there
		// while the page is read (the start key is exclusive, so it is never returned).
		if s.get(ctx, r.table, t.keyOf(r.start)) == nil {
			placeholder := maps.Clone(r.start)
			if _, err := s.engine.PutItem(ctx, &server.PutItemInput{TableName: r.table, Item: placeholder}); err != nil {
				return nil, err
			}
			defer func() {
				_, _ = s.engine.DeleteItem(ctx, &server.DeleteItemInput{TableName: r.table, Key: t.keyOf(r.start)})
			}()
		}
	}
	items, last, err := r.run(r.limit, false)
	if err != nil {
		return nil, err
	}
	read := items
	if r.filtered {
		if read, _, err = r.run(r.limit, true); err != nil {
			return nil, err
		}
	}
	scanned := len(read)
	size := 0
	for i, it := range read {
		size += itemSize(it)
		if size >= MaxPageBytes && i+1 < len(read) {
			limit := int32(i + 1)
			if items, _, err = r.run(&limit, false); err != nil {
				return nil, err
			}
			last = item{}
			for _, k := range keys {
				last[k] = it[k]
			}
			scanned = i + 1
			break
		}
	}
	out := map[string]any{"Count": len(items), "ScannedCount": scanned}
	if r.sel != ddbtypes.SelectCount {
		out["Items"] = wireItems(items)
	}
	if len(last) > 0 {
		out["LastEvaluatedKey"] = wireItem(last)
	}
	return out, nil
}
