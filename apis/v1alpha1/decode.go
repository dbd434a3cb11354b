package v1alpha1

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"unicode"

	yamlv2 "go.yaml.in/yaml/v2"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

const (
	// MaxDocumentBytes is the largest object Decode accepts: one YAML or JSON
	// document, or one item of a ClusterList. It keeps every object well
	// under etcd's request limit.
	MaxDocumentBytes = 1 << 20
	// MaxListDocumentBytes bounds a ClusterList document (the output of
	// `get clusters -o yaml`), whose items are each held to MaxDocumentBytes.
	MaxListDocumentBytes = 64 << 20
)

// ErrNoObjects is returned (wrapped, naming the source) when the input holds
// no document at all: empty, only comments, or only `---` separators.
var ErrNoObjects = errors.New("no objects found")

// DecodeError lists every problem Decode found in one source. Error() prints
// one line per problem:
//
//	orders.yaml: document 2 (cluster/foo): spec.replicas: Invalid value: -1: must be between 0 and 1000
//
// +k8s:openapi-gen=false
type DecodeError struct {
	Source   string
	Problems []Problem
}

// Problem is one thing wrong with one document.
// +k8s:openapi-gen=false
type Problem struct {
	// Document is the 1-based index of the document among the source's
	// non-empty documents.
	Document int
	// Item is the 1-based index within a ClusterList document, 0 otherwise.
	Item int
	// Object is "cluster/NAME" when the document names one, else "".
	Object string
	// Err is the problem; a *field.Error for problems with a field.
	Err error
}

func (p Problem) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "document %d", p.Document)
	if p.Item > 0 {
		fmt.Fprintf(&b, " item %d", p.Item)
	}
	if p.Object != "" {
		fmt.Fprintf(&b, " (%s)", p.Object)
	}
	b.WriteString(": ")
	b.WriteString(p.Err.Error())
	return b.String()
}

// maxPrintedProblems bounds DecodeError's message; Problems holds them all.
const maxPrintedProblems = 100

func (e *DecodeError) Error() string {
	lines := make([]string, 0, min(len(e.Problems), maxPrintedProblems+1))
	for i, p := range e.Problems {
		if i == maxPrintedProblems {
			lines = append(lines, fmt.Sprintf("%s: and %d more problems", e.Source, len(e.Problems)-i))
			break
		}
		lines = append(lines, e.Source+": "+p.Error())
	}
	return strings.Join(lines, "\n")
}

// Decode reads every Cluster in data, which is YAML (several documents
// separated by `---` lines) or JSON (one or more concatenated objects).
// A ClusterList document contributes its items. Decoding is strict: unknown
// and duplicate fields are errors naming their path. Each object is defaulted
// (SetDefaults) and validated (Validate); status is kept but not validated.
//
// All or nothing: when anything is wrong the result is nil and the error, a
// *DecodeError, lists every problem found, each naming source, the document
// and the field path. Input without any document gives an error wrapping
// ErrNoObjects.
func Decode(data []byte, source string) ([]*Cluster, error) {
	if source == "" {
		source = "<input>"
	}
	d := decoder{seen: map[string]string{}}
	for _, doc := range splitDocuments(data, source) {
		d.document(doc)
	}
	if len(d.problems) > 0 {
		return nil, &DecodeError{Source: source, Problems: d.problems}
	}
	if len(d.clusters) == 0 {
		return nil, fmt.Errorf("%s: %w", source, ErrNoObjects)
	}
	return d.clusters, nil
}

// document is one piece of the input.
// +k8s:openapi-gen=false
type document struct {
	body []byte
	// line is the 1-based line of the input where body starts.
	line int
	// isJSON: body is one JSON value; otherwise YAML.
	isJSON bool
	// err is set when the input could not even be split here.
	err error
}

// +k8s:openapi-gen=false
type decoder struct {
	docIndex int
	problems []Problem
	clusters []*Cluster
	// seen maps "namespace/name" to where it was first seen.
	seen map[string]string
}

