package sgemm_test

import (
	"fmt"

	"github.com/pt2conv/pt2conv/internal/sgemm"
)

func ExampleSgemm() {
	// A Linear layer's weight [out=2, in=3] applied to two inputs stored as
	// rows of x [2, 3]: y = W · xᵀ, so B is transposed.
	w := []float32{
		1, 2, 3,
		4, 5, 6,
	}
	x := []float32{
		1, 0, 1,
		0, 1, 0,
	}
	y := make([]float32, 2*2)
	sgemm.Sgemm(false, true, 2, 2, 3, 1, w, 3, x, 3, 0, y, 2)
	fmt.Println(y)
	// Output: [4 2 10 5]
}
