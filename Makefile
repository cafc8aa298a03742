# The two commands of the README: `make demo` and `make test`.
.PHONY: demo test test-sanitize fuzz stop build clean

demo:
	@scripts/demo.sh

test:
	@scripts/test.sh

test-sanitize:
	@scripts/test.sh --sanitize

fuzz:
	@scripts/fuzz.sh

stop:
	@scripts/stack.sh stop

build:
	@bash -c 'source scripts/lib.sh && tl_build'

clean:
	rm -rf build build-asan build-fuzz
