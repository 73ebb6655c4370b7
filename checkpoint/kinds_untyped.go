package checkpoint

// Element types that torch 2.x writes without a typed storage class (over an UntypedStorage,
// with the dtype as an argument of _rebuild_tensor_v3) and that safetensors files carry as
// U16, U32, U64, F8_E4M3 and F8_E5M2. Class is empty for them: no torch.<X>Storage exists.
const (
	Uint16 StorageKind = Complex64 + 1 + iota
	Uint32
	Uint64
	Float8E4M3FN
	Float8E5M2
)

func init() {
	untyped := []struct {
		kind  StorageKind
		dtype string
		size  int
	}{
		{Uint16, "uint16", 2},
		{Uint32, "uint32", 4},
		{Uint64, "uint64", 8},
		{Float8E4M3FN, "float8_e4m3fn", 1},
		{Float8E5M2, "float8_e5m2", 1},
	}
	for _, u := range untyped {
		if int(u.kind) != len(kindInfo) {
			panic("checkpoint: storage kinds out of step with their table")
		}
		kindInfo = append(kindInfo, struct {
			class string
			dtype string
			size  int
		}{"", u.dtype, u.size})
	}
}
