//go:build race

package executor_test

// raceEnabled: the test executor is built with -race too.
const raceEnabled = true
