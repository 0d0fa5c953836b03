package main

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/supapool/supapool/pool"
)

//go:embed schema.sql
var schema string

// itemsChannel carries a change event after every write to items, so that
// every instance of the service drops what it cached.
const itemsChannel = "items"

// migrateLockID is an arbitrary advisory lock key: instances starting
// together would otherwise race on CREATE TABLE IF NOT EXISTS, which is
// not atomic in PostgreSQL.
const migrateLockID = 7_420_031

// migrate applies schema.sql in one transaction. Transactions go to the
// direct route by default, and DDL belongs there: it takes locks a
// transaction pooler's other clients would queue behind. For a real
// migration tool, hand it p.DirectDB().
func migrate(ctx context.Context, p *pool.Pool) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return pgx.BeginFunc(ctx, p, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "select pg_advisory_xact_lock($1)", migrateLockID); err != nil {
			return fmt.Errorf("migrate: lock: %w", err)
		}
		if _, err := tx.Exec(ctx, schema); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		return nil
	})
}

// Item is one row of items.
type Item struct {
	ID        int64     `json:"id"`
	Name      string    `json:"name"`
	Quantity  int32     `json:"quantity"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Move is one row of item_moves: quantity taken from one item and added
// to another.
type Move struct {
	ID        int64     `json:"id"`
	From      int64     `json:"from"`
	To        int64     `json:"to"`
	Quantity  int32     `json:"quantity"`
	CreatedAt time.Time `json:"created_at"`
}

// change is the payload of a notification on itemsChannel.
type change struct {
	Op  string  `json:"op"`
	IDs []int64 `json:"ids"`
}

func (c change) payload() string {
	b, _ := json.Marshal(c)
	return string(b)
}

const itemColumns = "id, name, quantity, updated_at"

func scanItem(row pgx.Row) (Item, error) {
	var it Item
	err := row.Scan(&it.ID, &it.Name, &it.Quantity, &it.UpdatedAt)
	return it, err
}

// The reads and the single-statement write below use the pool's query
// methods, which go through the transaction pooler: they need no session,
// so they cost the server only a share of the pooler's connections.

func getItem(ctx context.Context, p *pool.Pool, id int64) (Item, error) {
	return scanItem(p.QueryRow(ctx, "select "+itemColumns+" from items where id = $1", id))
}

func listItems(ctx context.Context, p *pool.Pool, after int64, limit int) ([]Item, error) {
	rows, err := p.Query(ctx, "select "+itemColumns+" from items where id > $1 order by id limit $2", after, limit)
	if err != nil {
		return nil, err
	}
	items := []Item{}
	for rows.Next() {
		it, err := scanItem(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		items = append(items, it)
	}
	return items, rows.Err()
}

func createItem(ctx context.Context, p *pool.Pool, name string, quantity int32) (Item, error) {
	return scanItem(p.QueryRow(ctx,
		"insert into items (name, quantity) values ($1, $2) returning "+itemColumns, name, quantity))
}

// Errors moveItems returns for requests that cannot succeed.
var (
	errNotFound     = errors.New("item not found")
	errInsufficient = errors.New("not enough quantity")
)

// moveItems moves quantity from one item to another, and records the move,
// in one transaction: both rows change or neither does.
func moveItems(ctx context.Context, p *pool.Pool, from, to int64, quantity int32) (Move, [2]Item, error) {
	var (
		mv    Move
		items [2]Item
	)
	err := pgx.BeginFunc(ctx, p, func(tx pgx.Tx) error {
		// Lock both rows in id order, so two opposite moves cannot
		// deadlock.
		rows, err := tx.Query(ctx, "select "+itemColumns+" from items where id in ($1, $2) order by id for update", from, to)
		if err != nil {
			return err
		}
		locked := map[int64]Item{}
		for rows.Next() {
			it, err := scanItem(rows)
			if err != nil {
				rows.Close()
				return err
			}
			locked[it.ID] = it
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if len(locked) != 2 {
			return errNotFound
		}
		if locked[from].Quantity < quantity {
			return errInsufficient
		}
		const update = "update items set quantity = quantity + $2, updated_at = now() where id = $1 returning " + itemColumns
		if items[0], err = scanItem(tx.QueryRow(ctx, update, from, -quantity)); err != nil {
			return err
		}
		if items[1], err = scanItem(tx.QueryRow(ctx, update, to, quantity)); err != nil {
			return err
		}
		err = tx.QueryRow(ctx, `insert into item_moves (from_id, to_id, quantity) values ($1, $2, $3)
			returning id, from_id, to_id, quantity, created_at`, from, to, quantity).
			Scan(&mv.ID, &mv.From, &mv.To, &mv.Quantity, &mv.CreatedAt)
		if err != nil {
			return err
		}
		// NOTIFY inside the transaction is sent on commit and never on
		// rollback, so no instance drops its cache for a change that did
		// not happen, or keeps it for one that did.
		_, err = tx.Exec(ctx, "select pg_notify($1, $2)", itemsChannel, change{Op: "moved", IDs: []int64{from, to}}.payload())
		return err
	})
	return mv, items, err
}
