module github.com/lambda-cache-extension/lambda-cache-extension/function-example/go

go 1.21

require (
	github.com/aws/aws-lambda-go v1.54.0
	github.com/lambda-cache-extension/lambda-cache-extension/layer/go v0.0.0
)

// The client from this checkout. A function of your own requires a published version instead, and has no replace.
replace github.com/lambda-cache-extension/lambda-cache-extension/layer/go => ../../layer/go
