package pickle

import (
	"fmt"
	"github.com/pt2conv/pt2conv/checkpoint"
	"github.com/pt2conv/pt2conv/internal/torchtest"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Torch-backed checks run through internal/torchtest: every torch installation it finds
// (torch 1.x on the host, torch 2.x in a chroot) loads the files Save wrote.

// torchLoad is one file for torchCheck: the checkpoint.py case it must equal and whether
// torch.load must manage it with weights_only=True.
type torchLoad struct {
	path, name  string
	weightsOnly bool
}

// torchCheck has every torch installation load each file and compare it with its case of
// testdata/write/checkpoint.py, one process per installation (importing torch is slow).
func torchCheck(t *testing.T, loads ...torchLoad) {
	t.Helper()
	script, err := filepath.Abs(filepath.Join("testdata", "write", "checkpoint.py"))
	if err != nil {
		t.Fatal(err)
	}
	envs := torchtest.All(t)
	outs := make([][]byte, len(envs))
	errs := make([]error, len(envs))
	var wg sync.WaitGroup
	for i, env := range envs {
		args := []string{"check"}
		for _, l := range loads {
			mode := "full"
			if l.weightsOnly {
				mode = "weights-only"
			}
			args = append(args, l.name, env.Share(t, l.path), mode)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			outs[i], errs[i] = env.Output(env.Share(t, script), args...)
		}()
	}
	wg.Wait()
	for i, env := range envs {
		for _, line := range strings.Split(strings.TrimSpace(string(outs[i])), "\n") {
			if strings.HasPrefix(line, "ok ") || strings.HasPrefix(line, "FAIL ") {
				t.Logf("%s: %s", env, line)
			}
		}
		if errs[i] != nil {
			t.Errorf("%s: %v\n%s", env, errs[i], outs[i])
		}
	}
}

func TestSaveLoadsInTorch(t *testing.T) {
	tests := []struct {
		name        string
		tree        func() (checkpoint.Value, map[*checkpoint.Storage][]byte)
		weightsOnly bool
		records     string
	}{
		{"state_dict", stateDictTree, true, "data.pkl byteorder data/0 data/1 version"},
		{"training_plain", training(true), true,
			"data.pkl byteorder data/0 data/1 data/2 data/3 data/4 data/5 version"},
		// Floats are beyond torch 1.13's weights_only loader, bytes beyond 2.6's too.
		{"training", training(false), false,
			"data.pkl byteorder data/0 data/1 data/2 data/3 data/4 data/5 version"},
	}
	var loads []torchLoad
	for _, tt := range tests {
		path := filepath.Join(t.TempDir(), "out.pt")
		if err := Save(path, fromBytes(t, tt.tree), nil); err != nil {
			t.Fatal(err)
		}
		names := zipNames(t, path)
		if got, want := strings.Join(names, " "), "out/"+strings.ReplaceAll(tt.records, " ", " out/"); got != want {
			t.Errorf("%s: records\n%s\nwant\n%s", tt.name, got, want)
		}
		loads = append(loads, torchLoad{path, tt.name, tt.weightsOnly})
	}
	torchCheck(t, loads...)
}

// TestSaveHuge writes a real archive over 4 GiB (a sparse source, so it costs disk space
// and time but little memory) and has torch load it. It runs only when
// PT2CONV_HUGE_TESTS=1.
func TestSaveHuge(t *testing.T) {
	if os.Getenv("PT2CONV_HUGE_TESTS") != "1" {
		t.Skip("set PT2CONV_HUGE_TESTS=1 to write a 4 GiB archive")
	}
	const big = 4<<30 + 100
	dir := t.TempDir()
	f, err := os.Create(filepath.Join(dir, "src"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	a, c := f32s(1, 2, 3), f32s(4, 5, 6)
	if _, err := f.WriteAt(a, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(c, 12+big); err != nil {
		t.Fatal(err)
	}
	crc := crc32.NewIEEE()
	zeros := make([]byte, 1<<20)
	for left := int64(big); left > 0; left -= int64(len(zeros)) {
		crc.Write(zeros[:min(left, int64(len(zeros)))])
	}
	sa := &checkpoint.Storage{Kind: checkpoint.Float32, Key: "0", Location: "cpu", Len: 3, Offset: 0, CRC32: crc32.ChecksumIEEE(a), HasCRC: true}
	sb := &checkpoint.Storage{Kind: checkpoint.Uint8, Key: "1", Location: "cpu", Len: big, Offset: 12, CRC32: crc.Sum32(), HasCRC: true}
	sc := &checkpoint.Storage{Kind: checkpoint.Float32, Key: "2", Location: "cpu", Len: 3, Offset: 12 + big, CRC32: crc32.ChecksumIEEE(c), HasCRC: true}
	root := &checkpoint.OrderedDict{Entries: []checkpoint.Entry{
		{Key: "a", Value: tensor(sa, 0, []int64{3}, []int64{1})},
		{Key: "big", Value: tensor(sb, 0, []int64{big}, []int64{1})},
		{Key: "c", Value: tensor(sc, 0, []int64{3}, []int64{1})},
	}}
	ck := checkpoint.New(root, f, 24+big, f.Name())
	path := filepath.Join(dir, "huge.pt")
	if err := Save(path, ck, nil); err != nil {
		t.Fatal(err)
	}
	names := zipNames(t, path)
	t.Logf("records %v", names)

	const script = `
import sys, torch, zipfile
path, n = sys.argv[1], int(sys.argv[2])
z = zipfile.ZipFile(path)
print([(i.filename, i.header_offset, i.file_size) for i in z.infolist()])
kw = {"mmap": True} if not torch.__version__.startswith("1.") else {}
sd = torch.load(path, weights_only=True, **kw)
assert list(sd) == ["a", "big", "c"], list(sd)
assert sd["a"].tolist() == [1.0, 2.0, 3.0] and sd["c"].tolist() == [4.0, 5.0, 6.0]
assert sd["big"].shape == (n,) and sd["big"].dtype == torch.uint8
assert int(sd["big"][0]) == 0 and int(sd["big"][-1]) == 0
print("ok huge torch", torch.__version__)
`
	sp := filepath.Join(dir, "huge_check.py")
	if err := os.WriteFile(sp, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, env := range torchtest.All(t) {
		p := path
		if env.Chrooted() {
			// A chroot sees only its own tree: hard-link the archive in rather than copy it.
			root := os.Getenv("PT2CONV_TORCH26_ROOT")
			link := filepath.Join(root, "tmp", "pt2conv-huge.pt")
			if err := os.Link(path, link); err != nil {
				t.Logf("%s: cannot link the archive in: %v", env, err)
				continue
			}
			defer os.Remove(link)
			p = "/tmp/pt2conv-huge.pt"
		}
		out, err := env.Output(env.Share(t, sp), p, fmt.Sprint(big))
		if err != nil {
			t.Errorf("%s: %v\n%s", env, err, out)
			continue
		}
		t.Logf("%s: %s", env, strings.TrimSpace(string(out)))
	}
}
