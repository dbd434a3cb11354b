package etcdtest

import (
	"os"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// shutdownNoise are messages etcd logs at error level on every clean
// shutdown (its listeners report being closed); they would bury real errors.
var shutdownNoise = map[string]bool{
	"setting up serving from embedded etcd failed.": true,
}

// quietCore drops shutdownNoise and everything below error level.
type quietCore struct{ zapcore.Core }

func (c quietCore) With(f []zapcore.Field) zapcore.Core { return quietCore{c.Core.With(f)} }

func (c quietCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if shutdownNoise[e.Message] || !c.Enabled(e.Level) {
		return ce
	}
	return ce.AddCore(e, c)
}

// quietLogger configures cfg to log errors only, to stderr, without the
// shutdown noise.
func quietLogger(cfg *embed.Config) {
	enc := zapcore.NewConsoleEncoder(zap.NewProductionEncoderConfig())
	core := quietCore{zapcore.NewCore(enc, zapcore.Lock(os.Stderr), zapcore.ErrorLevel)}
	cfg.LogLevel = "error"
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.New(core))
}
