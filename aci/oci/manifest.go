// Package oci converts OCI and Docker images into what orbit's stages
// run: an image manifest carrying the image config's Entrypoint and Cmd,
// Env, WorkingDir, User, ExposedPorts, Volumes and labels, and layer
// trees, each layer extracted on its own with its whiteouts and opaque
// directories turned into overlayfs's, whose union (an overlay, or
// Flatten) is the rootfs. The conversion lives here and nowhere else.
package oci

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/orbit-containers/orbit/internal/errdefs"
)

// Annotations rkt's docker2aci put on converted images, kept so that
// tools knowing them read orbit's images too.
const (
	AnnotationRegistry     = "appc.io/docker/registryurl"
	AnnotationRepository   = "appc.io/docker/repository"
	AnnotationTag          = "appc.io/docker/tag"
	AnnotationImageID      = "appc.io/docker/imageid"
	AnnotationManifestHash = "appc.io/docker/manifesthash"
	AnnotationEntrypoint   = "appc.io/docker/entrypoint"
	AnnotationCmd          = "appc.io/docker/cmd"
	AnnotationOriginalName = "appc.io/docker/originalname"
	// AnnotationSource says where the image came from: docker://...,
	// oci:..., oci-archive:... or docker-archive:....
	AnnotationSource = "orbit.dev/oci/source"
	// AnnotationLayers lists the layers' digests, space separated, lowest
	// first: what the store keeps layer blobs for.
	AnnotationLayers = "orbit.dev/oci/layers"
	// AnnotationDiffIDs lists the layers' diff IDs (their uncompressed
	// digests), space separated, lowest first: the layer trees the
	// image's rootfs is made of.
	AnnotationDiffIDs = "orbit.dev/oci/diffids"
)

// Info says what an image is called and where it came from.
type Info struct {
	// Name is the appc name the image is stored under, e.g.
	// "registry-1.docker.io/library/busybox".
	Name string
	// Tag becomes the "version" label; "latest" if empty.
	Tag string
	// Registry and Repository are the docker reference's parts, empty for
	// a local image without one.
	Registry, Repository string
	// Source is the reference the user gave.
	Source string
	// ManifestDigest and ConfigDigest identify the OCI image.
	ManifestDigest, ConfigDigest string
	// Layers are the layers' digests, lowest first.
	Layers []string
	// DiffIDs are the layers' diff IDs, lowest first.
	DiffIDs []string
}

// Manifest builds the image manifest of an OCI image from its config.
// userDB holds the image's etc/passwd and etc/group, to resolve the
// config's user and group names.
func Manifest(cfg *v1.ConfigFile, info Info, userDB map[string][]byte) (*schema.ImageManifest, error) {
	name, err := types.SanitizeACIdentifier(info.Name)
	if err != nil {
		return nil, fmt.Errorf("image name %q: %w: %w", info.Name, err, errdefs.ErrInvalid)
	}
	id, err := types.NewACIdentifier(name)
	if err != nil {
		return nil, fmt.Errorf("image name %q: %w: %w", info.Name, err, errdefs.ErrInvalid)
	}
	tag := info.Tag
	if tag == "" {
		tag = "latest"
	}
	goos, goarch := cfg.OS, cfg.Architecture
	if goos == "" {
		goos = "linux"
	}
	labels := types.Labels{{Name: "version", Value: tag}}
	if os, arch, err := types.ToAppcOSArch(goos, goarch, cfg.Variant); err == nil {
		labels = append(labels, types.Label{Name: "os", Value: os}, types.Label{Name: "arch", Value: arch})
	}
	m := &schema.ImageManifest{
		ACKind:    schema.ImageManifestKind,
		ACVersion: schema.AppContainerVersion,
		Name:      *id,
		Labels:    labels,
	}
	c := cfg.Config
	app := &types.App{
		Exec:             append(append(types.Exec{}, c.Entrypoint...), c.Cmd...),
		WorkingDirectory: c.WorkingDir,
	}
	if app.WorkingDirectory == "" {
		app.WorkingDirectory = "/"
	}
	for _, kv := range c.Env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("image config: environment entry %q: want NAME=VALUE: %w", kv, errdefs.ErrInvalid)
		}
		app.Environment.Set(k, v)
	}
	app.User, app.Group = resolveUser(c.User, userDB)
	ports, err := convertPorts(c.ExposedPorts)
	if err != nil {
		return nil, err
	}
	app.Ports = ports
	mps, err := convertVolumes(c.Volumes)
	if err != nil {
		return nil, err
	}
	app.MountPoints = mps
	if len(app.Exec) > 0 {
		m.App = app
	}
	ann := types.Annotations{}
	set := func(k, v string) {
		if v != "" {
			ann.Set(types.ACIdentifier(k), v)
		}
	}
	set(AnnotationRegistry, info.Registry)
	set(AnnotationRepository, info.Repository)
	set(AnnotationTag, info.Tag)
	set(AnnotationImageID, info.ConfigDigest)
	set(AnnotationManifestHash, info.ManifestDigest)
	set(AnnotationSource, info.Source)
	set(AnnotationLayers, strings.Join(info.Layers, " "))
	set(AnnotationDiffIDs, strings.Join(info.DiffIDs, " "))
	if info.Name != name {
		set(AnnotationOriginalName, info.Name)
	}
	if len(c.Entrypoint) > 0 {
		b, _ := json.Marshal(c.Entrypoint)
		set(AnnotationEntrypoint, string(b))
	}
	if len(c.Cmd) > 0 {
		b, _ := json.Marshal(c.Cmd)
		set(AnnotationCmd, string(b))
	}
	keys := make([]string, 0, len(c.Labels))
	for k := range c.Labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		ak, err := types.SanitizeACIdentifier(k)
		if err != nil {
			continue // nothing of the name is left to keep
		}
		if _, taken := ann.Get(ak); taken {
			continue
		}
		set(ak, c.Labels[k])
	}
	if len(ann) > 0 {
		m.Annotations = ann
	}
	return m, nil
}

