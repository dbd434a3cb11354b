package etcdtest

import (
	"context"
	"net"
	"testing"
)

// A port found free and taken before etcd binds it (by another test binary)
// fails no test: Start picks other ports. CI failed a test at "bind: address
// already in use" before it did.
func TestStartRetriesATakenPort(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	real := freePort
	defer func() { freePort = real }()
	handedOut := false
	freePort = func() (int, error) {
		if !handedOut {
			handedOut = true
			return taken.Addr().(*net.TCPAddr).Port, nil
		}
		return real()
	}
	s := Start(t)
	if !handedOut {
		t.Fatal("the taken port was never handed out")
	}
	if _, err := s.Client().Put(context.Background(), "k", "v"); err != nil {
		t.Fatalf("etcd started on other ports does not serve: %v", err)
	}
}
