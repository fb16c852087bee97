// Command attune-ferretdb runs FerretDB (a MongoDB wire-protocol server) embedded as a library,
// backed by a PostgreSQL database (-postgresql-url ...; deploy/infra.sh runs a cluster of its own
// with the GIN indexes of deploy/postgres/gin-indexes.sql). It exists because `go install` of
// FerretDB's own command panics without a generated version file (FerretDB issues 2982 and 4889).
//
// FerretDB's SQLite backend was selectable here too, with an indexer that added the `_id` index its
// pushdown needed; it was removed once the figures were in (docs/performance.md).
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
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:27017", "TCP address to listen on")
	pgURL := flag.String("postgresql-url", "",
		"PostgreSQL connection string, e.g. postgres://postgres@/ferretdb?host=/run/dir&port=5432")
	logLevel := flag.String("log-level", "warn", "debug, info, warn or error")
	pprofAddr := flag.String("pprof", "", "serve Go's profiler on this address, e.g. 127.0.0.1:6060 (off by default)")
	flag.Parse()

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fail(err)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	// Durability is the cluster's synchronous_commit, set where the cluster is started. Event
	// triggers in the database add the indexes the pushdown needs, in the same transaction as
	// FerretDB's own DDL.
	if *pgURL == "" {
		fail(fmt.Errorf("-postgresql-url is required"))
	}
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:      ferretdb.ListenerConfig{TCP: *listen},
		Logger:        logger,
		Handler:       "postgresql",
		PostgreSQLURL: *pgURL,
	})
	if err != nil {
		fail(err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if *pprofAddr != "" {
		go func() { logger.Warn("pprof stopped", "error", http.ListenAndServe(*pprofAddr, nil)) }()
	}

	// the PostgreSQL URL is not logged: it may hold a password
	logger.Warn("attune-ferretdb listening", "addr", *listen, "handler", "postgresql")
	if err := f.Run(ctx); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "attune-ferretdb:", err)
	os.Exit(1)
}
