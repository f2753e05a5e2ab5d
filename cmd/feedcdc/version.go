package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

func newVersion(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print feedcdc's version and the versions of its key libraries",
		Example: "  feedcdc version\n  feedcdc --version",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintln(g.stdout, versionLine())
			if bi, ok := debug.ReadBuildInfo(); ok {
				for _, d := range bi.Deps {
					switch d.Path {
					case "github.com/go-mysql-org/go-mysql", "github.com/segmentio/kafka-go", "go.etcd.io/bbolt":
						fmt.Fprintf(g.stdout, "  %s %s\n", d.Path, d.Version)
					}
				}
			}
			return nil
		},
	}
}

// versionLine is the first line of `feedcdc version` and all of
// `feedcdc --version`.
func versionLine() string {
	return fmt.Sprintf("feedcdc %s (%s %s/%s)", Version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
