// Command attune-ferretdb runs FerretDB (a MongoDB wire-protocol server) embedded as a library,
// backed by SQLite files in a data directory. It exists because `go install` of FerretDB's own
// command panics without a generated version file (FerretDB issues 2982 and 4889).
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:27017", "TCP address to listen on")
	dataDir := flag.String("data", ".cache/ferretdb-data", "directory for the SQLite databases")
	logLevel := flag.String("log-level", "warn", "debug, info, warn or error")
	idIndex := flag.Duration("id-index-every", 250*time.Millisecond,
		"how often to add the _id lookup index to new collection tables (0 disables; see idindex.go)")
	flag.Parse()

	abs, err := filepath.Abs(*dataDir)
	if err != nil {
		fail(err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		fail(err)
	}

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fail(err)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: *listen},
		Logger:    logger,
		Handler:   "sqlite",
		SQLiteURL: "file:" + abs + "/",
	})
	if err != nil {
		fail(err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if *idIndex > 0 {
		go runIDIndexer(ctx, abs, *idIndex, logger)
	}

	logger.Warn("attune-ferretdb listening", "addr", *listen, "data", abs)
	if err := f.Run(ctx); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "attune-ferretdb:", err)
	os.Exit(1)
}
