module github.com/lambda-cache-extension/lambda-cache-extension/layer/go

go 1.21
