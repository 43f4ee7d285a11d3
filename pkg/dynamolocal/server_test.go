package dynamolocal_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"

	"github.com/opentrace/service-accounts/pkg/dynamolocal"
)

const table = "t"

// start serves a fresh embedded DynamoDB with a pk/sk table, reached by the real SDK client.
// The client keeps the SDK's retries: none of the errors these tests expect is retryable, and
// the SDK now and then loses a large response's connection as it reads it ("use of closed
// network connection", about one read in twenty of a 1 MB page, with any HTTP client under it;
// a plain net/http client reading the same responses never does), which a retry absorbs.
func start(t *testing.T) *dynamodb.Client {
	t.Helper()
	hs := httptest.NewServer(dynamolocal.New())
	t.Cleanup(hs.Close)
	db := dynamodb.New(dynamodb.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(hs.URL),
		Credentials: credentials.NewStaticCredentialsProvider("k", "s", ""),
	})
	_, err := db.CreateTable(context.Background(), &dynamodb.CreateTableInput{
		TableName: aws.String(table), BillingMode: types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: aws.String("pk"), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String("sk"), AttributeType: types.ScalarAttributeTypeS},
		},
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String("pk"), KeyType: types.KeyTypeHash},
			{AttributeName: aws.String("sk"), KeyType: types.KeyTypeRange},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func s(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
func n(v int) types.AttributeValue    { return &types.AttributeValueMemberN{Value: fmt.Sprint(v)} }

func key(pk, sk string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{"pk": s(pk), "sk": s(sk)}
}

func itemWith(pk, sk string, attrs map[string]types.AttributeValue) map[string]types.AttributeValue {
	it := key(pk, sk)
	for k, v := range attrs {
		it[k] = v
	}
	return it
}

// wantAPIError checks that err is the API error DynamoDB returns: its code, and a message
// holding msg.
func wantAPIError(t *testing.T, err error, code, msg string) {
	t.Helper()
	apiErr, ok := errors.AsType[smithy.APIError](err)
	if !ok || apiErr.ErrorCode() != code || !strings.Contains(apiErr.ErrorMessage(), msg) {
		t.Fatalf("err = %v, want %s containing %q", err, code, msg)
	}
}

func put(t *testing.T, db *dynamodb.Client, it map[string]types.AttributeValue) {
	t.Helper()
	if _, err := db.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: aws.String(table), Item: it}); err != nil {
		t.Fatal(err)
	}
}

func get(t *testing.T, db *dynamodb.Client, pk, sk string) map[string]types.AttributeValue {
	t.Helper()
	out, err := db.GetItem(context.Background(), &dynamodb.GetItemInput{TableName: aws.String(table), Key: key(pk, sk)})
	if err != nil {
		t.Fatal(err)
	}
	return out.Item
}

