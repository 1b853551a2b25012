module github.com/orbit-containers/orbit

go 1.26.0

require (
	github.com/appc/spec v0.8.11
	github.com/spf13/cobra v1.10.2
)

require (
	github.com/coreos/go-semver v0.3.1 // indirect
	github.com/google/gofuzz v1.2.0 // indirect
	github.com/inconshreveable/mousetrap v1.1.0 // indirect
	github.com/spf13/pflag v1.0.10 // indirect
	go4.org v0.0.0-20260112195520-a5071408f32f // indirect
	gopkg.in/inf.v0 v0.9.1 // indirect
)
