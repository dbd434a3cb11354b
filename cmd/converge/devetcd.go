package main

import (
	"context"

	"go.etcd.io/etcd/server/v3/embed"
	"google.golang.org/grpc"

	"github.com/converge-io/converge/store/etcdtest"
)

// devEtcd is the embedded etcd of `converge dev`.
type devEtcd struct {
	*embed.Etcd
	// endStreams ends every open gRPC stream (watches, lease keep-alives).
	endStreams context.CancelFunc
}

// startDevEtcd starts the embedded etcd with its data in dir, serving clients
// at clientURL.
//
// Why streams are ended by hand: embed.Etcd.Close stops its gRPC server
// with GracefulStop, which waits for every open RPC, and a client's watch
// stream (converge get -w, endpoints -w) never ends by itself; etcd gives up
// and cuts the connections only after its request timeout (5 s plus two
// election timeouts: 7 s). A stream interceptor ties every stream to a
// context that Close cancels first: etcd's watch and lease handlers return
// when their stream's context ends (the client sees "watch canceled" and
// reconnects later), so GracefulStop finishes at once.
func startDevEtcd(dir, clientURL string) (*devEtcd, error) {
	all, endStreams := context.WithCancel(context.Background())
	intercept := func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx, cancel := context.WithCancel(ss.Context())
		defer cancel()
		stop := context.AfterFunc(all, cancel)
		defer stop()
		return handler(srv, &ctxStream{ServerStream: ss, ctx: ctx})
	}
	e, err := etcdtest.StartEmbedded(dir, clientURL, func(cfg *embed.Config) {
		cfg.GRPCAdditionalServerOptions = append(cfg.GRPCAdditionalServerOptions, grpc.ChainStreamInterceptor(intercept))
	})
	if err != nil {
		endStreams()
		return nil, err
	}
	return &devEtcd{Etcd: e, endStreams: endStreams}, nil
}

// Close ends the open streams, then stops etcd.
func (d *devEtcd) Close() {
	d.endStreams()
	d.Etcd.Close()
}

// ctxStream is a server stream with its own context.
type ctxStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *ctxStream) Context() context.Context { return s.ctx }