func (d *decoder) add(item int, object string, err error) {
	d.problems = append(d.problems, Problem{Document: d.docIndex, Item: item, Object: object, Err: err})
}

func (d *decoder) document(doc document) {
	if doc.err != nil {
		d.docIndex++
		d.add(0, "", doc.err)
		return
	}
	if len(doc.body) > MaxListDocumentBytes {
		d.docIndex++
		d.add(0, "", tooLarge(len(doc.body), MaxListDocumentBytes))
		return
	}
	jsonBytes := doc.body
	if !doc.isJSON {
		var err error
		jsonBytes, err = yamlToJSON(doc.body)
		if err != nil {
			d.docIndex++
			d.add(0, "", yamlError(err, doc.line))
			return
		}
	}
	if t := bytes.TrimSpace(jsonBytes); len(t) == 0 || bytes.Equal(t, []byte("null")) {
		return // an empty document: only comments or whitespace
	}
	d.docIndex++

	// Duplicate keys: YAML's are caught by YAMLToJSONStrict; JSON's here.
	if doc.isJSON {
		var discard any
		strictErrs, err := kjson.UnmarshalStrict(jsonBytes, &discard, kjson.DisallowDuplicateFields)
		if err != nil {
			d.add(0, "", fmt.Errorf("json: %w", err))
			return
		}
		for _, e := range strictErrs {
			d.add(0, "", e)
		}
	}
	obj, err := decodeGeneric(jsonBytes)
	if err != nil {
		d.add(0, "", err)
		return
	}
	if kind, _ := obj["kind"].(string); kind == ListKind {
		d.list(obj)
		return
	}
	if len(doc.body) > MaxDocumentBytes || len(jsonBytes) > MaxDocumentBytes {
		d.add(0, objectName(obj), tooLarge(max(len(doc.body), len(jsonBytes)), MaxDocumentBytes))
		return
	}
	d.object(0, obj, jsonBytes)
}

func tooLarge(n, limit int) error {
	return fmt.Errorf("document is %d bytes, over the %d byte (%s) limit", n, limit, humanBytes(limit))
}

func humanBytes(n int) string {
	if n%(1<<20) == 0 {
		return strconv.Itoa(n>>20) + " MiB"
	}
	return strconv.Itoa(n) + " bytes"
}

// list decodes a ClusterList document: its items become clusters. Items
// without apiVersion and kind take this package's.
func (d *decoder) list(obj map[string]any) {
	if v, _ := obj["apiVersion"].(string); v != APIVersion {
		d.add(0, "", field.NotSupported(field.NewPath("apiVersion"), obj["apiVersion"], []string{APIVersion}))
		return
	}
	for k := range obj {
		switch k {
		case "apiVersion", "kind", "metadata", "items":
		default:
			d.add(0, "", withSuggestionPath(fmt.Errorf("unknown field %q", k), k, reflect.TypeOf(ClusterList{})))
		}
	}
	if md, ok := obj["metadata"]; ok && md != nil {
		b, _ := json.Marshal(md) // re-encoding decoded JSON cannot fail
		var lm metav1.ListMeta
		strictErrs, err := kjson.UnmarshalStrict(b, &lm, kjson.DisallowUnknownFields)
		if err != nil {
			d.add(0, "", fmt.Errorf("metadata: %w", err))
		}
		for _, e := range strictErrs {
			d.add(0, "", prefixStrictError(e, "metadata"))
		}
	}
	var items []any
	switch v := obj["items"].(type) {
	case nil:
	case []any:
		items = v
	default:
		d.add(0, "", field.TypeInvalid(field.NewPath("items"), field.OmitValueType{}, "expected a list of Cluster objects, got "+jsonTypeName(v)))
		return
	}
	for i, it := range items {
		item := i + 1
		m, ok := it.(map[string]any)
		if !ok {
			d.add(item, "", fmt.Errorf("expected a Cluster object (a mapping), got %s", jsonTypeName(it)))
			continue
		}
		if _, ok := m["apiVersion"]; !ok {
			m["apiVersion"] = APIVersion
		}
		if _, ok := m["kind"]; !ok {
			m["kind"] = Kind
		}
		b, err := json.Marshal(m)
		if err != nil {
			d.add(item, objectName(m), err)
			continue
		}
		if len(b) > MaxDocumentBytes {
			d.add(item, objectName(m), tooLarge(len(b), MaxDocumentBytes))
			continue
		}
		d.object(item, m, b)
	}
}