// TestLimits: each of DynamoDB's limits is enforced with the error DynamoDB returns, and
// nothing refused is written.
func TestLimits(t *testing.T) {
	ctx := context.Background()
	big := func(bytes int) types.AttributeValue { return s(strings.Repeat("x", bytes)) }
	puts := func(count, size int) []types.TransactWriteItem {
		var items []types.TransactWriteItem
		for i := range count {
			items = append(items, types.TransactWriteItem{Put: &types.Put{TableName: aws.String(table),
				Item: itemWith("p", fmt.Sprint(i), map[string]types.AttributeValue{"v": big(size)})}})
		}
		return items
	}
	for _, tc := range []struct {
		name      string
		call      func(db *dynamodb.Client) error
		code, msg string
	}{
		{"Transaction101Items", func(db *dynamodb.Client) error {
			_, err := db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: puts(101, 1)})
			return err
		}, "ValidationException", "Member must have length less than or equal to 100"},
		{"TransactionOver4MB", func(db *dynamodb.Client) error {
			_, err := db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: puts(11, 390*1024)})
			return err
		}, "ValidationException", "Transaction request size has exceeded the maximum allowed size"},
		{"TransactionTwoOperationsOnOneItem", func(db *dynamodb.Client) error {
			items := puts(2, 1)
			items[1].Put.Item["sk"] = s("0")
			_, err := db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: items})
			return err
		}, "ValidationException", "Transaction request cannot include multiple operations on one item"},
		{"Item401KB", func(db *dynamodb.Client) error {
			_, err := db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(table), Item: itemWith("p", "1", map[string]types.AttributeValue{"v": big(401 * 1024)})})
			return err
		}, "ValidationException", "Item size has exceeded the maximum allowed size"},
		{"TransactionPutOf401KB", func(db *dynamodb.Client) error {
			_, err := db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: puts(1, 401*1024)})
			return err
		}, "ValidationException", "Item size has exceeded the maximum allowed size"},
		{"BatchWriteOf26", func(db *dynamodb.Client) error {
			var reqs []types.WriteRequest
			for i := range 26 {
				reqs = append(reqs, types.WriteRequest{PutRequest: &types.PutRequest{Item: key("p", fmt.Sprint(i))}})
			}
			_, err := db.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: map[string][]types.WriteRequest{table: reqs}})
			return err
		}, "ValidationException", "Member must have length less than or equal to 25"},
		{"BatchWriteDuplicateKeys", func(db *dynamodb.Client) error {
			reqs := []types.WriteRequest{{PutRequest: &types.PutRequest{Item: key("p", "1")}}, {DeleteRequest: &types.DeleteRequest{Key: key("p", "1")}}}
			_, err := db.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: map[string][]types.WriteRequest{table: reqs}})
			return err
		}, "ValidationException", "Provided list of item keys contains duplicates"},
		{"ExpressionOver4KB", func(db *dynamodb.Client) error {
			_, err := db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(table), Item: key("p", "1"),
				ConditionExpression: aws.String("attribute_not_exists(pk)" + strings.Repeat(" ", 4096))})
			return err
		}, "ValidationException", "Invalid ConditionExpression: Expression size has exceeded the maximum allowed size"},
		{"InWith101Operands", func(db *dynamodb.Client) error {
			values := map[string]types.AttributeValue{}
			var ops []string
			for i := range 101 {
				values[fmt.Sprintf(":v%d", i)] = n(i)
				ops = append(ops, fmt.Sprintf(":v%d", i))
			}
			_, err := db.Scan(ctx, &dynamodb.ScanInput{TableName: aws.String(table),
				FilterExpression: aws.String("v IN (" + strings.Join(ops, ", ") + ")"), ExpressionAttributeValues: values})
			return err
		}, "ValidationException", "The IN operator is provided with too many operands; number of operands: 101"},
		{"UnusedValue", func(db *dynamodb.Client) error {
			_, err := db.UpdateItem(ctx, &dynamodb.UpdateItemInput{TableName: aws.String(table), Key: key("p", "1"),
				UpdateExpression:          aws.String("SET v = :v"),
				ExpressionAttributeValues: map[string]types.AttributeValue{":v": n(1), ":spare": n(2)}})
			return err
		}, "ValidationException", "Value provided in ExpressionAttributeValues unused in expressions: keys: {:spare}"},
		{"UndefinedValue", func(db *dynamodb.Client) error {
			_, err := db.UpdateItem(ctx, &dynamodb.UpdateItemInput{TableName: aws.String(table), Key: key("p", "1"),
				UpdateExpression: aws.String("SET v = :v")})
			return err
		}, "ValidationException", "An expression attribute value used in expression is not defined; attribute value: :v"},
		{"PartitionKeyOver2048Bytes", func(db *dynamodb.Client) error {
			_, err := db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(table), Item: key(strings.Repeat("p", 2049), "1")})
			return err
		}, "ValidationException", "Size of hashkey has exceeded the maximum size limit of2048 bytes"},
		{"EmptyKey", func(db *dynamodb.Client) error {
			_, err := db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(table), Item: key("", "1")})
			return err
		}, "ValidationException", "cannot contain an empty string value. Key: pk"},
		{"NumberMinidynWouldRound", func(db *dynamodb.Client) error {
			_, err := db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(table),
				Item: itemWith("p", "1", map[string]types.AttributeValue{"v": &types.AttributeValueMemberN{Value: "12345678901234567"}})})
			return err
		}, "ValidationException", "minidyn"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := start(t)
			wantAPIError(t, tc.call(db), tc.code, tc.msg)
			out, err := db.Scan(ctx, &dynamodb.ScanInput{TableName: aws.String(table)})
			if err != nil || len(out.Items) != 0 {
				t.Fatalf("a refused request wrote %d items (%v)", len(out.Items), err)
			}
		})
	}
}

