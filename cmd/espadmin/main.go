// Command espadmin is ESP Admin: a self-hosted ESP32 fleet manager in one binary.
//
// Run "espadmin help" for the subcommands and docs/configuration.md for every setting.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		// One line, always: scripts and container logs read the last line.
		fmt.Fprintln(os.Stderr, "espadmin: "+strings.Join(strings.Fields(err.Error()), " "))
		os.Exit(1)
	}
}