// decodeGeneric parses one JSON value, keeping numbers as written, and
// insists that it is an object.
func decodeGeneric(jsonBytes []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(jsonBytes))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("json: %w", err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("expected a Cluster object (a mapping), got %s", jsonTypeName(v))
	}
	return m, nil
}

func jsonTypeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case json.Number, float64, int64:
		return "a number"
	case bool:
		return "a boolean"
	case []any:
		return "a list"
	case map[string]any:
		return "a mapping"
	default:
		return fmt.Sprintf("%T", v)
	}
}

// objectName labels a document in messages: cluster/NAME, with a name that
// is too long or unprintable shortened and quoted so one problem stays one line.
func objectName(obj map[string]any) string {
	md, _ := obj["metadata"].(map[string]any)
	name, _ := md["name"].(string)
	if name == "" {
		return ""
	}
	const maxShown = 70
	if len(name) > maxShown || strings.IndexFunc(name, func(r rune) bool { return !unicode.IsGraphic(r) || unicode.IsSpace(r) }) >= 0 {
		if len(name) > maxShown {
			name = name[:maxShown] + "..."
		}
		name = strconv.Quote(name)
	}
	return "cluster/" + name
}

// object decodes, defaults and validates one Cluster. obj is jsonBytes
// already parsed; both describe the same object. Every problem is
// reported, and the object is kept only without any.
func (d *decoder) object(item int, obj map[string]any, jsonBytes []byte) {
	name := objectName(obj)
	problems := 0
	report := func(err error) {
		problems++
		d.add(item, name, err)
	}
	// apiVersion and kind first: for another kind of object, field errors
	// would only be noise.
	if !checkTypeMeta(obj, report) {
		return
	}
	c, bad, ok := decodeCluster(obj, jsonBytes, report)
	if !ok {
		return
	}
	SetDefaults(c)
	for _, fe := range Validate(c) {
		if !coveredBy(fe.Field, bad) {
			report(fe)
		}
	}
	if problems > 0 {
		return
	}
	d.keep(item, c, report)
}

// checkTypeMeta reports an apiVersion or kind that is missing or not
// converge's Cluster, and whether both are right.
func checkTypeMeta(obj map[string]any, report func(error)) bool {
	typeOK := true
	for _, tf := range []struct{ key, want string }{{"apiVersion", APIVersion}, {"kind", Kind}} {
		v, present := obj[tf.key]
		s, isString := v.(string)
		switch {
		case !present || v == nil || (isString && s == ""):
			report(field.Required(field.NewPath(tf.key), "must be "+strconv.Quote(tf.want)))
			typeOK = false
		case !isString || s != tf.want:
			report(field.NotSupported(field.NewPath(tf.key), v, []string{tf.want}))
			typeOK = false
		}
	}
	return typeOK
}

