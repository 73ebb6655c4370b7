package safetensors

import "github.com/pt2conv/pt2conv/checkpoint"

// dtypes are the element types of safetensors 0.4, by their header name.
var dtypes = map[string]checkpoint.StorageKind{
	"BOOL":    checkpoint.Bool,
	"U8":      checkpoint.Uint8,
	"I8":      checkpoint.Int8,
	"I16":     checkpoint.Int16,
	"U16":     checkpoint.UInt16,
	"F16":     checkpoint.Float16,
	"BF16":    checkpoint.BFloat16,
	"I32":     checkpoint.Int32,
	"U32":     checkpoint.UInt32,
	"F32":     checkpoint.Float32,
	"F64":     checkpoint.Float64,
	"I64":     checkpoint.Int64,
	"U64":     checkpoint.UInt64,
	"F8_E4M3": checkpoint.Float8E4M3FN,
	"F8_E5M2": checkpoint.Float8E5M2,
}

// newerDTypes are names later safetensors releases added; they are refused by name rather
// than as unknown.
var newerDTypes = map[string]bool{
	"F8_E8M0": true, "F4": true, "F6_E2M3": true, "F6_E3M2": true, "C64": true,
}

// DTypeName is the safetensors name of a storage kind ("F32"); ok is false for kinds the
// format has no name for (complex numbers).
func DTypeName(k checkpoint.StorageKind) (name string, ok bool) {
	for n, kk := range dtypes {
		if kk == k {
			return n, true
		}
	}
	return "", false
}
