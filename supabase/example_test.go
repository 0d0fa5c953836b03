package supabase_test

import (
	"fmt"

	"github.com/supapool/supapool/supabase"
)

func Example() {
	p := supabase.Project{
		Ref:        "abcdefghijklmnopqrst",
		Password:   "p@ss:word/1",
		PoolerHost: "aws-1-us-east-2.pooler.supabase.com", // from the dashboard's Connect dialog
	}
	fmt.Println(p.DirectURL())
	fmt.Println(p.SessionPoolerURL())
	fmt.Println(p.TransactionPoolerURL())
	fmt.Println(p.DedicatedPoolerURL())

	back, mode, err := supabase.ParseURL("postgresql://postgres.abcdefghijklmnopqrst:pw@aws-0-us-east-1.pooler.supabase.com:6543/postgres?pgbouncer=true")
	if err != nil {
		panic(err)
	}
	fmt.Println(mode, back)
	// Output:
	// postgresql://postgres:p%40ss%3Aword%2F1@db.abcdefghijklmnopqrst.supabase.co:5432/postgres?sslmode=require
	// postgresql://postgres.abcdefghijklmnopqrst:p%40ss%3Aword%2F1@aws-1-us-east-2.pooler.supabase.com:5432/postgres?sslmode=require
	// postgresql://postgres.abcdefghijklmnopqrst:p%40ss%3Aword%2F1@aws-1-us-east-2.pooler.supabase.com:6543/postgres?sslmode=require
	// postgresql://postgres:p%40ss%3Aword%2F1@db.abcdefghijklmnopqrst.supabase.co:6543/postgres?sslmode=require
	// transaction supabase project abcdefghijklmnopqrst (pooler aws-0-us-east-1.pooler.supabase.com)
}

func ExampleTier_BudgetSpec() {
	spec := supabase.TierSmall.BudgetSpec(10)
	fmt.Println(spec.Limit, spec.Reserved, spec.Pooler.ServerConns, spec.Pooler.MaxClients)
	// Output: 90 10 15 400
}
