//go:build tools

// Package tools pins the Pulumi CLI that quayside builds from source (scripts/setup.d/pulumi.sh).
// The blank import keeps github.com/pulumi/pulumi/pkg/v3 and every module its `pulumi` command needs
// in go.mod and go.sum, so `go build -mod=readonly` of that command is reproducible from this directory.
package tools

import _ "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"