// decodeCluster decodes the object strictly (unknown fields are
// problems), returning the paths of the bad values it reported, so that
// validation does not report them again; ok is false when nothing more
// can be said about the object.
//
// Values of types with their own JSON decoding (quantities, durations,
// times) fail without naming their field: they are checked here, where
// the path is known, and the bad ones dropped so the rest can be decoded
// and validated all at once.
func decodeCluster(obj map[string]any, jsonBytes []byte, report func(error)) (c *Cluster, bad map[string]bool, ok bool) {
	bad = map[string]bool{}
	for _, fe := range checkCustomFields(obj) {
		report(fe)
		bad[fe.Field] = true
	}
	if len(bad) > 0 {
		b, err := json.Marshal(obj)
		if err != nil {
			report(err)
			return nil, nil, false
		}
		jsonBytes = b
	}
	c = &Cluster{}
	strictErrs, err := kjson.UnmarshalStrict(jsonBytes, c, kjson.DisallowUnknownFields)
	for _, e := range strictErrs {
		report(withSuggestion(e))
	}
	if err != nil {
		var te *json.UnmarshalTypeError
		if !errors.As(err, &te) {
			report(fmt.Errorf("json: %w", err))
			return nil, nil, false
		}
		fe := typeError(te)
		report(fe)
		bad[fe.Field] = true
	}
	return c, bad, true
}

// keep adds a valid cluster to the result, unless an earlier document or
// item already gave its namespace and name: that is reported, naming where.
func (d *decoder) keep(item int, c *Cluster, report func(error)) {
	here := fmt.Sprintf("document %d", d.docIndex)
	if item > 0 {
		here += fmt.Sprintf(" item %d", item)
	}
	if first, dup := d.seen[c.Key()]; dup {
		fe := field.Duplicate(field.NewPath("metadata", "name"), c.Name)
		fe.Detail = fmt.Sprintf("namespace %q already has it in %s", c.Namespace, first)
		report(fe)
		return
	}
	d.seen[c.Key()] = here
	d.clusters = append(d.clusters, c)
}

// coveredBy reports whether path is, or is inside, a path already reported.
func coveredBy(path string, bad map[string]bool) bool {
	for b := range bad {
		if path == b || strings.HasPrefix(path, b+".") || strings.HasPrefix(path, b+"[") {
			return true
		}
	}
	return false
}

// customField is a field whose type decodes itself.
// +k8s:openapi-gen=false
type customField struct {
	path []string // "*" matches every index of a list
	// check returns why raw (the value as JSON) cannot be decoded.
	check func(raw []byte) string
}

var customFields = []customField{
	{[]string{"spec", "task", "resources", "cpus"}, checkQuantity},
	{[]string{"spec", "task", "resources", "mem"}, checkQuantity},
	{[]string{"spec", "task", "resources", "disk"}, checkQuantity},
	{[]string{"spec", "election", "timeout"}, checkDuration},
	{[]string{"spec", "update", "progressDeadline"}, checkDuration},
	{[]string{"spec", "restart", "backoff"}, checkDuration},
	{[]string{"spec", "restart", "maxBackoff"}, checkDuration},
	{[]string{"spec", "restart", "resetAfter"}, checkDuration},
	{[]string{"spec", "task", "healthCheck", "delay"}, checkDuration},
	{[]string{"spec", "task", "healthCheck", "interval"}, checkDuration},
	{[]string{"spec", "task", "healthCheck", "timeout"}, checkDuration},
	{[]string{"spec", "task", "healthCheck", "gracePeriod"}, checkDuration},
	{[]string{"spec", "task", "readinessCheck", "delay"}, checkDuration},
	{[]string{"spec", "task", "readinessCheck", "interval"}, checkDuration},
	{[]string{"spec", "task", "readinessCheck", "timeout"}, checkDuration},
	{[]string{"spec", "task", "readinessCheck", "gracePeriod"}, checkDuration},
	{[]string{"spec", "task", "killGracePeriod"}, checkDuration},
	{[]string{"status", "lastProgressTime"}, checkTime},
	{[]string{"metadata", "creationTimestamp"}, checkTime},
	{[]string{"metadata", "deletionTimestamp"}, checkTime},
	{[]string{"status", "conditions", "*", "lastTransitionTime"}, checkTime},
}

