package kubeapi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authentication/request/bearertoken"
	"k8s.io/apiserver/pkg/authentication/request/union"
	x509request "k8s.io/apiserver/pkg/authentication/request/x509"
	"k8s.io/apiserver/pkg/authentication/token/tokenfile"
	"k8s.io/apiserver/pkg/authorization/authorizerfactory"
	openapinamer "k8s.io/apiserver/pkg/endpoints/openapi"
	"k8s.io/apiserver/pkg/registry/rest"
	genericapiserver "k8s.io/apiserver/pkg/server"
	"k8s.io/apiserver/pkg/server/dynamiccertificates"
	restclient "k8s.io/client-go/rest"
	basecompatibility "k8s.io/component-base/compatibility"

	"github.com/converge-io/converge/kubeapi/openapi"
	"github.com/converge-io/converge/store"
)

// KubernetesVersion is the Kubernetes API version served (/version): that of
// the k8s.io/apiserver library converge is built with.
const KubernetesVersion = "1.37.2"

// Config configures the API server.
type Config struct {
	Store *store.Store
	// Listener is where to serve (TLS); Listen is used when it is nil.
	Listener net.Listener
	Listen   string
	// CertFile and KeyFile are the serving certificate and its key (PEM).
	CertFile, KeyFile string
	// ClientCAFile: client certificates signed by it authenticate their
	// subject's common name as the user (organizations as groups).
	ClientCAFile string
	// TokenFile: static bearer tokens, kube-apiserver's --token-auth-file
	// format (token,user,uid,"group1,group2").
	TokenFile string
	Log       logr.Logger
}

// Server is a prepared API server; Run serves it.
type Server struct {
	gs   *genericapiserver.GenericAPIServer
	addr net.Addr
}

// New builds the server and opens its listener (so Addr is known at once).
// Every authenticated user may do everything; anonymous requests are
// refused (401): there is no anonymous authenticator.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil {
		return nil, errors.New("kubeapi: no store")
	}
	authn, err := authenticators(cfg)
	if err != nil {
		return nil, err
	}
	gc := genericapiserver.NewConfig(Codecs)
	if err := secureServing(gc, cfg); err != nil {
		return nil, err
	}
	gc.Authentication.Authenticator = authn
	gc.Authorization.Authorizer = authorizerfactory.NewAlwaysAllowAuthorizer()
	gc.LoopbackClientConfig = &restclient.Config{}
	gc.EffectiveVersion = basecompatibility.NewEffectiveVersionFromString(KubernetesVersion, "", "")
	namer := openapinamer.NewDefinitionNamer(Scheme)
	gc.OpenAPIConfig = genericapiserver.DefaultOpenAPIConfig(openapi.GetOpenAPIDefinitions, namer)
	gc.OpenAPIConfig.Info.Title = "converge"
	gc.OpenAPIV3Config = genericapiserver.DefaultOpenAPIV3Config(openapi.GetOpenAPIDefinitions, namer)
	gc.OpenAPIV3Config.Info.Title = "converge"

	gs, err := gc.Complete(nil).New("converge", genericapiserver.NewEmptyDelegate())
	if err != nil {
		return nil, fmt.Errorf("kubeapi: %w", err)
	}
	group := genericapiserver.NewDefaultAPIGroupInfo(GroupVersion.Group, Scheme, runtime.NewParameterCodec(Scheme), Codecs)
	group.VersionedResourcesStorageMap[GroupVersion.Version] = map[string]rest.Storage{
		"clusters":        &clusterREST{st: cfg.Store},
		"clusters/status": &statusREST{st: cfg.Store},
		"clusters/scale":  &scaleREST{st: cfg.Store},
	}
	if err := gs.InstallAPIGroup(&group); err != nil {
		return nil, fmt.Errorf("kubeapi: install %s: %w", GroupVersion, err)
	}
	// The core group serves events only (/api/v1/namespaces/NS/events).
	core := genericapiserver.NewDefaultAPIGroupInfo("", Scheme, runtime.NewParameterCodec(Scheme), Codecs)
	core.VersionedResourcesStorageMap["v1"] = map[string]rest.Storage{"events": &eventREST{st: cfg.Store}}
	if err := gs.InstallLegacyAPIGroup(genericapiserver.DefaultLegacyAPIPrefix, &core); err != nil {
		return nil, fmt.Errorf("kubeapi: install core v1 events: %w", err)
	}
	return &Server{gs: gs, addr: gc.SecureServing.Listener.Addr()}, nil
}

// Addr is where the server listens.
func (s *Server) Addr() net.Addr { return s.addr }

// Run serves until ctx ends, then shuts down (open watches are closed).
func (s *Server) Run(ctx context.Context) error {
	return s.gs.PrepareRun().RunWithContext(ctx)
}

func secureServing(gc *genericapiserver.Config, cfg Config) error {
	ln := cfg.Listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", cfg.Listen); err != nil {
			return fmt.Errorf("kubeapi: listen on %s: %w", cfg.Listen, err)
		}
	}
	cert, err := os.ReadFile(cfg.CertFile)
	if err != nil {
		return fmt.Errorf("kubeapi: serving certificate: %w", err)
	}
	key, err := os.ReadFile(cfg.KeyFile)
	if err != nil {
		return fmt.Errorf("kubeapi: serving key: %w", err)
	}
	certKey, err := dynamiccertificates.NewStaticCertKeyContent("serving-cert", cert, key)
	if err != nil {
		return fmt.Errorf("kubeapi: serving certificate %s: %w", cfg.CertFile, err)
	}
	gc.SecureServing = &genericapiserver.SecureServingInfo{Listener: ln, Cert: certKey}
	if cfg.ClientCAFile != "" {
		ca, err := clientCA(cfg.ClientCAFile)
		if err != nil {
			return err
		}
		gc.SecureServing.ClientCA = ca
	}
	return nil
}

func clientCA(path string) (dynamiccertificates.CAContentProvider, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("kubeapi: client CA: %w", err)
	}
	ca, err := dynamiccertificates.NewStaticCAContent("client-ca", pem)
	if err != nil {
		return nil, fmt.Errorf("kubeapi: client CA %s: %w", path, err)
	}
	return ca, nil
}

// authenticators are x509 client certificates (with ClientCAFile) and
// static tokens (with TokenFile); at least one is required.
func authenticators(cfg Config) (authenticator.Request, error) {
	var auths []authenticator.Request
	if cfg.ClientCAFile != "" {
		ca, err := clientCA(cfg.ClientCAFile)
		if err != nil {
			return nil, err
		}
		auths = append(auths, x509request.NewDynamic(ca.VerifyOptions, x509request.CommonNameUserConversion))
	}
	if cfg.TokenFile != "" {
		tokens, err := tokenfile.NewCSV(cfg.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("kubeapi: token file: %w", err)
		}
		auths = append(auths, bearertoken.New(tokens))
	}
	if len(auths) == 0 {
		return nil, errors.New("kubeapi: no way to authenticate clients: give a client CA or a token file (anonymous requests are refused)")
	}
	return union.New(auths...), nil
}
