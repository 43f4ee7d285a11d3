package template_test

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/opentrace/service-accounts/pkg/dynamo"
	"github.com/opentrace/service-accounts/pkg/template"
)

func load(t *testing.T) *template.Template {
	t.Helper()
	tpl, err := template.Load("../../template.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return tpl
}

// TestTableMatchesStore keeps the deployed table and the store's definition identical: the
// store's transactions and the local stack depend on the keys, stream and TTL it declares.
func TestTableMatchesStore(t *testing.T) {
	tbl, err := load(t).Table("Table", "t")
	if err != nil {
		t.Fatal(err)
	}
	want := dynamo.TableDefinition("t")
	if !reflect.DeepEqual(normalise(tbl.Input), normalise(want)) {
		t.Fatalf("template.yaml's table differs from dynamo.TableDefinition:\n template %+v\n store    %+v", tbl.Input, want)
	}
	if tbl.TTLAttribute != dynamo.TTLAttribute {
		t.Fatalf("TTL attribute = %q, want %q", tbl.TTLAttribute, dynamo.TTLAttribute)
	}
}

// normalise renders the exported content only, leaving out the SDK's internal markers.
func normalise(in *dynamodb.CreateTableInput) string {
	b, err := json.Marshal(in)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func TestTableRejectsUnknownProperty(t *testing.T) {
	tpl, err := template.Parse([]byte(`
Resources:
  Table:
    Type: AWS::DynamoDB::Table
    Properties:
      BillingMode: PAY_PER_REQUEST
      GlobalSecondaryIndexes: []
`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tpl.Table("Table", "t"); err == nil {
		t.Fatal("an unsupported table property must be reported")
	}
}

func TestShortFormIntrinsics(t *testing.T) {
	tpl, err := template.Parse([]byte(`
Resources:
  F:
    Type: AWS::Serverless::Function
    Properties:
      A: !Ref Table
      B: !GetAtt Table.Arn
      C: !Sub "https://${Api}.example"
      D: !If [IsProd, 1, 2]
`))
	if err != nil {
		t.Fatal(err)
	}
	got := tpl.Resources["F"].Properties
	want := map[string]any{
		"A": map[string]any{"Ref": "Table"},
		"B": map[string]any{"Fn::GetAtt": []any{"Table", "Arn"}},
		"C": map[string]any{"Fn::Sub": "https://${Api}.example"},
		"D": map[string]any{"Fn::If": []any{"IsProd", 1, 2}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %#v", got)
	}
}
