package main

import (
	"fmt"

	"github.com/appc/spec/schema/types"
	"github.com/spf13/cobra"

	"github.com/orbit-containers/orbit/internal/errdefs"
)

type fetchOptions struct {
	signatures         []string
	pullPolicy         string
	trustKeysFromHTTPS bool
	full               bool
	storeOnly, noStore bool
}

func newFetchCommand(g *globalOptions) *cobra.Command {
	o := &fetchOptions{}
	cmd := &cobra.Command{
		Use:   "fetch IMAGE...",
		Short: "Fetch images, verify their signatures and store them",
		Long: `Fetch images into the local store and print their image IDs.

IMAGE is an image ID, a local .aci file (its signature beside it as
FILE.asc), an http(s) URL (its signature at URL.asc), or an image name
(example.com/app:1.0,os=linux) found through appc meta discovery.

Every image and its dependencies must be signed by a key trusted for the
image's name (see 'orbit trust'), unless --insecure-options=image.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runFetch(cmd, g, o, args)
		},
	}
	fs := cmd.Flags()
	fs.StringArrayVar(&o.signatures, "signature", nil, "the signature (a file or URL) of the image in the same position; repeat for each image")
	fs.StringVar(&o.pullPolicy, "pull-policy", "update", "when to fetch from the network: never (store only), new (when not stored), update (ask the server for a newer image; HTTP caching makes an unchanged image cost no download)")
	fs.BoolVar(&o.trustKeysFromHTTPS, "trust-keys-from-https", false, "trust keys discovered over HTTPS on first use")
	fs.BoolVar(&o.full, "full", false, "print full image IDs instead of rkt's short form (sha512- and 32 hex digits)")
	fs.BoolVar(&o.storeOnly, "store-only", false, "")
	fs.BoolVar(&o.noStore, "no-store", false, "")
	fs.MarkDeprecated("store-only", "use --pull-policy=never")
	fs.MarkDeprecated("no-store", "use --pull-policy=update")
	return cmd
}

func runFetch(cmd *cobra.Command, g *globalOptions, o *fetchOptions, args []string) error {
	if len(o.signatures) > len(args) {
		return fmt.Errorf("%d signatures given for %d images: %w", len(o.signatures), len(args), errdefs.ErrInvalid)
	}
	policy, err := pullPolicy(o.pullPolicy, o.storeOnly, o.noStore)
	if err != nil {
		return err
	}
	st, err := g.openStore()
	if err != nil {
		return err
	}
	f, err := g.newFetcher(st, o.trustKeysFromHTTPS)
	if err != nil {
		return err
	}
	for i, ref := range args {
		sig := ""
		if i < len(o.signatures) {
			sig = o.signatures[i]
		}
		id, err := fetchImage(cmd.Context(), f, st, ref, policy, sig)
		if err != nil {
			return err
		}
		if !o.full {
			id = types.ShortHash(id)
		}
		fmt.Fprintln(g.Stdout, id)
	}
	return nil
}
