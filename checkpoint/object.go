package checkpoint

import (
	"fmt"
	"math/big"
)

// A Value is one node of a checkpoint's object tree. Its dynamic type is one of:
//
//	nil            Python None
//	bool           bool
//	int64          int that fits in 64 bits
//	*big.Int       any other int
//	float64        float
//	string         str
//	Bytes          bytes
//	*List, *Tuple, *Dict, *OrderedDict
//	*Tensor        torch._utils._rebuild_tensor_v2(...)
//	*Parameter     torch._utils._rebuild_parameter(...)
//	*SparseTensor  torch._utils._rebuild_sparse_tensor(...)
//	*AttrTensor    a tensor with Python attributes (torch._tensor._rebuild_from_type_v2)
//	*Global        an allowed global used as a value (torch.float32, torch.Size, ...)
//	*Call          an allowed callable applied to arguments that pt2conv keeps as it is
//
// Containers are pointers so that an object referenced twice in the file stays one object
// (and is written once, then referenced) when the tree is saved again.
type Value = any

// Bytes is a Python bytes object.
type Bytes []byte

// List is a Python list.
type List struct{ Items []Value }

// Tuple is a Python tuple.
type Tuple struct{ Items []Value }

// Entry is one key/value pair of a Dict or OrderedDict.
type Entry struct {
	Key   Value
	Value Value
}

// Dict is a Python dict. Entries keep the file's order, which is insertion order.
type Dict struct{ Entries []Entry }

// OrderedDict is a collections.OrderedDict. State is what the pickle BUILDs it with: for a
// state_dict a *Dict holding "_metadata", which load_state_dict needs; nil when absent.
type OrderedDict struct {
	Entries []Entry
	State   Value
}

// Global is a module-level name from the allowlist, used as a value.
type Global struct{ Module, Name string }

func (g *Global) String() string { return g.Module + "." + g.Name }

// Call is an allowlisted callable applied to Args (pickle REDUCE) that pt2conv does not
// interpret, such as torch.Size((2, 3)). State holds a BUILD argument, if any.
type Call struct {
	Func  *Global
	Args  *Tuple
	State Value
	// Tensor names the tensor the call rebuilds, when it is one that pt2conv keeps as the
	// call it is: "meta tensor" (a shape, no data), "nested tensor". Empty for other calls.
	Tensor string
}

// Tensor is a view into a Storage, as torch._utils._rebuild_tensor_v2 describes it.
// Size and Stride are in elements; Offset is the storage offset in elements (of the
// tensor's dtype, see Kind).
type Tensor struct {
	Storage *Storage
	// Quant is set for a quantized tensor (torch._utils._rebuild_qtensor): the storage is
	// one of the quantized kinds and Quant says how its integers map to real numbers.
	Quant  *Quantizer
	Offset int64
	Size   []int64
	Stride []int64
	// Hooks is the backward-hooks argument; nil stands for the empty OrderedDict torch
	// writes for every tensor.
	Hooks Value
	// Extra holds arguments after the sixth (newer torch passes a metadata dict), kept as read.
	Extra []Value
	// DType is the element type when it is not the storage's: tensors over an Untyped
	// storage (torch 2's _rebuild_tensor_v3) name it. InvalidKind means Storage.Kind.
	DType        StorageKind
	RequiresGrad bool
	// OldForm is set for a tensor saved in torch 0.3's form, which has no requires_grad and
	// no hooks (torch._utils._rebuild_tensor(storage, offset, size, stride)); it is written
	// back in that form.
	OldForm bool
}

// NoHooks reports whether v, a tensor's backward-hooks argument, stands for no hooks: nil,
// or the empty OrderedDict torch writes for every tensor.
func NoHooks(v Value) bool {
	d, ok := v.(*OrderedDict)
	return v == nil || ok && len(d.Entries) == 0 && d.State == nil
}

// Parameter is an nn.Parameter wrapping a tensor (torch._utils._rebuild_parameter), found in
// pickled modules and some hand-built checkpoints.
type Parameter struct {
	Data         *Tensor
	RequiresGrad bool
	Hooks        Value // nil stands for an empty OrderedDict, as for Tensor.Hooks
	// Extra holds arguments after the third (_rebuild_parameter_with_state's state).
	Extra     []Value
	WithState bool
}

