# Targets for developers and CI. `make test` is the one test command; see scripts/test.sh.

GO ?= go
TORCH113 ?= /usr/bin/python3
PT2CONV_TORCH26_ROOT ?= /opt/torch26

.PHONY: all build test fixtures torch26 bench bench-scaling dist fmt vet clean

all: build

build:
	$(GO) build -o bin/pt2conv ./cmd/pt2conv

# Release archives for the six platforms and their checksums, under dist/ (scripts/dist.sh).
dist:
	GO=$(GO) bash scripts/dist.sh

test:
	bash scripts/test.sh

# Regenerates fixtures/ with both torch versions: the host's torch 1.x, then torch 2.x in the
# chroot, which sees only its own tree, so the script and the manifest travel through its /tmp.
fixtures: torch26
	$(TORCH113) fixtures/gen.py fixtures
	@set -e; dir=$$(mktemp -d "$(PT2CONV_TORCH26_ROOT)/tmp/pt2conv-fixtures.XXXXXX"); \
	trap 'rm -rf "$$dir"' EXIT; \
	cp fixtures/gen.py fixtures/checkpoint_facts.py fixtures/manifest.json "$$dir/"; \
	inside=/tmp/$$(basename "$$dir"); \
	status=0; chroot "$(PT2CONV_TORCH26_ROOT)" python3 "$$inside/gen.py" "$$inside" \
		>"$$dir/log" 2>&1 || status=$$?; \
	grep -v -e 'cpuinfo' -e 'UCX' "$$dir/log" || true; \
	test $$status -eq 0; \
	cp "$$dir"/*_t26.pt "$$dir/manifest.json" fixtures/; \
	rm -rf fixtures/safetensors; cp -r "$$dir/safetensors" fixtures/
	@du -sh fixtures

torch26:
	PT2CONV_TORCH26_ROOT=$(PT2CONV_TORCH26_ROOT) bash scripts/torch-chroot.sh

# Times convert, inspect and verify on a VGG16 checkpoint and on checkpoints of 1,000 to
# 100,000 small tensors against cp and PyTorch and rewrites BENCHMARKS.md (several minutes;
# the inputs are generated once, under bench/out/). bench-scaling redoes the second part only.
bench:
	TORCH113=$(TORCH113) PT2CONV_TORCH26_ROOT=$(PT2CONV_TORCH26_ROOT) GO=$(GO) bench/run.sh --write

bench-scaling:
	TORCH113=$(TORCH113) GO=$(GO) bench/run.sh --only scaling --write

fmt:
	gofmt -l -w .

vet:
	$(GO) vet ./...

clean:
	rm -rf bin dist
