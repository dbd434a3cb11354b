package localmesos

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
)

// missingRequired lists the proto2 `required` fields a JSON message leaves
// unset (absent or null), named as protobuf's InitializationErrorString names
// them ("subscribe.framework_info.user", "accept.operations[0].launch.task_infos[1].name").
// A master converts a JSON body into the protobuf and rejects it when
// IsInitialized fails (stout's protobuf::parse: "Missing required fields: ...");
// mesos-go's protobuf decoder already rejects such bodies, its JSON decoder
// does not. t is the Go type generated for the message (mesos-go's structs carry
// the proto field names and labels in their `protobuf` tags).
func missingRequired(t reflect.Type, raw json.RawMessage) []string {
	var out []string
	walkRequired(t, raw, "", &out)
	return out
}

func walkRequired(t reflect.Type, raw json.RawMessage, prefix string, out *[]string) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(raw, &obj) != nil {
		return // not an object: the decoder has already said why
	}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := strings.Split(f.Tag.Get("protobuf"), ",")
		if len(tag) < 4 || f.Tag.Get("protobuf_key") != "" {
			continue // not a proto field, or a map (its values are not walked)
		}
		name := strings.TrimPrefix(tag[3], "name=")
		key := strings.Split(f.Tag.Get("json"), ",")[0]
		v, present := obj[key]
		present = present && !bytes.Equal(bytes.TrimSpace(v), []byte("null"))
		if !present {
			if tag[2] == "req" {
				*out = append(*out, prefix+name)
			}
			continue
		}
		ft := f.Type
		if ft.Kind() == reflect.Slice && ft.Elem().Kind() != reflect.Uint8 {
			var items []json.RawMessage
			if json.Unmarshal(v, &items) != nil {
				continue
			}
			for j, item := range items {
				walkRequired(ft.Elem(), item, prefix+name+"["+strconv.Itoa(j)+"].", out)
			}
			continue
		}
		walkRequired(ft, v, prefix+name+".", out)
	}
}
