// Command orbit is a daemonless container runner for App Container images.
package main

import (
	"os"
)

func main() {
	// The same binary serves as the built-in stage1 entrypoints and as the
	// stage2 launcher; it tells which from the name it was started under.
	if code, ok := runEntrypoint(os.Args); ok {
		os.Exit(code)
	}
	os.Exit(execute(os.Args[1:]))
}