// AsTensor returns the tensor v is or wraps.
func AsTensor(v Value) (*Tensor, bool) {
	switch t := v.(type) {
	case *Tensor:
		return t, true
	case *Parameter:
		return t.Data, t.Data != nil
	case *AttrTensor:
		return t.Dense()
	}
	return nil, false
}

// Kind is the tensor's element type: DType when set, else its storage's kind.
func (t *Tensor) Kind() StorageKind {
	if t.DType != InvalidKind || t.Storage == nil {
		return t.DType
	}
	return t.Storage.Kind
}

// NumElements is the product of the sizes (1 for a 0-dim tensor).
func (t *Tensor) NumElements() int64 {
	n := int64(1)
	for _, s := range t.Size {
		n *= s
	}
	return n
}

// ContiguousStrides are the row-major strides of size, in elements, as torch gives them (a
// dimension of size 0 counts as 1).
func ContiguousStrides(size []int64) []int64 {
	stride := make([]int64, len(size))
	n := int64(1)
	for i := len(size) - 1; i >= 0; i-- {
		stride[i] = n
		n *= max(size[i], 1)
	}
	return stride
}

// IsContiguous reports whether the tensor's strides are the row-major strides of its sizes.
func (t *Tensor) IsContiguous() bool {
	want := int64(1)
	for i := len(t.Size) - 1; i >= 0; i-- {
		if t.Size[i] != 1 && t.Stride[i] != want {
			return false
		}
		want *= t.Size[i]
	}
	return true
}

// Span returns the range [lo, hi) of storage elements the tensor can touch; for an empty
// tensor lo == hi == Offset.
func (t *Tensor) Span() (lo, hi int64) {
	lo, hi = t.Offset, t.Offset+1
	for i, s := range t.Size {
		if s == 0 {
			return t.Offset, t.Offset
		}
		step := t.Stride[i] * (s - 1)
		if step < 0 {
			lo += step
		} else {
			hi += step
		}
	}
	return lo, hi
}

// Storage is a typed storage of the checkpoint: a run of elements that tensors view. Its
// bytes are not read when the checkpoint is opened; Checkpoint.StorageReader gives access
// to them.
type Storage struct {
	Kind     StorageKind
	Key      string // the codec's name for it: record name under data/ (zip), legacy key
	Location string // "cpu", "cuda:0", ...
	Len      int64  // elements

	// Offset is where the element bytes start in the checkpoint's source. The codec that
	// read the file sets it, and CRC32 (with HasCRC) when the container records a checksum,
	// so that a writer can copy the bytes without reading them.
	Offset int64
	CRC32  uint32
	HasCRC bool
}

// ByteLen is the storage's size in bytes.
func (s *Storage) ByteLen() int64 { return s.Len * int64(s.Kind.ItemSize()) }

// StorageKind is a torch storage class such as torch.FloatStorage.
type StorageKind uint8

// The storage classes pt2conv knows, by element type.
const (
	InvalidKind StorageKind = iota
	Float64
	Float32
	Float16
	BFloat16
	Int64
	Int32
	Int16
	Int8
	Uint8
	Bool
	Complex128
	Complex64
	// Kinds added with torch 2: an untyped (byte) storage, which tensors of any dtype view
	// through _rebuild_tensor_v3, the dtypes that only such tensors have, and the storage
	// classes of quantized tensors. See kinds.go.
	Untyped
	Float8E4M3FN
	Float8E5M2
	Float8E4M3FNUZ
	Float8E5M2FNUZ
	UInt16
	UInt32
	UInt64
	Complex32
	Bits8
	Bits16
	Bits1x8
	Bits2x4
	Bits4x2
	QInt8
	QUInt8
	QInt32
	QUInt4x2
	QUInt2x4
)

