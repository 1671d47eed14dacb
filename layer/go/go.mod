module github.com/aws-samples/lambda-cache-extension/layer/go

go 1.21