// TestItemSizeBoundary: an item of exactly 400 KB as DynamoDB counts it is stored; one byte
// more is refused. An update that would grow an item past it is refused and leaves it as it
// was, standalone (ValidationException) or in a transaction (cancelled with ValidationError).
func TestItemSizeBoundary(t *testing.T) {
	ctx := context.Background()
	db := start(t)
	// pk "p" (2+1), sk "1" (2+1), "v" (1) + value: 400 KB in all.
	fill := dynamolocal.MaxItemBytes - 7
	put(t, db, itemWith("p", "1", map[string]types.AttributeValue{"v": s(strings.Repeat("x", fill))}))
	_, err := db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(table), Item: itemWith("p", "2", map[string]types.AttributeValue{"v": s(strings.Repeat("x", fill+1))})})
	wantAPIError(t, err, "ValidationException", "Item size has exceeded the maximum allowed size")

	grow := func(sk string) *dynamodb.UpdateItemInput {
		return &dynamodb.UpdateItemInput{TableName: aws.String(table), Key: key("p", sk),
			UpdateExpression: aws.String("SET w = :w"), ExpressionAttributeValues: map[string]types.AttributeValue{":w": s("more")}}
	}
	_, err = db.UpdateItem(ctx, grow("1"))
	wantAPIError(t, err, "ValidationException", "Item size to update has exceeded the maximum allowed size")
	if _, grown := get(t, db, "p", "1")["w"]; grown {
		t.Fatal("the refused update was applied")
	}
	u := grow("1")
	_, err = db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		{Put: &types.Put{TableName: aws.String(table), Item: key("p", "3")}},
		{Update: &types.Update{TableName: u.TableName, Key: u.Key, UpdateExpression: u.UpdateExpression, ExpressionAttributeValues: u.ExpressionAttributeValues}},
	}})
	tce, ok := errors.AsType[*types.TransactionCanceledException](err)
	if !ok || len(tce.CancellationReasons) != 2 || aws.ToString(tce.CancellationReasons[1].Code) != "ValidationError" {
		t.Fatalf("err = %v, want a cancellation with ValidationError on the update", err)
	}
	if get(t, db, "p", "3") != nil {
		t.Fatal("the cancelled transaction's put was applied")
	}
}

