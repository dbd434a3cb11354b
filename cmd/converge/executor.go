package main

import (
	"errors"
	"os"

	"github.com/spf13/cobra"

	"github.com/converge-io/converge/executor"
)

func newExecutorCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "executor",
		Short: "Run as the Mesos custom executor of a converge task (started by the agent)",
		Long: `converge executor is the custom executor Mesos agents run for converge tasks:
it runs the task's command, answers election position queries by running
positionCommand, and runs promoteCommand when its task wins an election.

It reads the agent's MESOS_* environment, so it is started by a Mesos agent (or
converge's local Mesos), not by hand. The controller supplies it itself where
election.strategy is position and the spec names no executor.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if os.Getenv("MESOS_EXECUTOR_ID") == "" && os.Getenv("MESOS_AGENT_ENDPOINT") == "" {
				return errors.New("converge executor is started by a Mesos agent, which sets MESOS_EXECUTOR_ID, MESOS_AGENT_ENDPOINT and the other MESOS_* variables; it is not run by hand")
			}
			return executor.Run(cmd.Context())
		},
	}
}