func checkQuantity(raw []byte) string {
	var q resource.Quantity
	if err := q.UnmarshalJSON(raw); err != nil {
		return err.Error() + " (for example 500m, 0.5, 512Mi, 1Gi)"
	}
	return ""
}

func checkDuration(raw []byte) string {
	var d metav1.Duration
	if err := d.UnmarshalJSON(raw); err != nil {
		return `must be a duration such as "30s", "5m" or "1h"`
	}
	return ""
}

func checkTime(raw []byte) string {
	var t metav1.Time
	if err := t.UnmarshalJSON(raw); err != nil {
		return `must be an RFC 3339 time such as "2006-01-02T15:04:05Z"`
	}
	return ""
}

// checkCustomFields checks every customField present in obj and deletes
// those that cannot be decoded.
func checkCustomFields(obj map[string]any) field.ErrorList {
	var errs field.ErrorList
	for _, cf := range customFields {
		errs = append(errs, walkCustom(obj, cf.path, nil, cf.check)...)
	}
	return errs
}

func walkCustom(node any, path []string, at *field.Path, check func([]byte) string) field.ErrorList {
	m, ok := node.(map[string]any)
	if !ok {
		return nil // a type mismatch higher up; strict decoding reports it
	}
	key := path[0]
	child, ok := m[key]
	if !ok {
		return nil
	}
	p := at.Child(key)
	if at == nil {
		p = field.NewPath(key)
	}
	rest := path[1:]
	if len(rest) == 0 {
		if child == nil {
			return nil
		}
		raw, err := json.Marshal(child)
		if err != nil {
			return nil
		}
		if why := check(raw); why != "" {
			delete(m, key)
			return field.ErrorList{field.Invalid(p, displayValue(child), why)}
		}
		return nil
	}
	if rest[0] == "*" {
		list, ok := child.([]any)
		if !ok {
			return nil
		}
		var errs field.ErrorList
		for i, el := range list {
			errs = append(errs, walkCustom(el, rest[1:], p.Index(i), check)...)
		}
		return errs
	}
	return walkCustom(child, rest, p, check)
}

// displayValue is how a bad value is shown in a field.Error.
func displayValue(v any) any {
	switch v := v.(type) {
	case string:
		return v
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return i
		}
		if f, err := v.Float64(); err == nil {
			return f
		}
		return v.String()
	case bool:
		return v
	default:
		return jsonTypeName(v)
	}
}

// typeError turns a JSON type mismatch into a field error naming the path.
func typeError(te *json.UnmarshalTypeError) *field.Error {
	path := te.Field
	for _, embedded := range []string{"TypeMeta.", "ObjectMeta.", "ListMeta."} {
		path = strings.TrimPrefix(path, embedded)
	}
	if path == "" {
		path = "(object)"
	}
	got := te.Value
	switch got {
	case "string", "number":
		got = "a " + got
	case "bool":
		got = "a boolean"
	case "array":
		got = "a list"
	case "object":
		got = "a mapping"
	}
	detail := "expected " + goTypeName(te.Type) + ", got " + got
	if te.Type != nil && te.Type.Kind() == reflect.String && (te.Value == "bool" || strings.HasPrefix(te.Value, "number")) {
		detail += ` (quote it: YAML reads yes, no, on, off and numbers as non-strings)`
	}
	return field.TypeInvalid(field.NewPath(path), field.OmitValueType{}, detail)
}

func goTypeName(t reflect.Type) string {
	if t == nil {
		return "another type"
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int32:
		return "an integer (32-bit)"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a non-negative integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Map, reflect.Struct:
		return "a mapping"
	default:
		return t.String()
	}
}

func prefixStrictError(err error, prefix string) error {
	if fe, ok := err.(kjson.FieldError); ok {
		fe.SetFieldPath(prefix + "." + fe.FieldPath())
		return withSuggestionPath(fe, fe.FieldPath(), reflect.TypeOf(ClusterList{}))
	}
	return err
}

var unknownFieldRe = regexp.MustCompile(`^unknown field "(.*)"$`)

