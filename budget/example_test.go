package budget_test

import (
	"errors"
	"fmt"

	"github.com/supapool/supapool/budget"
)

func Example() {
	plan, err := budget.Plan(budget.Spec{
		Limit:    60, // max_connections on Supabase Free
		Reserved: 10,
		Pooler:   &budget.Pooler{ServerConns: 15, MaxClients: 200},
		Apps: []budget.App{
			{Name: "web", Instances: 4, Weight: 2, Max: 10, Direct: 1},
			{Name: "worker", Instances: 2, Direct: 2, Max: 20},
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, a := range plan.Apps() {
		fmt.Printf("%s: %d instances × %+v\n", a.Name, a.Instances, a.Alloc)
	}
	fmt.Printf("server conns %d of 60, pooler clients %d of 200\n", plan.ServerConns(), plan.PoolerClients())
	// Output:
	// web: 4 instances × {MaxConns:10 MaxDirectConns:1 MaxHeavyConns:0 MaxReplicaConns:0}
	// worker: 2 instances × {MaxConns:20 MaxDirectConns:2 MaxHeavyConns:0 MaxReplicaConns:0}
	// server conns 33 of 60, pooler clients 80 of 200
}

func ExampleInfeasibleError() {
	_, err := budget.Plan(budget.Spec{
		Limit:    60,
		Reserved: 10,
		Apps: []budget.App{
			{Name: "web", Instances: 4, Min: 4, Direct: 3},
			{Name: "worker", Instances: 8, Min: 4},
		},
	})
	var ie *budget.InfeasibleError
	if errors.As(err, &ie) {
		fmt.Printf("%d over: %v\n", ie.Over(), ie.Uses[0])
	}
	fmt.Println(err)
	// Output:
	// 10 over: worker 8 instances × 4 pooled = 32
	// budget: needs 70 server connections, limit 60 (reserved 10): worker 8 instances × 4 pooled = 32, web 4 instances × (3 direct + 4 pooled) = 28; lower instances, direct or min conns, add a pooler, or raise the limit
}
