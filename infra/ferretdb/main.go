// Command ferretdb-local runs FerretDB (MongoDB wire protocol over SQLite or PostgreSQL) through
// FerretDB's own embeddable package, github.com/FerretDB/FerretDB/ferretdb, for the local stack
// under var/. --handler chooses the backend: sqlite (a directory of SQLite files, --sqlite-url) or
// postgresql (a running PostgreSQL server, --postgresql-url).
//
// Why not `go install github.com/FerretDB/FerretDB/cmd/ferretdb`: the module as served by the Go
// module proxy lacks the generated build/version/version.txt, and that binary panics at start-up
// when built outside FerretDB's own repository. The embeddable package skips that check.
package main

import (
	"context"
	"flag"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	listen := flag.String("listen-addr", "127.0.0.1:27117", "TCP address to listen on")
	handler := flag.String("handler", "sqlite", "backend: sqlite or postgresql")
	sqliteURL := flag.String("sqlite-url", "file:data/", "SQLite URI of the data directory (ends with /)")
	postgresqlURL := flag.String("postgresql-url", "", "PostgreSQL URL, e.g. postgres://user@127.0.0.1:5432/ferretdb")
	level := flag.String("log-level", "warn", "log level: debug, info, warn or error")
	flag.Parse()

	if *handler != "sqlite" && *handler != "postgresql" {
		slog.Error("bad --handler: want sqlite or postgresql", "handler", *handler)
		os.Exit(2)
	}
	if *handler == "postgresql" && *postgresqlURL == "" {
		slog.Error("--handler=postgresql needs --postgresql-url")
		os.Exit(2)
	}

	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		slog.Error("bad --log-level", "error", err)
		os.Exit(2)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))

	db, err := ferretdb.New(&ferretdb.Config{
		Listener:      ferretdb.ListenerConfig{TCP: *listen},
		Logger:        logger,
		Handler:       *handler,
		SQLiteURL:     *sqliteURL,
		PostgreSQLURL: *postgresqlURL,
	})
	if err != nil {
		logger.Error("cannot start FerretDB", "error", err)
		os.Exit(1)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	backend := *sqliteURL
	if *handler == "postgresql" {
		backend = *postgresqlURL
	}
	logger.Warn("FerretDB listening", "addr", *listen, "handler", *handler, "backend", backend)
	if err := db.Run(ctx); err != nil {
		logger.Error("FerretDB stopped", "error", err)
		os.Exit(1)
	}
}
