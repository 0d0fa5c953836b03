package monitor_test

import (
	"fmt"

	"github.com/supapool/supapool/monitor"
)

// The default levels on a 60-connection server (Supabase Free): Green
// below 30, Yellow from 30 to 45, Red above 45.
func ExampleLevels_Classify() {
	var levels monitor.Levels // defaults: Yellow 0.50, Red 0.75
	for _, used := range []int{29, 30, 45, 46} {
		fmt.Printf("%d of 60: %s\n", used, levels.Classify(used, 60))
	}
	// Output:
	// 29 of 60: green
	// 30 of 60: yellow
	// 45 of 60: yellow
	// 46 of 60: red
}

// Thresholds may be counts instead of fractions; counts do not move when
// max_connections does.
func ExampleLevels_Resolve() {
	levels := monitor.Levels{Yellow: 40, Red: 0.9, Margin: 5}
	for _, maxConns := range []int{60, 200} {
		y, r, m := levels.Resolve(maxConns)
		fmt.Printf("max_connections %d: yellow at %g, red above %g, margin %g\n", maxConns, y, r, m)
	}
	// Output:
	// max_connections 60: yellow at 40, red above 54, margin 5
	// max_connections 200: yellow at 40, red above 180, margin 5
}
