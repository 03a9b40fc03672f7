package flags

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Type is the type shared by all variant values of a flag.
type Type string

// The flag types. Their names follow OpenFeature's resolution methods.
const (
	TypeBoolean Type = "boolean"
	TypeString  Type = "string"
	TypeNumber  Type = "number"
	TypeObject  Type = "object"
)

// Flag is the definition of a feature flag within an app, shared by all its
// environments. Its JSON is what the store keeps and the API sends.
type Flag struct {
	// Key identifies the flag within its app; SDKs ask for it by this key.
	Key string `json:"key"`
	// Type is the type of every variant value.
	Type Type `json:"type"`
	// Variants maps a variant name to its JSON value.
	Variants map[string]json.RawMessage `json:"variants"`
	// DefaultVariant is served when no rule decides otherwise and the
	// environment's default rollout is left empty.
	DefaultVariant string `json:"default_variant"`
	// OffVariant is served while the kill switch is off; empty means
	// DefaultVariant.
	OffVariant string `json:"off_variant,omitempty"`
	// Salt is mixed into the bucketing hash. It is empty by default;
	// changing it reshuffles every user into a new bucket.
	Salt string `json:"salt,omitempty"`
	// Description tells release managers what the flag is for.
	Description string `json:"description,omitempty"`

	// duplicateVariants lists variant names that appeared more than once in
	// the JSON this flag was decoded from; Validate reports them because
	// decoding into a map silently keeps only the last one.
	duplicateVariants []string
}

// UnmarshalJSON decodes a flag and remembers duplicate variant names, which a
// map cannot hold, so that Validate can reject them instead of dropping one.
func (f *Flag) UnmarshalJSON(data []byte) error {
	type plain Flag
	var p plain
	if err := json.Unmarshal(data, &p); err != nil {
		return err
	}
	*f = Flag(p)
	f.duplicateVariants = duplicateVariantNames(data)
	return nil
}

// duplicateVariantNames returns the names that occur more than once in the
// "variants" object of a flag's JSON, in order of their second appearance.
func duplicateVariantNames(data []byte) []string {
	var top map[string]json.RawMessage
	if json.Unmarshal(data, &top) != nil {
		return nil
	}
	raw, ok := top["variants"]
	if !ok {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil
	}
	seen := map[string]bool{}
	var dups []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return dups
		}
		name, _ := tok.(string)
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return dups
		}
		if seen[name] {
			dups = append(dups, name)
		}
		seen[name] = true
	}
	return dups
}

// EnvState is a flag's configuration in one environment.
type EnvState struct {
	// Enabled is the kill switch: when false every user gets the off
	// variant with reason DISABLED.
	Enabled bool `json:"enabled"`
	// Rules are tried in order; the first that matches decides.
	Rules []Rule `json:"rules,omitempty"`
	// DefaultRollout is served when no rule matches; left empty it serves
	// the flag's default variant.
	DefaultRollout Serve `json:"default_rollout"`
	// Version increases with every change; the store sets it.
	Version int64 `json:"version"`
}

// Rule targets the users matching its segment and all of its clauses.
type Rule struct {
	// Name is shown in evaluation results and must be unique within the
	// flag's rules in an environment.
	Name string `json:"name"`
	// Segment optionally names a segment of the app the user must be in.
	Segment string `json:"segment,omitempty"`
	// Clauses must all match; a rule without clauses or segment matches
	// every user.
	Clauses []Clause `json:"clauses,omitempty"`
	// Serve says what matching users get. Its fields appear directly in
	// the rule's JSON ("variant" or "rollout").
	Serve
}

// Serve is either one fixed variant or a weighted rollout over variants.
type Serve struct {
	Variant string            `json:"variant,omitempty"`
	Rollout []WeightedVariant `json:"rollout,omitempty"`
}

// IsZero reports whether s names neither a variant nor a rollout.
func (s Serve) IsZero() bool { return s.Variant == "" && len(s.Rollout) == 0 }

// WeightedVariant is one arm of a rollout: Weight is a percentage with at most
// two decimals, and the weights of a rollout total 100.
type WeightedVariant struct {
	Variant string  `json:"variant"`
	Weight  float64 `json:"weight"`
}

// Clause compares one context attribute with a list of values.
type Clause struct {
	// Attribute is a top-level key of the evaluation context, such as
	// "email", "plan" or "targetingKey".
	Attribute string `json:"attribute"`
	// Op is the comparison.
	Op Operator `json:"op"`
	// Values are compared with the attribute; how many and of which JSON
	// type depends on Op.
	Values []any `json:"values"`
}

// Segment is a reusable group of users within an app.
type Segment struct {
	Key          string   `json:"key"`
	Name         string   `json:"name,omitempty"`
	Clauses      []Clause `json:"clauses,omitempty"`
	IncludedKeys []string `json:"included_keys,omitempty"`
	ExcludedKeys []string `json:"excluded_keys,omitempty"`
}

// FieldError is one problem with one field of the input, named by its JSON
// path such as `rules[2].clauses[0].op`.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// ValidationError lists every problem found in a flag, its environment state
// or a segment. Nothing invalid is ever compiled or stored.
type ValidationError struct {
	Errors []FieldError `json:"errors"`
}

// Error joins the field errors into one line.
func (e *ValidationError) Error() string {
	var b strings.Builder
	b.WriteString("invalid flag configuration: ")
	for i, fe := range e.Errors {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(fe.Field)
		b.WriteString(": ")
		b.WriteString(fe.Message)
	}
	return b.String()
}

// Field returns the message for field, or "" when that field has no error.
func (e *ValidationError) Field(field string) string {
	for _, fe := range e.Errors {
		if fe.Field == field {
			return fe.Message
		}
	}
	return ""
}

// problems collects field errors under a path prefix.
type problems struct {
	errs *[]FieldError
}

func (p problems) add(field, format string, args ...any) {
	*p.errs = append(*p.errs, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
}

func (p problems) err() error {
	if len(*p.errs) == 0 {
		return nil
	}
	return &ValidationError{Errors: *p.errs}
}

// index formats a list element path such as rules[2].
func index(prefix string, i int) string { return prefix + "[" + strconv.Itoa(i) + "]" }

// named formats a map element path such as variants["blue"].
func named(prefix, key string) string { return prefix + "[" + strconv.Quote(key) + "]" }

// join appends a child field to a path.
func join(prefix, field string) string {
	if prefix == "" {
		return field
	}
	return prefix + "." + field
}
