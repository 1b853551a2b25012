package oci

import "syscall"

// syscallStat is what os.FileInfo.Sys holds on Linux.
type syscallStat = syscall.Stat_t
