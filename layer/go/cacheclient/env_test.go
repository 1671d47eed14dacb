package cacheclient

import (
	"os"
	"testing"
)

func unsetenv(t *testing.T, name string) {
	if err := os.Unsetenv(name); err != nil {
		t.Fatal(err)
	}
}
