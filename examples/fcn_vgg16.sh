#!/bin/sh
# VGG16 -> FCN-32s: make a VGG16 checkpoint, convert its classifier with pt2conv, and have
# PyTorch load the result into an FCN (strict=True) and check it (examples/fcn_vgg16.py).
#
#   examples/fcn_vgg16.sh [DIR]       files go to DIR (default: the current directory)
#
#   PYTHON   python3 with torch                 (default python3)
#   PT2CONV  the pt2conv binary                 (default pt2conv)
#   SCALE    divide VGG16's widths by SCALE     (default 1: VGG16 itself, 528 MiB)
set -eu
here=$(dirname "$0")
dir=${1:-.}
python=${PYTHON:-python3}
pt2conv=${PT2CONV:-pt2conv}
scale=${SCALE:-1}

"$python" "$here/fcn_vgg16.py" make "$dir/vgg16.pth" --scale "$scale"
"$pt2conv" convert "$dir/vgg16.pth" -o "$dir/fcn32s.pth" --force \
	--layer classifier.0=auto --layer classifier.3 --layer classifier.6 \
	--rename classifier.0=fc6 --rename classifier.3=fc7 --rename classifier.6=score --verify
"$python" "$here/fcn_vgg16.py" check "$dir/vgg16.pth" "$dir/fcn32s.pth" --scale "$scale"
