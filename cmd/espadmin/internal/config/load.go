package config

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Flags holds the configuration flags registered on one subcommand's FlagSet and remembers
// which of them were given, so that only those override the environment.
type Flags struct {
	configFile string
	given      map[string]string // setting key (or its _file companion) → value
}

// RegisterFlags adds --config and a flag for every setting to fs; with only, just the
// settings whose flag (or secret-file flag) is listed, so a command's help shows what it
// uses. Every setting still comes from the configuration file and the environment.
func RegisterFlags(fs *flag.FlagSet, only ...string) *Flags {
	f := &Flags{given: map[string]string{}}
	fs.StringVar(&f.configFile, "config", "", "YAML configuration `file` (env ESPADMIN_CONFIG)")
	wanted := func(name string) bool { return len(only) == 0 || slices.Contains(only, name) }
	for _, s := range settings {
		if s.flag != "" && wanted(s.flag) {
			fs.Var(&flagValue{f: f, key: s.key, def: s.defaultValue(), isBool: s.isBool()}, s.flag, flagUsage(s.help)+" (env "+s.env+")")
		}
		if s.secret && (wanted(s.fileFlag()) || s.flag != "" && wanted(s.flag)) {
			fs.Var(&flagValue{f: f, key: s.fileKey()}, s.fileFlag(), "read "+s.env+" from this `file`")
		}
	}
	return f
}

// flagUsage is a setting's help as a flag's usage. The flag package takes the first
// `quoted` word of a usage as the value's placeholder ("-signup closed"); the help's quotes
// are for docs/configuration.md, so here they become plain quotes and the placeholder is
// "value".
func flagUsage(help string) string { return strings.ReplaceAll(help, "`", "'") }

// flagValue records a flag's value by setting key; parsing happens in Load so that a flag's
// error message is the same as the environment's.
type flagValue struct {
	f      *Flags
	key    string
	def    string
	isBool bool
}

func (v *flagValue) String() string {
	if v == nil || v.f == nil {
		return ""
	}
	if s, ok := v.f.given[v.key]; ok {
		return s
	}
	return v.def
}

func (v *flagValue) Set(s string) error { v.f.given[v.key] = s; return nil }

func (v *flagValue) IsBoolFlag() bool { return v.isBool }

// LookupEnv is the signature of os.LookupEnv, injected so tests need not touch the process
// environment.
type LookupEnv func(string) (string, bool)

// Load builds the effective configuration from defaults, the configuration file, the
// environment (through lookupEnv; nil means os.LookupEnv) and the flags registered in f (nil
// means none), then validates it.
func Load(f *Flags, lookupEnv LookupEnv) (Config, error) {
	if lookupEnv == nil {
		lookupEnv = os.LookupEnv
	}
	if f == nil {
		f = &Flags{given: map[string]string{}}
	}
	c := Defaults()

	path, source := f.configFile, "--config"
	if path == "" {
		path, _ = lookupEnv("ESPADMIN_CONFIG")
		source = "ESPADMIN_CONFIG"
	}
	if path != "" {
		if err := c.applyFile(path); err != nil {
			return Config{}, fmt.Errorf("invalid %s %s: %w", source, path, err)
		}
	}

	for _, s := range settings {
		v, hasValue := lookupEnv(s.env)
		var file string
		hasFile := false
		if s.secret {
			file, hasFile = lookupEnv(s.fileEnv())
		}
		if err := s.apply(&c, v, hasValue, file, hasFile, s.env, s.fileEnv()); err != nil {
			return Config{}, err
		}
	}

	for _, s := range settings {
		v, hasValue := f.given[s.key]
		file, hasFile := f.given[s.fileKey()]
		if err := s.apply(&c, v, hasValue, file, hasFile, "--"+s.flag, "--"+s.fileFlag()); err != nil {
			return Config{}, err
		}
	}

	c.derive()
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// apply sets one setting from one source: a direct value, a file holding the value (secrets
// only), or neither. Giving both in the same source is ambiguous and refused.
func (s setting) apply(c *Config, v string, hasValue bool, file string, hasFile bool, name, fileName string) error {
	switch {
	case hasValue && hasFile:
		return fmt.Errorf("invalid %s: set either %s or %s, not both", s.label(), name, fileName)
	case hasFile:
		secret, err := readSecretFile(file)
		if err != nil {
			return fmt.Errorf("invalid %s: %w", fileName, err)
		}
		v = secret
	case !hasValue:
		return nil
	}
	if err := s.set(c, v); err != nil {
		return fmt.Errorf("invalid %s: %w", s.label(), err)
	}
	return nil
}

// readSecretFile reads a secret from a file, dropping one trailing newline as written by
// editors and `echo`.
func readSecretFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read secret file: %w", err)
	}
	b = bytes.TrimSuffix(b, []byte("\n"))
	b = bytes.TrimSuffix(b, []byte("\r"))
	return string(b), nil
}

// applyFile reads a YAML configuration file whose nested keys mirror the dotted setting keys
// (http: {addr: ...}). An unknown key is an error, so a typo never goes unnoticed.
func (c *Config) applyFile(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read: %w", err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return fmt.Errorf("parse YAML: %s", strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	if root.Kind == 0 || len(root.Content) == 0 {
		return nil // empty file
	}
	values := map[string]string{}
	if err := flatten(root.Content[0], "", values); err != nil {
		return err
	}
	byKey := map[string]setting{}
	for _, s := range settings {
		byKey[s.key] = s
		if s.secret {
			byKey[s.fileKey()] = s
		}
	}
	for _, s := range settings {
		v, hasValue := values[s.key]
		file, hasFile := "", false
		if s.secret {
			file, hasFile = values[s.fileKey()]
		}
		if err := s.apply(c, v, hasValue, file, hasFile, s.key, s.fileKey()); err != nil {
			return err
		}
	}
	for k := range values {
		if _, ok := byKey[k]; !ok {
			return fmt.Errorf("unknown key %q", k)
		}
	}
	return nil
}

// flatten turns a YAML mapping into dotted keys with scalar values.
func flatten(n *yaml.Node, prefix string, out map[string]string) error {
	if n.Kind != yaml.MappingNode {
		if prefix == "" {
			return errors.New("top level must be a mapping of settings")
		}
		return fmt.Errorf("key %q must be a mapping", prefix)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i].Value, n.Content[i+1]
		if prefix != "" {
			k = prefix + "." + k
		}
		switch v.Kind {
		case yaml.MappingNode:
			if err := flatten(v, k, out); err != nil {
				return err
			}
		case yaml.ScalarNode:
			if v.Tag == "!!null" {
				continue
			}
			out[k] = v.Value
		default:
			return fmt.Errorf("key %q (line %d) must be a single value", k, v.Line)
		}
	}
	return nil
}

// YAML renders the configuration in the configuration file's format, in table order. It
// prints secrets as they are: call it on Redacted() for display.
func (c Config) YAML() ([]byte, error) {
	root := &yaml.Node{Kind: yaml.MappingNode}
	for _, s := range settings {
		parent := root
		parts := strings.Split(s.key, ".")
		for _, p := range parts[:len(parts)-1] {
			parent = child(parent, p)
		}
		var val yaml.Node
		if err := val.Encode(s.value(&c)); err != nil {
			return nil, err
		}
		parent.Content = append(parent.Content,
			&yaml.Node{Kind: yaml.ScalarNode, Value: parts[len(parts)-1]}, &val)
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(root); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// child returns the mapping under key in n, creating it when missing.
func child(n *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	m := &yaml.Node{Kind: yaml.MappingNode}
	n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: key}, m)
	return m
}
