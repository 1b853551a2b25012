package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/orbit-containers/orbit/fetch"
	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/verify"
)

type trustOptions struct {
	prefix     string
	root       bool
	skipReview bool
	allowHTTP  bool
}

func newTrustCommand(g *globalOptions) *cobra.Command {
	o := &trustOptions{}
	cmd := &cobra.Command{
		Use:   "trust [--prefix=PREFIX] [--insecure-allow-http] [--skip-fingerprint-review] [--root] [PUBKEY...]",
		Short: "Trust a key for image verification",
		Long: `Add keys to the local trust store, for verifying signed images.

PUBKEY is a local file or an https URL: an OpenPGP key, or a PEM ECDSA
public key (cosign.pub) for cosign signatures of OCI images. PREFIX scopes the key to the images
whose names are PREFIX or lie below it. Without PUBKEY, the keys are found
through appc meta discovery (ac-discovery-pubkeys) at PREFIX. For OCI
images PREFIX is the image's registry name (127.0.0.1:5000/demo/app).

To trust a key for every image, give --root and the key (no discovery).`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runTrust(cmd, g, o, args)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&o.prefix, "prefix", "", "image name prefix to limit the trust to")
	fs.BoolVar(&o.root, "root", false, "trust the key for every image (a key file or URL must be given)")
	fs.BoolVar(&o.skipReview, "skip-fingerprint-review", false, "trust the key without asking to confirm its fingerprint")
	fs.BoolVar(&o.allowHTTP, "insecure-allow-http", false, "allow plain HTTP for key discovery and download")
	return cmd
}

func runTrust(cmd *cobra.Command, g *globalOptions, o *trustOptions, args []string) error {
	if o.prefix == "" && !o.root {
		if len(args) == 0 {
			return fmt.Errorf("give --prefix PREFIX to scope the trust, or --root PUBKEY to trust a key for every image (see 'orbit trust --help'): %w", errdefs.ErrInvalid)
		}
		return fmt.Errorf("refusing implicit trust for every image: give --prefix PREFIX (e.g. --prefix example.com/app), or --root to trust %s for every image: %w", strings.Join(args, " "), errdefs.ErrInvalid)
	}
	if o.prefix != "" && o.root {
		return fmt.Errorf("--prefix and --root cannot be used together: %w", errdefs.ErrInvalid)
	}
	f, err := g.newFetcher(nil, false)
	if err != nil {
		return err
	}
	in := bufio.NewReader(cmd.InOrStdin())
	out := g.Stderr
	confirm := func(c fetch.KeyCandidate) (bool, error) {
		describeKey(out, o.prefix, c)
		if o.skipReview {
			fmt.Fprintf(out, "Trusting %q for prefix %q without fingerprint review.\n", c.Location, o.prefix)
			return true, nil
		}
		return askYesNo(in, out, "Are you sure you want to trust this key (yes/no)? ")
	}
	trusted, err := f.Trust(cmd.Context(), fetch.TrustRequest{
		Prefix:    o.prefix,
		Root:      o.root,
		Locations: args,
		AllowHTTP: o.allowHTTP,
	}, confirm)
	for _, t := range trusted {
		if o.root {
			fmt.Fprintf(out, "Added root key at %q\n", t.Path)
		} else {
			fmt.Fprintf(out, "Added key for prefix %q at %q\n", o.prefix, t.Path)
		}
	}
	if err != nil {
		return err
	}
	if len(trusted) == 0 {
		return fmt.Errorf("no key was trusted: %w", errdefs.ErrUntrusted)
	}
	return nil
}

// describeKey shows a key the way gpg users know it, for review.
func describeKey(w io.Writer, prefix string, c fetch.KeyCandidate) {
	fmt.Fprintf(w, "Prefix: %q\nKey: %q\n", prefix, c.Location)
	if c.PublicKey != nil {
		fmt.Fprintf(w, "ECDSA public key (%s) SHA-256 fingerprint is: %s\n", c.PublicKey.Curve.Params().Name, verify.PublicKeyFingerprint(c.PublicKey))
		return
	}
	fmt.Fprintf(w, "GPG key fingerprint is: %s\n", verify.FormatFingerprint(verify.Fingerprint(c.Entity)))
	for _, sk := range c.Entity.Subkeys {
		fmt.Fprintf(w, "\tSubkey fingerprint: %s\n", verify.FormatFingerprint(fmt.Sprintf("%x", sk.PublicKey.Fingerprint)))
	}
	for _, id := range verify.Identities(c.Entity) {
		fmt.Fprintf(w, "\t%s\n", id)
	}
	if s := verify.KeyStatus(c.Entity, time.Now()); s != "" {
		fmt.Fprintf(w, "WARNING: this key is %s: images signed with it will be refused\n", s)
	}
}

// askYesNo asks until the answer is yes or no; no answer at all (end of
// input) is a refusal with an error saying how to proceed.
func askYesNo(in *bufio.Reader, out io.Writer, question string) (bool, error) {
	for {
		fmt.Fprint(out, question)
		line, err := in.ReadString('\n')
		answer := strings.ToLower(strings.TrimSpace(line))
		switch answer {
		case "yes", "y":
			return true, nil
		case "no", "n":
			fmt.Fprintln(out, "Not trusting this key.")
			return false, nil
		}
		if errors.Is(err, io.EOF) {
			fmt.Fprintln(out)
			return false, fmt.Errorf("no answer to the fingerprint review (confirm on a terminal, or pass --skip-fingerprint-review after checking the fingerprint): %w", errdefs.ErrUntrusted)
		}
		if err != nil {
			return false, err
		}
	}
}
