package ckptio

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/pt2conv/pt2conv/checkpoint"
)

const fixtures = "../../fixtures"

func TestOpenByContent(t *testing.T) {
	dir := t.TempDir()
	// Names that lie: the content decides.
	copies := map[string]string{
		"vgg_tiny.pt":                      "a.safetensors",
		"vgg_tiny_legacy.pt":               "b.json",
		"safetensors/vgg_tiny.safetensors": "c.pt",
	}
	want := map[string]string{"a.safetensors": "zip", "b.json": "legacy", "c.pt": "safetensors"}
	for src, dst := range copies {
		b, err := os.ReadFile(filepath.Join(fixtures, src))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, dst), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for name, format := range want {
		c, err := Open(filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if c.Format != format {
			t.Errorf("%s opened as %s, want %s", name, c.Format, format)
		}
		c.Close()
	}
	c, err := Open(filepath.Join(fixtures, "safetensors/model.safetensors.index.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sh := ShardedOf(c)
	if sh == nil || len(sh.Shards) != 2 || c.Format != "safetensors shards" {
		t.Fatalf("index opened as %s with %v", c.Format, sh)
	}
	if got := sh.ShardOf("distilbert.transformer.layer.1.ffn.lin1.bias"); got != "model-00002-of-00002.safetensors" {
		t.Errorf("lin1.bias is in %q", got)
	}
	// Every tensor reads the same bytes through the merged source as from its shard.
	for _, nt := range checkpoint.Tensors(c.Root) {
		merged := make([]byte, nt.Tensor.Storage.ByteLen())
		if _, err := c.StorageReader(nt.Tensor.Storage).ReadAt(merged, 0); err != nil && len(merged) > 0 {
			t.Fatal(err)
		}
		orig := sh.origin[nt.Tensor.Storage]
		shard := sh.Shards[sh.shardOf[nt.Path.String()]].Checkpoint
		own := make([]byte, orig.ByteLen())
		if _, err := shard.StorageReader(orig).ReadAt(own, 0); err != nil && len(own) > 0 {
			t.Fatal(err)
		}
		if !bytes.Equal(merged, own) {
			t.Errorf("%s: merged source reads other bytes", nt.Path)
		}
	}

	garbage := filepath.Join(dir, "garbage")
	os.WriteFile(garbage, []byte("hello, world, not a checkpoint"), 0o644)
	if _, err := Open(garbage); !errors.Is(err, ErrNotCheckpoint) {
		t.Errorf("garbage: %v, want ErrNotCheckpoint", err)
	}
}

func TestOutputFormat(t *testing.T) {
	tests := []struct {
		path, override string
		want           Format
	}{
		{"m.safetensors", "", Safetensors},
		{"m.pt", "", PT},
		{"m.bin", "", PT},
		{"m", "", PT},
		{"d/model.safetensors.index.json", "", Safetensors},
		{"d/pytorch_model.bin.index.json", "", PT},
		{"m.pt", "safetensors", Safetensors},
		{"m.safetensors", "pt", PT},
	}
	for _, tt := range tests {
		if got, err := OutputFormat(tt.path, tt.override); err != nil || got != tt.want {
			t.Errorf("OutputFormat(%q, %q) = %v, %v; want %v", tt.path, tt.override, got, err, tt.want)
		}
	}
	if _, err := OutputFormat("m.pt", "onnx"); err == nil {
		t.Error("--format onnx accepted")
	}
}

func TestRename(t *testing.T) {
	tests := []struct {
		in   string
		f    Format
		want string
	}{
		{"pytorch_model-00001-of-00002.bin", Safetensors, "model-00001-of-00002.safetensors"},
		{"pytorch_model.bin.index.json", Safetensors, "model.safetensors.index.json"},
		{"model-00001-of-00002.safetensors", PT, "pytorch_model-00001-of-00002.bin"},
		{"model.safetensors.index.json", PT, "pytorch_model.bin.index.json"},
		{"out/vgg.pt", Safetensors, "out/vgg.safetensors"},
		{"out/vgg.safetensors", PT, "out/vgg.bin"},
		{"vgg.safetensors", Safetensors, "vgg.safetensors"},
		{"vgg.pth", PT, "vgg.pth"},
	}
	for _, tt := range tests {
		if got := Rename(tt.in, tt.f); got != tt.want {
			t.Errorf("Rename(%q, %s) = %q, want %q", tt.in, tt.f, got, tt.want)
		}
	}
}

func TestMultiSource(t *testing.T) {
	var m multiSource
	m.add(bytes.NewReader([]byte("abc")), 3)
	m.add(bytes.NewReader(nil), 0)
	m.add(bytes.NewReader([]byte("defg")), 4)
	buf := make([]byte, 5)
	if n, err := m.ReadAt(buf, 1); n != 5 || err != nil || string(buf) != "bcdef" {
		t.Errorf("ReadAt across parts: %d %v %q", n, err, buf)
	}
	if n, err := m.ReadAt(buf, 4); n != 3 || err != io.EOF {
		t.Errorf("ReadAt past the end: %d %v", n, err)
	}
}

func TestOpenIndexRefuses(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"} {
		b, err := os.ReadFile(filepath.Join(fixtures, "safetensors", f))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, f), b, 0o644)
	}
	tests := map[string]string{
		"invalid JSON":      `{"weight_map": {`,
		"no weight_map":     `{"metadata": {}}`,
		"path outside":      `{"weight_map": {"a": "../model-00001-of-00002.safetensors"}}`,
		"absolute path":     `{"weight_map": {"a": "/etc/passwd"}}`,
		"missing shard":     `{"weight_map": {"a": "nope.safetensors"}}`,
		"name not in shard": `{"weight_map": {"nope": "model-00001-of-00002.safetensors"}}`,
		"wrong shard":       `{"weight_map": {"vocab_projector.weight": "model-00001-of-00002.safetensors", "distilbert.embeddings.LayerNorm.bias": "model-00002-of-00002.safetensors"}}`,
		"weight_map values": `{"weight_map": {"a": 1}}`,
	}
	for name, index := range tests {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(dir, "x.index.json")
			os.WriteFile(p, []byte(index), 0o644)
			c, err := Open(p)
			if err == nil {
				c.Close()
				t.Fatal("accepted")
			}
			if !bytes.HasPrefix([]byte(err.Error()), []byte(p)) {
				t.Errorf("error %q does not name the index first", err)
			}
		})
	}
}
