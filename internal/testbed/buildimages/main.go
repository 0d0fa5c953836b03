// Command buildimages builds supapool's test images from Debian packages,
// for machines where no container registry can be reached, and prints
// the variables that point the Docker backend at them:
//
//	eval "$(go run ./internal/testbed/buildimages)"
//
// Each image is a root filesystem made by mmdebstrap from the machine's
// own apt sources (internal/rootfs), imported with docker import and
// tagged by the hash of what went into it, so a second run builds
// nothing. Progress goes to standard error.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"time"

	"github.com/supapool/supapool/internal/testbed"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	start := time.Now()
	im, err := testbed.BuildImages(ctx, func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, format+"\n", args...)
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "buildimages:", err)
		os.Exit(1)
	}
	for _, kv := range im.Env() {
		fmt.Println("export " + kv)
	}
	fmt.Fprintf(os.Stderr, "buildimages: images ready in %s\n", time.Since(start).Round(time.Second))
}