// convertPorts turns ExposedPorts ("8080/tcp", "53/udp", "80") into
// named ports "8080-tcp", usable with --port.
func convertPorts(exposed map[string]struct{}) ([]types.Port, error) {
	var ports []types.Port
	for spec := range exposed {
		num, proto, _ := strings.Cut(spec, "/")
		if proto == "" {
			proto = "tcp"
		}
		n, err := strconv.ParseUint(num, 10, 16)
		if err != nil || n == 0 || (proto != "tcp" && proto != "udp" && proto != "sctp") {
			return nil, fmt.Errorf("image config: exposed port %q: want PORT[/tcp|udp|sctp]: %w", spec, errdefs.ErrInvalid)
		}
		name, err := types.NewACName(fmt.Sprintf("%d-%s", n, proto))
		if err != nil {
			return nil, fmt.Errorf("image config: exposed port %q: %w: %w", spec, err, errdefs.ErrInvalid)
		}
		ports = append(ports, types.Port{Name: *name, Protocol: proto, Port: uint(n), Count: 1})
	}
	sort.Slice(ports, func(i, j int) bool { return ports[i].Name < ports[j].Name })
	return ports, nil
}

// convertVolumes turns Volumes into mount points named "volume-<path>".
func convertVolumes(vols map[string]struct{}) ([]types.MountPoint, error) {
	var mps []types.MountPoint
	seen := map[types.ACName]string{}
	for p := range vols {
		if !strings.HasPrefix(p, "/") {
			return nil, fmt.Errorf("image config: volume %q is not an absolute path: %w", p, errdefs.ErrInvalid)
		}
		s, err := types.SanitizeACName("volume" + p)
		if err != nil {
			return nil, fmt.Errorf("image config: volume %q: %w: %w", p, err, errdefs.ErrInvalid)
		}
		name := types.ACName(s)
		if other, dup := seen[name]; dup {
			return nil, fmt.Errorf("image config: volumes %q and %q have the same name %s: %w", other, p, name, errdefs.ErrInvalid)
		}
		seen[name] = p
		mps = append(mps, types.MountPoint{Name: name, Path: p})
	}
	sort.Slice(mps, func(i, j int) bool { return mps[i].Name < mps[j].Name })
	return mps, nil
}

// resolveUser turns the config's User ("", "uid", "uid:gid", "name",
// "name:group") into appc's user and group, resolving names with the
// image's own etc/passwd and etc/group. A name the image does not know is
// kept as a name: stage2 then fails to run the app, as docker does.
func resolveUser(spec string, userDB map[string][]byte) (string, string) {
	if spec == "" {
		return "0", "0"
	}
	user, group, hasGroup := strings.Cut(spec, ":")
	uid, primary := user, ""
	if fields := lookup(userDB["etc/passwd"], user, 2); fields != nil {
		uid, primary = fields[2], fields[3]
	}
	gid := "0"
	switch {
	case hasGroup:
		gid = group
		if fields := lookup(userDB["etc/group"], group, 2); fields != nil {
			gid = fields[2]
		}
	case primary != "":
		gid = primary
	}
	return uid, gid
}

// lookup finds the colon-separated line of db whose first field, or
// whose field idx when key is numeric, is key.
func lookup(db []byte, key string, idx int) []string {
	_, numErr := strconv.ParseUint(key, 10, 32)
	s := bufio.NewScanner(bytes.NewReader(db))
	for s.Scan() {
		fields := strings.Split(s.Text(), ":")
		if len(fields) < 4 {
			continue
		}
		if (numErr != nil && fields[0] == key) || (numErr == nil && fields[idx] == key) {
			if _, err := strconv.ParseUint(fields[2], 10, 32); err != nil {
				return nil
			}
			if _, err := strconv.ParseUint(fields[3], 10, 32); err != nil && idx == 2 && len(fields) >= 7 {
				return nil
			}
			return fields
		}
	}
	return nil
}

// Entrypoint returns the Entrypoint of an image converted from an OCI
// image, and false for any other image. Arguments given on the command
// line replace the image's Cmd and follow its Entrypoint, as docker does.
func Entrypoint(im *schema.ImageManifest) ([]string, bool) {
	if _, ok := im.Annotations.Get(AnnotationImageID); !ok {
		return nil, false
	}
	var ep []string
	if v, ok := im.Annotations.Get(AnnotationEntrypoint); ok {
		if err := json.Unmarshal([]byte(v), &ep); err != nil {
			return nil, false
		}
	}
	return ep, true
}
