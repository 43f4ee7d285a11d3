package iam

// managedDocuments are the AWS managed policies that SAM attaches to functions, as AWS
// publishes them (AWS Managed Policy Reference), by ARN.
var managedDocuments = map[string]string{
	managedNames["AWSLambdaBasicExecutionRole"]: `{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
		"Action":["logs:CreateLogGroup","logs:CreateLogStream","logs:PutLogEvents"],"Resource":"*"}]}`,
	managedNames["AWSXrayWriteOnlyAccess"]: `{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
		"Action":["xray:PutTraceSegments","xray:PutTelemetryRecords","xray:GetSamplingRules","xray:GetSamplingTargets",
		"xray:GetSamplingStatisticSummaries"],"Resource":["*"]}]}`,
	managedNames["AWSLambdaDynamoDBExecutionRole"]: `{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
		"Action":["dynamodb:DescribeStream","dynamodb:GetRecords","dynamodb:GetShardIterator","dynamodb:ListStreams",
		"logs:CreateLogGroup","logs:CreateLogStream","logs:PutLogEvents"],"Resource":"*"}]}`,
	managedNames["AWSLambdaSQSQueueExecutionRole"]: `{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
		"Action":["sqs:ReceiveMessage","sqs:DeleteMessage","sqs:GetQueueAttributes","logs:CreateLogGroup",
		"logs:CreateLogStream","logs:PutLogEvents"],"Resource":"*"}]}`,
}

// policyTemplate is one of SAM's policy templates: its parameters and its definition, whose
// {"Ref": parameter} are replaced by the values a function gives.
type policyTemplate struct {
	Parameters []string
	Definition string
}

// policyTemplates are the SAM policy templates the expansion knows, copied from
// aws-sam-translator's policy_templates.json (a test compares the expansions).
var policyTemplates = map[string]policyTemplate{
	"DynamoDBCrudPolicy": {[]string{"TableName"}, `{"Statement":[{"Action":["dynamodb:GetItem","dynamodb:DeleteItem",
		"dynamodb:PutItem","dynamodb:Scan","dynamodb:Query","dynamodb:UpdateItem","dynamodb:BatchWriteItem",
		"dynamodb:BatchGetItem","dynamodb:DescribeTable","dynamodb:ConditionCheckItem"],"Effect":"Allow","Resource":[
		{"Fn::Sub":["arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/${tableName}",{"tableName":{"Ref":"TableName"}}]},
		{"Fn::Sub":["arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/${tableName}/index/*",{"tableName":{"Ref":"TableName"}}]}]}]}`},
	"DynamoDBReadPolicy": {[]string{"TableName"}, `{"Statement":[{"Action":["dynamodb:GetItem","dynamodb:Scan",
		"dynamodb:Query","dynamodb:BatchGetItem","dynamodb:DescribeTable"],"Effect":"Allow","Resource":[
		{"Fn::Sub":["arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/${tableName}",{"tableName":{"Ref":"TableName"}}]},
		{"Fn::Sub":["arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/${tableName}/index/*",{"tableName":{"Ref":"TableName"}}]}]}]}`},
	"DynamoDBWritePolicy": {[]string{"TableName"}, `{"Statement":[{"Action":["dynamodb:PutItem","dynamodb:UpdateItem",
		"dynamodb:BatchWriteItem"],"Effect":"Allow","Resource":[
		{"Fn::Sub":["arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/${tableName}",{"tableName":{"Ref":"TableName"}}]},
		{"Fn::Sub":["arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/${tableName}/index/*",{"tableName":{"Ref":"TableName"}}]}]}]}`},
	"DynamoDBStreamReadPolicy": {[]string{"StreamName", "TableName"}, `{"Statement":[{"Action":["dynamodb:DescribeStream",
		"dynamodb:GetRecords","dynamodb:GetShardIterator"],"Effect":"Allow","Resource":{"Fn::Sub":[
		"arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/${tableName}/stream/${streamName}",
		{"streamName":{"Ref":"StreamName"},"tableName":{"Ref":"TableName"}}]}},{"Action":["dynamodb:ListStreams"],
		"Effect":"Allow","Resource":{"Fn::Sub":["arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/${tableName}/stream/*",
		{"tableName":{"Ref":"TableName"}}]}}]}`},
	"AWSSecretsManagerGetSecretValuePolicy": {[]string{"SecretArn"}, `{"Statement":[{"Action":["secretsmanager:GetSecretValue"],
		"Effect":"Allow","Resource":{"Fn::Sub":["${secretArn}",{"secretArn":{"Ref":"SecretArn"}}]}}]}`},
	"SQSSendMessagePolicy": {[]string{"QueueName"}, `{"Statement":[{"Action":["sqs:SendMessage*"],"Effect":"Allow",
		"Resource":{"Fn::Sub":["arn:${AWS::Partition}:sqs:${AWS::Region}:${AWS::AccountId}:${queueName}",{"queueName":{"Ref":"QueueName"}}]}}]}`},
	"EventBridgePutEventsPolicy": {[]string{"EventBusName"}, `{"Statement":[{"Action":"events:PutEvents","Effect":"Allow",
		"Resource":{"Fn::Sub":["arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/${eventBusName}",
		{"eventBusName":{"Ref":"EventBusName"}}]}}]}`},
}