var kindInfo = []struct {
	class string // torch.<class>
	dtype string // torch.<dtype>
	size  int
}{
	InvalidKind: {"", "invalid", 0},
	Float64:     {"DoubleStorage", "float64", 8},
	Float32:     {"FloatStorage", "float32", 4},
	Float16:     {"HalfStorage", "float16", 2},
	BFloat16:    {"BFloat16Storage", "bfloat16", 2},
	Int64:       {"LongStorage", "int64", 8},
	Int32:       {"IntStorage", "int32", 4},
	Int16:       {"ShortStorage", "int16", 2},
	Int8:        {"CharStorage", "int8", 1},
	Uint8:       {"ByteStorage", "uint8", 1},
	Bool:        {"BoolStorage", "bool", 1},
	Complex128:  {"ComplexDoubleStorage", "complex128", 16},
	Complex64:   {"ComplexFloatStorage", "complex64", 8},

	Untyped:        {"UntypedStorage", "untyped", 1},
	Float8E4M3FN:   {"", "float8_e4m3fn", 1},
	Float8E5M2:     {"", "float8_e5m2", 1},
	Float8E4M3FNUZ: {"", "float8_e4m3fnuz", 1},
	Float8E5M2FNUZ: {"", "float8_e5m2fnuz", 1},
	UInt16:         {"", "uint16", 2},
	UInt32:         {"", "uint32", 4},
	UInt64:         {"", "uint64", 8},
	Complex32:      {"", "complex32", 4},
	Bits8:          {"", "bits8", 1},
	Bits16:         {"", "bits16", 2},
	Bits1x8:        {"", "bits1x8", 1},
	Bits2x4:        {"", "bits2x4", 1},
	Bits4x2:        {"", "bits4x2", 1},
	QInt8:          {"QInt8Storage", "qint8", 1},
	QUInt8:         {"QUInt8Storage", "quint8", 1},
	QInt32:         {"QInt32Storage", "qint32", 4},
	QUInt4x2:       {"QUInt4x2Storage", "quint4x2", 1},
	QUInt2x4:       {"QUInt2x4Storage", "quint2x4", 1},
}

// KindOfClass maps a storage class name ("FloatStorage") to its kind.
func KindOfClass(class string) (StorageKind, bool) {
	for k, info := range kindInfo {
		if k != int(InvalidKind) && class != "" && info.class == class {
			return StorageKind(k), true
		}
	}
	return InvalidKind, false
}

// Class is the storage class name, e.g. "FloatStorage"; "" for dtypes that have none.
func (k StorageKind) Class() string { return kindInfo[k].class }

// DType is torch's dtype name, e.g. "float32".
func (k StorageKind) DType() string { return kindInfo[k].dtype }

// Valid reports whether k is one of the known kinds.
func (k StorageKind) Valid() bool { return k != InvalidKind && int(k) < len(kindInfo) }

// ItemSize is the size of one element in bytes.
func (k StorageKind) ItemSize() int { return kindInfo[k].size }

func (k StorageKind) String() string { return k.DType() }

// IsFloat reports whether the kind holds real floating-point numbers.
func (k StorageKind) IsFloat() bool {
	return k == Float64 || k == Float32 || k == Float16 || k == BFloat16
}

// TypeName names a value's Python type for error messages.
func TypeName(v Value) string {
	switch v.(type) {
	case nil:
		return "None"
	case bool:
		return "bool"
	case int64, *big.Int:
		return "int"
	case float64:
		return "float"
	case string:
		return "str"
	case Bytes:
		return "bytes"
	case *List:
		return "list"
	case *Tuple:
		return "tuple"
	case *Dict:
		return "dict"
	case *OrderedDict:
		return "OrderedDict"
	case *Tensor:
		return "Tensor"
	case *Parameter:
		return "Parameter"
	case *SparseTensor:
		return "sparse Tensor"
	case *AttrTensor:
		return "Tensor with attributes"
	case *Global:
		return "global " + v.(*Global).String()
	case *Call:
		if c := v.(*Call); c.Tensor != "" {
			return c.Tensor
		}
		return v.(*Call).Func.String() + "(...)"
	}
	return fmt.Sprintf("%T", v)
}