// TestPagesStopAt1MB: a Query stops after the item with which the data read reaches 1 MB,
// counted before the filter, and the next page goes on from there.
func TestPagesStopAt1MB(t *testing.T) {
	ctx := context.Background()
	db := start(t)
	for i := range 5 {
		put(t, db, itemWith("p", fmt.Sprint(i), map[string]types.AttributeValue{"v": s(strings.Repeat("x", 300*1024)), "n": n(i)}))
	}
	for _, filtered := range []bool{false, true} {
		t.Run(fmt.Sprint("Filtered", filtered), func(t *testing.T) {
			in := &dynamodb.QueryInput{TableName: aws.String(table), KeyConditionExpression: aws.String("pk = :p"),
				ExpressionAttributeValues: map[string]types.AttributeValue{":p": s("p")}}
			if filtered {
				in.FilterExpression = aws.String("n >= :min")
				in.ExpressionAttributeValues[":min"] = n(3)
			}
			var counts, scanned []int32
			for {
				out, err := db.Query(ctx, in)
				if err != nil {
					t.Fatal(err)
				}
				counts, scanned = append(counts, out.Count), append(scanned, out.ScannedCount)
				if out.LastEvaluatedKey == nil {
					break
				}
				in.ExclusiveStartKey = out.LastEvaluatedKey
			}
			wantCounts := []int32{4, 1}
			if filtered {
				wantCounts = []int32{1, 1}
			}
			if fmt.Sprint(counts) != fmt.Sprint(wantCounts) || fmt.Sprint(scanned) != "[4 1]" {
				t.Fatalf("counts %v scanned %v, want %v [4 1]", counts, scanned, wantCounts)
			}
		})
	}
}

