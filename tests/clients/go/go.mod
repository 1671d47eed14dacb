module github.com/lambda-cache-extension/lambda-cache-extension/tests/clients/go

go 1.21

require github.com/lambda-cache-extension/lambda-cache-extension/layer/go v0.0.0

// The client from this checkout: the runner builds offline, with nothing from the module proxy.
replace github.com/lambda-cache-extension/lambda-cache-extension/layer/go => ../../../layer/go
