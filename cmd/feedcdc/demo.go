package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// demoHint says where the demo went: it links test infrastructure (a
// private MariaDB, an embedded Kafka broker, the test catalog) and may run
// apt-get, which the deployable binary must not.
const demoHint = "the demo is a separate command, so that this binary carries no test infrastructure: run it from the repository with `go run ./cmd/feedcdc-demo` (see its --help)"

func newDemo(*globals) *cobra.Command {
	return &cobra.Command{
		Use:   "demo",
		Short: "Say how to run the one-command demo (go run ./cmd/feedcdc-demo)",
		Long: `The one-command demo (a private MariaDB, the small Magento catalog, an
embedded Kafka-protocol broker, the connector and a live workload) is the
separate command cmd/feedcdc-demo: it links test infrastructure and may
install MariaDB with apt-get, which this deployable binary must not.
This command only prints how to run it.`,
		Example: `  go run ./cmd/feedcdc-demo
  go run ./cmd/feedcdc-demo --profile tiny --duration 60s`,
		Args:               cobra.ArbitraryArgs,
		FParseErrWhitelist: cobra.FParseErrWhitelist{UnknownFlags: true},
		RunE: func(*cobra.Command, []string) error {
			return &exitError{code: 2, err: errors.New(demoHint)}
		},
	}
}
