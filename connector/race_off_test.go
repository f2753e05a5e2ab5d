//go:build !race

package connector

// raceBuild: the race detector multiplies a process's memory (shadow
// memory), so memory bounds asserted by tests are scaled in race builds.
const raceBuild = false