// withSuggestion adds `(did you mean "replicas"?)` to an unknown-field
// error when a field of that name's parent is a near miss.
func withSuggestion(err error) error {
	m := unknownFieldRe.FindStringSubmatch(err.Error())
	if m == nil {
		return err
	}
	return withSuggestionPath(err, m[1], reflect.TypeOf(Cluster{}))
}

func withSuggestionPath(err error, path string, root reflect.Type) error {
	segs := strings.Split(path, ".")
	t := root
	for _, s := range segs[:len(segs)-1] {
		if i := strings.IndexByte(s, '['); i >= 0 {
			s = s[:i]
		}
		t = fieldType(t, s)
		if t == nil {
			return err
		}
	}
	if best := closest(segs[len(segs)-1], jsonFieldNames(t)); best != "" {
		return fmt.Errorf("%w (did you mean %q?)", err, best)
	}
	return err
}

func derefType(t reflect.Type) reflect.Type {
	for t != nil && (t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
		t = t.Elem()
	}
	return t
}

// fieldType returns the type of the struct field with JSON name name in t
// (looking through embedded structs), dereferencing pointers and lists.
func fieldType(t reflect.Type, name string) reflect.Type {
	t = derefType(t)
	if t == nil || t.Kind() != reflect.Struct {
		return nil
	}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if f.Anonymous && tag == "" {
			if ft := fieldType(f.Type, name); ft != nil {
				return ft
			}
			continue
		}
		if tag == name {
			return derefType(f.Type)
		}
	}
	return nil
}

func jsonFieldNames(t reflect.Type) []string {
	t = derefType(t)
	if t == nil || t.Kind() != reflect.Struct {
		return nil
	}
	var names []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case tag == "-" || !f.IsExported():
		case f.Anonymous && tag == "":
			names = append(names, jsonFieldNames(f.Type)...)
		case tag != "":
			names = append(names, tag)
		}
	}
	return names
}

// closest returns the candidate nearest to s: equal ignoring case, or within
// an edit distance of about a third of its length.
func closest(s string, candidates []string) string {
	best, bestDist := "", -1
	for _, c := range candidates {
		if strings.EqualFold(c, s) {
			return c
		}
		dist := editDistance(strings.ToLower(s), strings.ToLower(c))
		if dist <= max(1, len(c)/3) && (bestDist < 0 || dist < bestDist) {
			best, bestDist = c, dist
		}
	}
	return best
}

// editDistance is the optimal string alignment distance: insertions,
// deletions, substitutions and transpositions of neighbours ("nmae") cost 1.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return max(len(a), len(b)) // not worth computing for suggestions
	}
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

// yamlToJSON converts one YAML document to JSON, strictly: duplicate keys
// are errors, and so is content after the document's top-level value, which
// the YAML library would otherwise drop without a word.
func yamlToJSON(body []byte) ([]byte, error) {
	j, err := yaml.YAMLToJSONStrict(body)
	if err != nil {
		return nil, err
	}
	dec := yamlv2.NewDecoder(bytes.NewReader(body))
	var discard any
	if err := dec.Decode(&discard); err != nil {
		if err == io.EOF {
			return j, nil
		}
		return nil, err
	}
	if err := dec.Decode(&discard); err != io.EOF {
		msg := "content after the end of the top-level value"
		if m := yamlLineRe.FindString(fmt.Sprint(err)); m != "" {
			msg = "content after the top-level value that ends on " + m
		}
		return nil, errors.New(msg + " (one document holds one mapping; separate documents with a --- line)")
	}
	return j, nil
}

var yamlLineRe = regexp.MustCompile(`line (\d+)`)

