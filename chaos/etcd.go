package chaos

import (
	"context"
	"fmt"
	"net/url"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// MemberOptions configure one member of an embedded etcd cluster run as
// its own process (`converge chaos-etcd-member`), so that the chaos suite
// can SIGKILL and restart a member as an operator's machine would lose one.
type MemberOptions struct {
	Name           string // m0, m1, ...
	Dir            string // data directory; a restart with the same one rejoins
	ClientURL      string // http://127.0.0.1:port
	PeerURL        string // http://127.0.0.1:port
	InitialCluster string // m0=http://...,m1=http://...,m2=http://...
}

// RunEtcdMember runs one member until ctx ends. The data directory is
// fsynced (this is the durability the suite checks).
func RunEtcdMember(ctx context.Context, o MemberOptions) error {
	cu, err := url.Parse(o.ClientURL)
	if err != nil {
		return fmt.Errorf("client url: %w", err)
	}
	pu, err := url.Parse(o.PeerURL)
	if err != nil {
		return fmt.Errorf("peer url: %w", err)
	}
	cfg := embed.NewConfig()
	cfg.Name = o.Name
	cfg.Dir = o.Dir
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
	cfg.InitialCluster = o.InitialCluster
	cfg.InitialClusterToken = "converge-chaos"
	cfg.ClusterState = embed.ClusterStateFlagNew
	cfg.ListenMetricsUrls = nil
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	// Short election timings make a lost member's leadership move quickly on
	// one machine.
	cfg.TickMs = 50
	cfg.ElectionMs = 500
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return fmt.Errorf("start etcd member %s: %w", o.Name, err)
	}
	defer e.Close()
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		return fmt.Errorf("etcd member %s: %w", o.Name, err)
	case <-time.After(60 * time.Second):
		return fmt.Errorf("etcd member %s not ready within 60s", o.Name)
	case <-ctx.Done():
		return nil
	}
	select {
	case <-ctx.Done():
		return nil
	case err := <-e.Err():
		return fmt.Errorf("etcd member %s: %w", o.Name, err)
	}
}
