// Example function: reads the sample's parameter, secret and DynamoDB item through the cache extension, once
// during INIT and once per invoke. Built as a provided.al2023 bootstrap (see README.md):
//
//	GOOS=linux GOARCH=amd64 CGO_ENABLED=0 go build -tags lambda.norpc -o bootstrap .
//
// The client is compiled in (nothing of it is in the layer); the extension comes from the layer. Secrets are
// never logged or returned: only their length (bytes) and SHA-256.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"log"
	"time"

	"github.com/lambda-cache-extension/lambda-cache-extension/layer/go/cacheclient"
	"github.com/aws/aws-lambda-go/lambda"
)

const (
	parameter       = "CacheExtensions_Parameter1"
	secret          = "secret_info"
	secretReference = "/aws/reference/secretsmanager/" + secret
	item            = "DynamoDbTable-pKey1-sKey1"
	initBudget      = 5 * time.Second // INIT reads wait at most this long, the extension's start included
)

// Once per execution environment: its kept-alive connections and near cache serve every invoke.
var client *cacheclient.Client

type fingerprint struct {
	Length int    `json:"length"`
	SHA256 string `json:"sha256"`
}

func fingerprintOf(value string) fingerprint {
	sum := sha256.Sum256([]byte(value))
	return fingerprint{Length: len(value), SHA256: hex.EncodeToString(sum[:])}
}

type sample struct {
	Parameter           string         `json:"parameter"`
	SecretFromReference fingerprint    `json:"secretFromReference"`
	Secret              fingerprint    `json:"secret"`
	Item                map[string]any `json:"item"` // numbers are json.Number: written back with every digit
}

func readSample(ctx context.Context) (*sample, error) {
	value, err := client.GetParameter(ctx, parameter)
	if err != nil {
		return nil, err
	}
	fromReference, err := client.GetParameter(ctx, secretReference)
	if err != nil {
		return nil, err
	}
	direct, err := client.GetSecret(ctx, secret)
	if err != nil {
		return nil, err
	}
	record, err := client.GetItem(ctx, item)
	if err != nil {
		return nil, err
	}
	return &sample{Parameter: value, SecretFromReference: fingerprintOf(fromReference), Secret: fingerprintOf(direct),
		Item: record}, nil
}

func handler(ctx context.Context, _ json.RawMessage) (*sample, error) {
	return readSample(ctx)
}

func main() {
	var err error
	if client, err = cacheclient.New(cacheclient.Options{}); err != nil {
		log.Fatalf("INIT: %v", err) // exits non-zero: Lambda reports the INIT failure
	}
	// During INIT: the extension registered before this process started and serves its prefetch (a read that
	// arrives while a prefetch is in flight waits for it). An error here fails INIT: better than a first invoke
	// without the values.
	ctx, cancel := context.WithTimeout(context.Background(), initBudget)
	_, err = readSample(ctx)
	cancel()
	if err != nil {
		log.Fatalf("INIT: %v", err)
	}
	log.Print("INIT: read the sample's parameter, secret and item")
	lambda.Start(handler)
}
