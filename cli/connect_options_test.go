package cli

import (
	"fmt"
	"strings"
	"testing"
)

func TestEtcdOptionsNeverPrintThePassword(t *testing.T) {
	o := EtcdOptions{Endpoints: []string{"http://e:2379"}, Username: "converge", Password: "pa55word"}
	for _, format := range []string{"%v", "%+v", "%s", "%#v"} {
		if out := fmt.Sprintf(format, o); strings.Contains(out, "pa55word") || !strings.Contains(out, "converge") {
			t.Errorf("%s: %s", format, out)
		}
	}
}