// yamlError makes a YAML parser error one line, with line numbers counted
// from the start of the input rather than of the document.
func yamlError(err error, firstLine int) error {
	msg := yamlLineRe.ReplaceAllStringFunc(err.Error(), func(s string) string {
		n, convErr := strconv.Atoi(strings.TrimPrefix(s, "line "))
		if convErr != nil {
			return s
		}
		return "line " + strconv.Itoa(n+firstLine-1)
	})
	msg = strings.Join(strings.Fields(strings.ReplaceAll(msg, "\n", " ")), " ")
	if !strings.HasPrefix(msg, "yaml:") {
		msg = "yaml: " + msg
	}
	return errors.New(msg)
}

// splitDocuments cuts data into documents: a JSON stream when the first
// non-blank byte is '{' and the whole input parses as JSON values, YAML
// documents separated by `---` (or ended by `...`) lines otherwise.
func splitDocuments(data []byte, source string) []document {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // UTF-8 byte order mark
	if t := bytes.TrimLeft(data, " \t\r\n"); len(t) > 0 && t[0] == '{' {
		docs, jsonErr := splitJSON(data)
		if jsonErr == nil {
			return docs
		}
		// Not JSON, but perhaps YAML starting with a flow mapping. For a
		// .json file the JSON error is the one that speaks to the user; for
		// anything else YAML's (a JSON syntax error is a YAML one too).
		if strings.HasSuffix(strings.ToLower(source), ".json") {
			return append(docs, document{err: jsonErr})
		}
	}
	return splitYAML(data)
}

func splitJSON(data []byte) ([]document, error) {
	var docs []document
	dec := json.NewDecoder(bytes.NewReader(data))
	for {
		start := dec.InputOffset()
		var raw json.RawMessage
		err := dec.Decode(&raw)
		if err == io.EOF {
			return docs, nil
		}
		if err != nil {
			var se *json.SyntaxError
			if errors.As(err, &se) {
				return docs, fmt.Errorf("json: line %d: %s", lineAt(data, se.Offset), se.Error())
			}
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return docs, fmt.Errorf("json: line %d: unexpected end of input", lineAt(data, int64(len(data))))
			}
			return docs, fmt.Errorf("json: %w", err)
		}
		// start is where the previous value ended; the value begins after blanks.
		s := int(start)
		for s < len(data) && (data[s] == ' ' || data[s] == '\t' || data[s] == '\r' || data[s] == '\n') {
			s++
		}
		docs = append(docs, document{body: raw, line: lineAt(data, int64(s)), isJSON: true})
	}
}

func lineAt(data []byte, offset int64) int {
	if offset > int64(len(data)) {
		offset = int64(len(data))
	}
	return bytes.Count(data[:offset], []byte("\n")) + 1
}

// splitYAML cuts data at document markers: a line that is `---` (alone or
// followed by blanks, a comment or inline content) starts a document, a line
// `...` ends one. Markers cannot occur inside YAML scalars at column 0, so
// cutting by lines is exact.
func splitYAML(data []byte) []document {
	var docs []document
	var cur []byte
	curLine, lineNo := 1, 0
	flush := func() {
		docs = append(docs, document{body: cur, line: curLine})
		cur = nil
	}
	for len(data) > 0 {
		lineNo++
		var line []byte
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i+1], data[i+1:]
		} else {
			line, data = data, nil
		}
		content := bytes.TrimRight(line, "\r\n")
		switch {
		case isMarker(content, "---"):
			flush()
			curLine = lineNo
			// Inline content after the marker (`--- {a: 1}`) belongs to the new
			// document, on the marker's line; the marker becomes blanks.
			cur = append(bytes.Repeat([]byte(" "), 3), line[3:]...)
		case isMarker(content, "..."):
			flush()
			curLine = lineNo + 1
		default:
			cur = append(cur, line...)
		}
	}
	flush()
	return docs
}

func isMarker(line []byte, marker string) bool {
	if !bytes.HasPrefix(line, []byte(marker)) {
		return false
	}
	rest := line[len(marker):]
	return len(rest) == 0 || rest[0] == ' ' || rest[0] == '\t'
}
