package torchtest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// Manifest is fixtures/manifest.json: what PyTorch wrote into each fixture checkpoint.
type Manifest struct {
	Files []FileFacts `json:"files"`
}

// FileFacts describes one fixture checkpoint.
type FileFacts struct {
	File        string `json:"file"`
	Torch       string `json:"torch"`    // torch.__version__ of the writer
	Format      string `json:"format"`   // "zip" or "legacy"
	Protocol    int    `json:"protocol"` // pickle protocol of the object pickle
	WeightsOnly bool   `json:"weights_only"`
	// ZipPrefix and Records (names below the prefix, in file order) are set for zip files.
	ZipPrefix string        `json:"zip_prefix,omitempty"`
	Records   []string      `json:"records,omitempty"`
	Tensors   []TensorFacts `json:"tensors"`
}

// File returns the facts of the named fixture, failing the test if the manifest lacks it.
func (m *Manifest) File(t testing.TB, name string) *FileFacts {
	t.Helper()
	for i := range m.Files {
		if m.Files[i].File == name {
			return &m.Files[i]
		}
	}
	t.Fatalf("fixtures/manifest.json has no %s", name)
	return nil
}

// LoadManifest reads fixtures/manifest.json.
func LoadManifest(t testing.TB) *Manifest {
	t.Helper()
	var m Manifest
	readJSON(t, Fixture(t, "manifest.json"), &m)
	if len(m.Files) == 0 {
		t.Fatal("fixtures/manifest.json lists no files")
	}
	return &m
}

// Layer is one FC layer of an expected-output chain and the Conv2d input shape it takes.
type Layer struct {
	Name    string  `json:"name"`
	InShape []int64 `json:"in_shape"` // C, H, W
	Out     int64   `json:"out"`
}

// Expected is one fixtures/expected/*.json file: inputs and PyTorch's float32 outputs for a
// chain of FC layers of a fixture checkpoint (ReLU between layers, and after the last one when
// FinalReLU is set), run as Linear and as Conv2d.
type Expected struct {
	Checkpoint      string    `json:"checkpoint"`
	Torch           string    `json:"torch"`
	Layers          []Layer   `json:"layers"`
	FinalReLU       bool      `json:"final_relu"`
	InputShape      []int64   `json:"input_shape"`
	Input           []float32 `json:"input"`
	Linear          []float32 `json:"linear"` // F.linear chain on the flattened input
	ConvWindowShape []int64   `json:"conv_window_shape"`
	ConvWindow      []float32 `json:"conv_window"` // F.conv2d chain on the input: [out, 1, 1]
	LargeInputShape []int64   `json:"large_input_shape"`
	LargeInput      []float32 `json:"large_input"` // C x (H+2) x (W+2)
	ConvMapShape    []int64   `json:"conv_map_shape"`
	ConvMap         []float32 `json:"conv_map"` // F.conv2d chain on LargeInput: [out, 3, 3]
}

// LoadExpected reads fixtures/expected/NAME.json (seed2x2, seed4x4, vgg_tiny_head).
func LoadExpected(t testing.TB, name string) *Expected {
	t.Helper()
	var e Expected
	readJSON(t, Fixture(t, filepath.Join("expected", name+".json")), &e)
	return &e
}

// PlantedPair is a converted checkpoint and whether it computes what the original does.
type PlantedPair struct {
	Converted  string `json:"converted"`
	Equivalent bool   `json:"equivalent"`
	Why        string `json:"why,omitempty"`
}

// Planted is fixtures/expected/planted.json: a Linear checkpoint and 4-D versions of its
// layer, one right and one with the weight flattened in channels-last order, which
// verification must reject.
type Planted struct {
	Original string        `json:"original"`
	Layer    string        `json:"layer"`
	InShape  []int64       `json:"in_shape"`
	Pairs    []PlantedPair `json:"pairs"`
}

// LoadPlanted reads fixtures/expected/planted.json.
func LoadPlanted(t testing.TB) *Planted {
	t.Helper()
	var p Planted
	readJSON(t, Fixture(t, filepath.Join("expected", "planted.json")), &p)
	return &p
}

func readJSON(t testing.TB, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
