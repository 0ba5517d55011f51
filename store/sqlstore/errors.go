package sqlstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/espadmin/espadmin/store"
)

// Driver error codes the store translates.
const (
	pgUniqueViolation     = "23505"
	pgForeignKeyViolation = "23503"
	pgSerialization       = "40001"
	pgDeadlock            = "40P01"

	mysqlDuplicateEntry   = 1062
	mysqlNoReferencedRow  = 1452
	mysqlNoReferencedRow2 = 1216
	mysqlDeadlock         = 1213
	mysqlLockWaitTimeout  = 1205

	// SQLite extended result codes (https://www.sqlite.org/rescode.html).
	sqliteConstraintPrimaryKey = 1555
	sqliteConstraintUnique     = 2067
	sqliteConstraintForeignKey = 787
	sqliteBusy                 = 5
)

// sqliteError is what the SQLite driver's errors provide; matching on the method keeps this
// file free of a direct dependency on one SQLite driver.
type sqliteError interface{ Code() int }

// classify returns the store sentinel that err stands for, or nil.
func classify(err error) error {
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) ||
		errors.Is(err, store.ErrSchemaTooNew) || errors.Is(err, store.ErrUnavailable) {
		return nil // already classified
	}
	if errors.Is(err, sql.ErrNoRows) {
		return store.ErrNotFound
	}
	if unavailable(err) {
		return store.ErrUnavailable
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case pgUniqueViolation:
			return store.ErrConflict
		case pgForeignKeyViolation:
			return store.ErrNotFound
		}
		return nil
	}
	var myErr *mysql.MySQLError
	if errors.As(err, &myErr) {
		switch myErr.Number {
		case mysqlDuplicateEntry:
			return store.ErrConflict
		case mysqlNoReferencedRow, mysqlNoReferencedRow2:
			return store.ErrNotFound
		}
		return nil
	}
	var liteErr sqliteError
	if errors.As(err, &liteErr) {
		switch liteErr.Code() {
		case sqliteConstraintUnique, sqliteConstraintPrimaryKey:
			return store.ErrConflict
		case sqliteConstraintForeignKey:
			return store.ErrNotFound
		}
	}
	return nil
}

// unavailable reports whether err says the database could not be reached or did not answer
// in time, rather than that the statement was wrong: a connection refused, reset or closed, a
// timeout, or a server that refuses connections while it starts or shuts down.
func unavailable(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, driver.ErrBadConn) ||
		errors.Is(err, mysql.ErrInvalidConn) || errors.Is(err, io.ErrUnexpectedEOF) {
		return true
	}
	var connErr *pgconn.ConnectError
	if errors.As(err, &connErr) {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// Class 08 is "connection exception"; 57P01-57P03 a server shutting down or
		// starting; 53300 too many connections.
		return strings.HasPrefix(pgErr.Code, "08") || pgErr.Code == "57P01" || pgErr.Code == "57P02" ||
			pgErr.Code == "57P03" || pgErr.Code == "53300"
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return true
	}
	// pgx reports a connection it closed after an earlier failure without a typed error.
	return pgconn.Timeout(err) || strings.Contains(err.Error(), "conn closed")
}

// wrap adds context to err and, when err is a missing row, a unique violation or a reference
// to a missing parent (a foreign key violation: the tenant or user does not exist), makes it
// match store.ErrNotFound or store.ErrConflict with errors.Is. The driver error stays in the
// chain for errors.As.
func wrap(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	what := fmt.Sprintf(format, args...)
	if sentinel := classify(err); sentinel != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("store: %s: %w", what, sentinel)
		}
		return fmt.Errorf("store: %s: %w: %w", what, sentinel, err)
	}
	return fmt.Errorf("store: %s: %w", what, err)
}

// isRetryable reports whether a transaction failed only because of concurrent transactions
// and can be run again.
func isRetryable(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code == pgDeadlock || pgErr.Code == pgSerialization
	}
	var myErr *mysql.MySQLError
	if errors.As(err, &myErr) {
		return myErr.Number == mysqlDeadlock || myErr.Number == mysqlLockWaitTimeout
	}
	var liteErr sqliteError
	if errors.As(err, &liteErr) {
		return liteErr.Code()&0xff == sqliteBusy
	}
	return false
}

// affected returns store.ErrNotFound when res reports no affected row.
func affected(res sql.Result, err error) error {
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return store.ErrNotFound
	}
	return nil
}
