// Command attune-ferretdb runs FerretDB (a MongoDB wire-protocol server) embedded as a library,
// backed by SQLite files in a data directory (-handler sqlite, the default) or by a PostgreSQL
// database (-handler postgresql -postgresql-url ...; deploy/infra.sh runs a cluster of its own with
// the GIN indexes of deploy/postgres/gin-indexes.sql). It exists because `go install` of FerretDB's
// own command panics without a generated version file (FerretDB issues 2982 and 4889).
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
	handler := flag.String("handler", "sqlite", "the store: sqlite or postgresql")
	pgURL := flag.String("postgresql-url", "",
		"PostgreSQL connection string for -handler postgresql, e.g. postgres://postgres@/ferretdb?host=/run/dir&port=5432")
	dataDir := flag.String("data", ".cache/ferretdb-data", "directory for the SQLite databases (-handler sqlite)")
	logLevel := flag.String("log-level", "warn", "debug, info, warn or error")
	// SQLite's synchronous=NORMAL in WAL mode: a commit survives the process being killed but is
	// fsynced at checkpoints rather than at every commit, which is what MongoDB's default write
	// concern (journal flushed every 100 ms, j:false) gives too. FULL fsyncs each commit.
	syncMode := flag.String("sync", "normal", "SQLite synchronous mode: normal or full (-handler sqlite)")
	pprofAddr := flag.String("pprof", "", "serve Go's profiler on this address, e.g. 127.0.0.1:6060 (off by default)")
	idIndex := flag.Duration("id-index-every", 250*time.Millisecond,
		"how often to add the _id lookup index to new SQLite collection tables (0 disables; see idindex.go)")
	flag.Parse()

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fail(err)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	config := &ferretdb.Config{
		Listener: ferretdb.ListenerConfig{TCP: *listen},
		Logger:   logger,
		Handler:  *handler,
	}
	var sqliteDir string // the SQLite data directory (-handler sqlite)

	switch *handler {
	case "sqlite":
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
		config.SQLiteURL = "file:" + abs + "/?_pragma=synchronous(" + *syncMode + ")"
		sqliteDir = abs

	case "postgresql":
		// Durability is the cluster's synchronous_commit, set where the cluster is started. The
		// `_id` indexer (idindex.go) is SQLite's only: on PostgreSQL, event triggers in the database
		// add the indexes the pushdown needs, in the same transaction as FerretDB's own DDL.
		if *pgURL == "" {
			fail(fmt.Errorf("-handler postgresql needs -postgresql-url"))
		}
		config.PostgreSQLURL = *pgURL

	default:
		fail(fmt.Errorf("-handler must be sqlite or postgresql, not %q", *handler))
	}

	f, err := ferretdb.New(config)
	if err != nil {
		fail(err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if *pprofAddr != "" {
		go func() { logger.Warn("pprof stopped", "error", http.ListenAndServe(*pprofAddr, nil)) }()
	}

	if sqliteDir != "" && *idIndex > 0 {
		go runIDIndexer(ctx, sqliteDir, *idIndex, logger)
	}

	// the PostgreSQL URL is not logged: it may hold a password
	logger.Warn("attune-ferretdb listening", "addr", *listen, "handler", *handler, "data", sqliteDir)
	if err := f.Run(ctx); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "attune-ferretdb:", err)
	os.Exit(1)
}
