package contract

import (
	"os"
	"strings"
	"unsafe"
)

// scrubArgv overwrites, in this process's own argument memory, the value
// of flag (as --flag=VALUE, -flag=VALUE or --flag VALUE): what
// /proc/PID/cmdline shows, to every user of the host and to every process
// sharing its PID namespace. The metadata service token is a secret that
// rkt's stage1 interface passes on the command line; the run entrypoint
// keeps a copy and leaves only x's behind.
//
// Go's os.Args strings are the process's argv memory itself, so writing
// through them changes what the kernel reports. Any string taken from
// them (a flag's parsed value) must be copied first.
func scrubArgv(flag string) {
	for i := 1; i < len(os.Args); i++ {
		a := os.Args[i]
		if a == "--" {
			return
		}
		for _, prefix := range []string{"--" + flag, "-" + flag} {
			switch {
			case strings.HasPrefix(a, prefix+"="):
				overwrite(a[len(prefix)+1:])
			case a == prefix && i+1 < len(os.Args):
				overwrite(os.Args[i+1])
			}
		}
	}
}

func overwrite(s string) {
	if len(s) == 0 {
		return
	}
	b := unsafe.Slice(unsafe.StringData(s), len(s))
	for i := range b {
		b[i] = 'x'
	}
}
