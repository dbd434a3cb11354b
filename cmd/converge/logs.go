package main

import (
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/converge-io/converge/cli"
)

func init() { extraCommands = append(extraCommands, newLogsCmd) }

// envMesosMaster names the Mesos master converge logs asks by default.
const envMesosMaster = "CONVERGE_MESOS_MASTER"

func newLogsCmd(g *globals) *cobra.Command {
	var (
		o      cli.LogsOptions
		master string
	)
	defMaster := os.Getenv(envMesosMaster)
	if defMaster == "" {
		defMaster = "http://127.0.0.1:5050" // converge dev's local Mesos
	}
	cmd := &cobra.Command{
		Use:   "logs cluster/NAME ORDINAL",
		Short: "Print a member's stdout (or stderr) from its Mesos sandbox",
		Long: `Logs prints what the cluster's member with ORDINAL wrote to its sandbox's stdout
(--stderr: stderr), read through its Mesos agent's files API (GET /files/read),
as Mesos's web UI does. The master's /master/state locates the member's agent and
executor. -f keeps printing what it writes until interrupted.`,
		Example: `  converge logs cluster/postgres 0
  converge logs cluster/postgres 1 --stderr -f
  converge logs postgres 2 --mesos-master http://mesos-1:5050`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 3 && cli.IsClusterResource(args[0]) {
				args = []string{"cluster/" + args[1], args[2]} // "cluster NAME ORDINAL"
			}
			if len(args) != 2 {
				return cli.Usage("give one cluster and a member's ordinal: logs cluster/NAME ORDINAL")
			}
			name := args[0]
			if strings.Contains(name, "/") {
				names, err := cli.ParseNames(args[:1])
				if err != nil {
					return err
				}
				name = names[0]
			}
			ord, err := strconv.ParseInt(args[1], 10, 32)
			if err != nil || ord < 0 {
				return cli.Usage("ordinal %q: want a member's ordinal, 0 or more", args[1])
			}
			o.Master = master
			ctx := cmd.Context()
			st, err := g.connect(ctx)
			if err != nil {
				return err
			}
			defer cli.Disconnect(st)
			return cli.Logs(ctx, st, g.ns(), name, int32(ord), o, g.out)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.Stderr, "stderr", false, "print the member's stderr instead of its stdout")
	f.BoolVarP(&o.Follow, "follow", "f", false, "keep printing what the member writes until interrupted")
	f.StringVar(&master, "mesos-master", defMaster, "a Mesos master's URL (env "+envMesosMaster+")")
	return cmd
}
