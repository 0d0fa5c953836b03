package testbed

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/stretchr/testify/require"
	"github.com/testcontainers/testcontainers-go"
)

// TestSweep proves the sweep removes a bed container whose owner has
// ended and keeps those of a live owner and of an owner in another pid
// namespace (which this process cannot see, so cannot judge).
func TestSweep(t *testing.T) {
	needDocker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cli, err := dockerClient(ctx)
	require.NoError(t, err)
	self := owner(os.Getpid())
	ns, _, _ := strings.Cut(self, "/")
	start := func(own string) string {
		c, err := testcontainers.GenericContainer(ctx, testcontainers.GenericContainerRequest{ContainerRequest: testcontainers.ContainerRequest{
			Image: ImagesFromEnv().PgBouncer, Entrypoint: []string{"/bin/sh", "-c", "sleep 300"},
			Labels: map[string]string{labelBed: "1", labelOwner: own},
		}, Started: true, Logger: quiet{}})
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Terminate(context.Background()) })
		return c.GetContainerID()
	}
	live := start(self)
	dead := start(ns + "/999999999:1")      // no such pid here
	foreign := start("pid:[1]/999999999:1") // another namespace
	sweep(ctx, cli)
	exists := func(id string) bool {
		_, err := cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
		return err == nil
	}
	require.True(t, exists(live), "a live owner's container was removed")
	require.False(t, exists(dead), "a dead owner's container was kept")
	require.True(t, exists(foreign), "a container of another pid namespace was removed")
}