// TestCorrections: where minidyn departs from DynamoDB, the answer is DynamoDB's.
func TestCorrections(t *testing.T) {
	ctx := context.Background()
	t.Run("TopLevelRemove", func(t *testing.T) {
		db := start(t)
		put(t, db, itemWith("p", "1", map[string]types.AttributeValue{"a": n(1), "b": n(2)}))
		out, err := db.UpdateItem(ctx, &dynamodb.UpdateItemInput{TableName: aws.String(table), Key: key("p", "1"),
			UpdateExpression: aws.String("SET c = :c REMOVE a"), ExpressionAttributeValues: map[string]types.AttributeValue{":c": n(3)},
			ReturnValues: types.ReturnValueUpdatedNew})
		if err != nil {
			t.Fatal(err)
		}
		it := get(t, db, "p", "1")
		if _, ok := it["a"]; ok || it["b"] == nil || it["c"] == nil {
			t.Fatalf("item after SET c REMOVE a: %v", it)
		}
		if len(out.Attributes) != 1 || out.Attributes["c"] == nil {
			t.Fatalf("UPDATED_NEW = %v, want c only", out.Attributes)
		}
	})
	t.Run("EmptyListAndMap", func(t *testing.T) {
		db := start(t)
		put(t, db, itemWith("p", "1", map[string]types.AttributeValue{
			"a": &types.AttributeValueMemberL{Value: []types.AttributeValue{}}, "b": &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{}},
			"c": n(7),
		}))
		it := get(t, db, "p", "1")
		l, okL := it["a"].(*types.AttributeValueMemberL)
		m, okM := it["b"].(*types.AttributeValueMemberM)
		c, okC := it["c"].(*types.AttributeValueMemberN)
		if !okL || len(l.Value) != 0 || !okM || len(m.Value) != 0 || !okC || c.Value != "7" {
			t.Fatalf("read back %#v", it)
		}
	})
	t.Run("EveryFailedConditionReported", func(t *testing.T) {
		db := start(t)
		put(t, db, key("p", "1"))
		put(t, db, key("p", "3"))
		absent := aws.String("attribute_not_exists(pk)")
		_, err := db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
			{Put: &types.Put{TableName: aws.String(table), Item: key("p", "0"), ConditionExpression: absent}},
			{Put: &types.Put{TableName: aws.String(table), Item: key("p", "1"), ConditionExpression: absent}},
			{Put: &types.Put{TableName: aws.String(table), Item: key("p", "2")}},
			{ConditionCheck: &types.ConditionCheck{TableName: aws.String(table), Key: key("p", "3"), ConditionExpression: absent}},
		}})
		tce, ok := errors.AsType[*types.TransactionCanceledException](err)
		if !ok {
			t.Fatalf("err = %v", err)
		}
		var codes []string
		for _, r := range tce.CancellationReasons {
			codes = append(codes, aws.ToString(r.Code))
		}
		if want := "[None ConditionalCheckFailed None ConditionalCheckFailed]"; fmt.Sprint(codes) != want {
			t.Fatalf("reasons %v, want %s", codes, want)
		}
		if !strings.Contains(aws.ToString(tce.Message), "[None, ConditionalCheckFailed, None, ConditionalCheckFailed]") {
			t.Fatalf("message %q", aws.ToString(tce.Message))
		}
	})
	t.Run("PageFromADeletedItem", func(t *testing.T) {
		db := start(t)
		for i := range 4 {
			put(t, db, key("p", fmt.Sprint(i)))
		}
		in := &dynamodb.QueryInput{TableName: aws.String(table), KeyConditionExpression: aws.String("pk = :p"),
			ExpressionAttributeValues: map[string]types.AttributeValue{":p": s("p")}, Limit: aws.Int32(2)}
		first, err := db.Query(ctx, in)
		if err != nil || first.LastEvaluatedKey == nil {
			t.Fatalf("%v %v", first, err)
		}
		if _, err := db.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(table), Key: key("p", "1")}); err != nil {
			t.Fatal(err)
		}
		in.ExclusiveStartKey = first.LastEvaluatedKey
		next, err := db.Query(ctx, in)
		if err != nil || next.Count != 2 {
			t.Fatalf("page after a deleted item: %d items (%v), want 2", next.Count, err)
		}
		if get(t, db, "p", "1") != nil {
			t.Fatal("the placeholder stayed behind")
		}
	})
	t.Run("RetriedTransactionAppliedOnce", func(t *testing.T) {
		db := start(t)
		in := &dynamodb.TransactWriteItemsInput{ClientRequestToken: aws.String("token-1"), TransactItems: []types.TransactWriteItem{
			{Update: &types.Update{TableName: aws.String(table), Key: key("p", "1"),
				UpdateExpression:          aws.String("SET n = if_not_exists(n, :zero) + :one"),
				ExpressionAttributeValues: map[string]types.AttributeValue{":zero": n(0), ":one": n(1)}}},
		}}
		for range 2 {
			if _, err := db.TransactWriteItems(ctx, in); err != nil {
				t.Fatal(err)
			}
		}
		if got := get(t, db, "p", "1")["n"].(*types.AttributeValueMemberN).Value; got != "1" {
			t.Fatalf("counter %s after a retried transaction, want 1", got)
		}
		in.TransactItems[0].Update.ExpressionAttributeValues[":one"] = n(2)
		_, err := db.TransactWriteItems(ctx, in)
		wantAPIError(t, err, "IdempotentParameterMismatchException", "client request token")
	})
	t.Run("TimeToLiveAndListTables", func(t *testing.T) {
		db := start(t)
		if _, err := db.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{TableName: aws.String(table),
			TimeToLiveSpecification: &types.TimeToLiveSpecification{AttributeName: aws.String("ttl"), Enabled: aws.Bool(true)}}); err != nil {
			t.Fatal(err)
		}
		ttl, err := db.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(table)})
		if err != nil || ttl.TimeToLiveDescription.TimeToLiveStatus != types.TimeToLiveStatusEnabled || aws.ToString(ttl.TimeToLiveDescription.AttributeName) != "ttl" {
			t.Fatalf("%+v %v", ttl, err)
		}
		tables, err := db.ListTables(ctx, &dynamodb.ListTablesInput{})
		if err != nil || fmt.Sprint(tables.TableNames) != "[t]" {
			t.Fatalf("%v %v", tables, err)
		}
	})
}

// TestNumberSize: numbers are sized as DynamoDB sizes them, by their significant digits.
func TestNumberSize(t *testing.T) {
	for num, want := range map[string]int{
		"0": 1, "123456": 4, "3.14159": 5, "1E125": 2, "-1": 3, "100": 2, "0.001": 2, "12.5": 3,
	} {
		if got := dynamolocal.NumberSize(num); got != want {
			t.Errorf("size of %s = %d, want %d", num, got, want)
		}
	}
}
