package pickle

import (
	"fmt"

	"github.com/pt2conv/pt2conv/checkpoint"
)

// Tensors torch 2 writes through rebuild functions other than _rebuild_tensor_v2: dtypes
// without a typed storage class, quantized tensors and sparse tensors.

// tensorV3 reads _rebuild_tensor_v3(storage, offset, size, stride, requires_grad, hooks,
// dtype[, metadata]): a view of the given dtype into an untyped (byte) storage.
func (d *decoder) tensorV3(args []checkpoint.Value) (checkpoint.Value, error) {
	if len(args) < 7 {
		return nil, fmt.Errorf("%w: %s: _rebuild_tensor_v3 with %d arguments", ErrCorrupt, d.record, len(args))
	}
	g, ok := args[6].(*checkpoint.Global)
	if !ok || g.Module != "torch" {
		return nil, fmt.Errorf("%w: %s: _rebuild_tensor_v3 without a dtype", ErrCorrupt, d.record)
	}
	kind, ok := checkpoint.KindOfDType(g.Name)
	if !ok || kind.IsQuantized() {
		return nil, fmt.Errorf("%w: %s: _rebuild_tensor_v3 of dtype %s", ErrUnsupported, d.record, g)
	}
	s, ok := args[0].(*checkpoint.Storage)
	if !ok || s.Kind != checkpoint.Untyped {
		return nil, fmt.Errorf("%w: %s: _rebuild_tensor_v3 without an untyped storage", ErrCorrupt, d.record)
	}
	t, err := d.view(s, args[1:6])
	if err != nil {
		return nil, err
	}
	t.DType = kind
	if len(args) > 7 {
		t.Extra = args[7:]
	}
	if err := checkSpan(t); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, d.record, err)
	}
	return t, nil
}

// view reads (offset, size, stride, requires_grad, hooks) of a tensor over s.
func (d *decoder) view(s *checkpoint.Storage, args []checkpoint.Value) (*checkpoint.Tensor, error) {
	offset, ok := args[0].(int64)
	size, stride, ok1 := sizeAndStride(args[1], args[2])
	grad, ok3 := args[3].(bool)
	if !ok || !ok1 || !ok3 || len(size) != len(stride) || offset < 0 {
		return nil, fmt.Errorf("%w: %s: malformed tensor of storage %q", ErrCorrupt, d.record, s.Key)
	}
	return &checkpoint.Tensor{Storage: s, Offset: offset, Size: size, Stride: stride, RequiresGrad: grad, Hooks: hooks(args[4])}, nil
}

// qtensor reads _rebuild_qtensor(storage, offset, size, stride, quantizer_params,
// requires_grad, hooks).
func (d *decoder) qtensor(args []checkpoint.Value) (checkpoint.Value, error) {
	if len(args) != 7 {
		return nil, fmt.Errorf("%w: %s: _rebuild_qtensor with %d arguments", ErrCorrupt, d.record, len(args))
	}
	s, ok := args[0].(*checkpoint.Storage)
	if !ok || !s.Kind.IsQuantized() {
		return nil, fmt.Errorf("%w: %s: quantized tensor without a quantized storage", ErrCorrupt, d.record)
	}
	params, ok := args[4].(*checkpoint.Tuple)
	if !ok || len(params.Items) == 0 {
		return nil, fmt.Errorf("%w: %s: quantized tensor without its quantizer", ErrCorrupt, d.record)
	}
	scheme, ok := params.Items[0].(*checkpoint.Global)
	if !ok || scheme.Module != "torch" {
		return nil, fmt.Errorf("%w: %s: quantized tensor without a quantization scheme", ErrCorrupt, d.record)
	}
	q := &checkpoint.Quantizer{Scheme: scheme.Name}
	switch {
	case scheme.Name == "per_tensor_affine" && len(params.Items) == 3:
		q.Scale, q.ZeroPoint = params.Items[1], params.Items[2]
	case (scheme.Name == "per_channel_affine" || scheme.Name == "per_channel_affine_float_qparams") && len(params.Items) == 4:
		q.Scales, q.ZeroPoints, q.Axis = params.Items[1], params.Items[2], params.Items[3]
	default:
		// torch's own _rebuild_qtensor refuses every other scheme.
		return nil, fmt.Errorf("%w: %s: quantized tensor with scheme %s and %d parameters", ErrUnsupported, d.record, scheme, len(params.Items)-1)
	}
	view := append(append([]checkpoint.Value{}, args[1:4]...), args[5], args[6])
	t, err := d.view(s, view)
	if err != nil {
		return nil, err
	}
	t.Quant = q
	if err := checkSpan(t); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, d.record, err)
	}
	return t, nil
}

// sparseLayouts are the layouts _rebuild_sparse_tensor knows, with the number of index
// tensors that come before the values.
var sparseLayouts = map[string]int{
	"sparse_coo": 1, "sparse_csr": 2, "sparse_csc": 2, "sparse_bsr": 2, "sparse_bsc": 2,
}

// sparse reads _rebuild_sparse_tensor(layout, data), where layout is
// torch.serialization._get_layout("torch.sparse_coo") and data is (indices, values, size
// [, is_coalesced]) for COO and (compressed indices, plain indices, values, size) otherwise.
func (d *decoder) sparse(args []checkpoint.Value) (checkpoint.Value, error) {
	bad := func(what string) error {
		return fmt.Errorf("%w: %s: sparse tensor %s", ErrCorrupt, d.record, what)
	}
	if len(args) != 2 {
		return nil, bad("with a wrong number of arguments")
	}
	call, ok := args[0].(*checkpoint.Call)
	if !ok || call.Func.String() != "torch.serialization._get_layout" || call.Args == nil || len(call.Args.Items) != 1 {
		return nil, bad("without a layout")
	}
	name, _ := call.Args.Items[0].(string)
	layout, ok := cutPrefix(name, "torch.")
	nIdx, known := sparseLayouts[layout]
	if !ok || !known {
		return nil, fmt.Errorf("%w: %s: sparse layout %s", ErrUnsupported, d.record, brief(name))
	}
	data, ok := args[1].(*checkpoint.Tuple)
	if !ok {
		return nil, bad("without its data")
	}
	items := data.Items
	want := nIdx + 2
	sp := &checkpoint.SparseTensor{Layout: layout}
	if layout == "sparse_coo" && len(items) == want+1 {
		sp.Coalesced, sp.HasCoalesced = items[want], true
		items = items[:want]
	}
	if len(items) != want {
		return nil, bad(fmt.Sprintf("with %d parts", len(data.Items)))
	}
	for _, it := range items[:nIdx+1] {
		t, ok := it.(*checkpoint.Tensor)
		if !ok || t.Quant != nil {
			return nil, bad("whose indices or values are not dense tensors")
		}
		sp.Indices = append(sp.Indices, t)
	}
	sp.Values = sp.Indices[nIdx]
	sp.Indices = sp.Indices[:nIdx]
	sp.Size = items[nIdx+1]
	return sp, nil
}

func cutPrefix(s, prefix string) (string, bool) {
	if len(s) < len(prefix) || s[:len(prefix)] != prefix {
		return s, false
	}
	return s[len(prefix):], true
}
