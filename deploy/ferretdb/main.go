// Command attune-ferretdb runs FerretDB (a MongoDB wire-protocol server) embedded as a library,
// backed by SQLite files in a data directory. It exists because `go install` of FerretDB's own
// command panics without a generated version file (FerretDB issues 2982 and 4889).
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	_ "net/http/pprof" // served only with -pprof
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
	// SQLite's synchronous=NORMAL in WAL mode: a commit survives the process being killed but is
	// fsynced at checkpoints rather than at every commit, which is what MongoDB's default write
	// concern (journal flushed every 100 ms, j:false) gives too. FULL fsyncs each commit.
	syncMode := flag.String("sync", "normal", "SQLite synchronous mode: normal or full")
	pprofAddr := flag.String("pprof", "", "serve Go's profiler on this address, e.g. 127.0.0.1:6060 (off by default)")
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

	if *syncMode != "normal" && *syncMode != "full" {
		fail(fmt.Errorf("-sync must be normal or full, not %q", *syncMode))
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
		SQLiteURL: "file:" + abs + "/?_pragma=synchronous(" + *syncMode + ")",
	})
	if err != nil {
		fail(err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if *pprofAddr != "" {
		go func() { logger.Warn("pprof stopped", "error", http.ListenAndServe(*pprofAddr, nil)) }()
	}

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
