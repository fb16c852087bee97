package main

// FerretDB 1.24's SQLite backend pushes a filter on `_id` alone down to SQL as
// `WHERE _ferretdb_sjson->'$._id' = ?`, but the unique `_id_` index it creates is on the
// expression `_ferretdb_sjson->"_id"`. SQLite only uses an expression index whose expression
// is written the same way as in the query, so every find, update, upsert and delete by `_id`
// reads the whole table: 40 ms per operation at 20,000 documents on this machine, growing
// linearly. MongoDB (production) has no such problem.
//
// The indexer below closes the gap for the embedded store: every few hundred milliseconds it
// looks at each database file of the data directory and adds, to every collection table that
// lacks it, a (non-unique) index on exactly the expression the pushdown uses. Uniqueness is
// still enforced by FerretDB's own `_id_` index; this index only lets SQLite find a row.
// FerretDB does not know about it and does not need to: its metadata lists its own indexes,
// and dropping a collection drops the table together with every index on it.

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	_ "modernc.org/sqlite" // the same pure-Go driver FerretDB uses
)

const idIndexSuffix = "_attune_id"

// idIndexMaxEvery is the longest a file goes unchecked (a quiet file's pause doubles up to it).
const idIndexMaxEvery = 4 * time.Second

// idIndexPauseFactor: a file is next looked at no sooner than this many times its last pass took.
const idIndexPauseFactor = 20

// runIDIndexer adds the `_id` lookup index to new collection tables until ctx is done.
//
// Opening a database file parses its whole schema, and the reporting database holds hundreds of
// small tables: opening every file on every pass cost the store a fifth of its CPU under load. So a
// file whose pass finds nothing to index is looked at less and less often (doubling up to
// idIndexMaxEvery), and again every `every` once a pass has indexed something. A table created in a
// quiet file waits at most that long for its index, while it is still small; and a file that takes
// long to open waits at least idIndexPauseFactor times as long as its last pass took. Connections are not
// kept open between passes: one held across a dropped database would, on closing, delete the
// write-ahead log of the database created next under the same name.
func runIDIndexer(ctx context.Context, dir string, every time.Duration, logger *slog.Logger) {
	ticker := time.NewTicker(every)
	defer ticker.Stop()

	type schedule struct {
		next  time.Time
		pause time.Duration
	}
	files := map[string]*schedule{}

	for {
		paths, _ := filepath.Glob(filepath.Join(dir, "*.sqlite"))
		seen := make(map[string]bool, len(paths))
		now := time.Now()
		for _, f := range paths {
			seen[f] = true
			s := files[f]
			if s == nil {
				s = &schedule{pause: every}
				files[f] = s
			}
			if now.Before(s.next) {
				continue
			}
			began := time.Now()
			n, err := indexFile(ctx, f)
			took := time.Since(began)
			switch {
			case err != nil:
				logger.Debug("id indexer: skipped a database file", "file", filepath.Base(f), "error", err)
				s.pause = every
			case n > 0:
				logger.Info("id indexer: indexed new collections", "file", filepath.Base(f), "tables", n)
				s.pause = every
			default:
				s.pause = min(2*s.pause, idIndexMaxEvery)
			}
			// a file that is costly to open (hundreds of tables) is opened at most 1/idIndexPauseFactor
			// of the time, however busy its schema
			s.next = now.Add(max(s.pause, took*idIndexPauseFactor))
		}
		for f := range files {
			if !seen[f] {
				delete(files, f)
			}
		}

		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// indexFile creates the missing `_id` lookup indexes of one database file and returns how many
// it created. It opens the file read-write without creating it, so a database that FerretDB has
// just dropped is never brought back.
func indexFile(ctx context.Context, path string) (int, error) {
	db, err := sql.Open("sqlite", "file:"+path+"?mode=rw&_pragma=busy_timeout(10000)")
	if err != nil {
		return 0, err
	}
	defer db.Close()

	db.SetMaxOpenConns(1)

	rows, err := db.QueryContext(ctx, `
		SELECT c.table_name FROM _ferretdb_collections AS c
		WHERE NOT EXISTS (
			SELECT 1 FROM sqlite_master AS m
			WHERE m.type = 'index' AND m.name = c.table_name || ?
		)`, idIndexSuffix)
	if err != nil {
		return 0, err
	}

	var tables []string
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			rows.Close()
			return 0, err
		}
		tables = append(tables, t)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}

	created := 0
	for _, t := range tables {
		q := fmt.Sprintf(`CREATE INDEX IF NOT EXISTS %q ON %q (_ferretdb_sjson->'$._id')`, t+idIndexSuffix, t)
		if _, err := db.ExecContext(ctx, q); err != nil {
			// the collection may have been dropped in between; the next pass looks again
			continue
		}
		created++
	}

	return created, nil
}
